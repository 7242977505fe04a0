"""`ferry-collector token new NAME --roles ...`: a new bearer token, shown once, and the
`[[principals]]` table that lets it in (the auth file holds only the token's SHA-256)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from ferry.collector.auth.principals import _NAME, ROLES, token_hash

PREFIX = "ferry_"  # so secret scanners and people can tell a Ferry token on sight


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def principal_table(
    name: str, token: str, roles: list[str], agent_ids: list[str], hosts: list[str] | None = None
) -> str:
    """The `[[principals]]` table for `token` (`hosts`: default, the agent ids' globs)."""
    lines = [
        "[[principals]]",
        f'name = "{name}"',
        f'token_sha256 = "{token_hash(token).hex()}"',
        "roles = [" + ", ".join(f'"{r}"' for r in roles) + "]",
    ]
    if "ingest" in roles:
        lines.append("agent_ids = [" + ", ".join(f'"{a}"' for a in agent_ids) + "]")
        lines.append("hosts = [" + ", ".join(f'"{h}"' for h in (agent_ids if hosts is None else hosts)) + "]")
    return "\n".join(lines) + "\n"


def write_private(path: Path, data: bytes) -> None:
    """`data` into `path`, readable by its owner only: a symlink there is refused, and a file
    already there is made 0600 before anything is written into it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.write(fd, data)
    finally:
        os.close(fd)


def write_secret(path: Path, text: str) -> None:
    """A token (or any text) into `path`, readable by its owner only."""
    write_private(path, (text + "\n").encode())


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ferry-collector token", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a token and print its [[principals]] table")
    new.add_argument("name", help="the principal's name")
    new.add_argument("--roles", required=True, help=f"comma-separated: any of {', '.join(ROLES)}")
    new.add_argument("--agent-ids", default="*", help="ingest: globs of agent ids it may write as")
    new.add_argument(
        "--hosts", default=None, help="ingest: globs of the host names it may write (default: --agent-ids)"
    )
    new.add_argument("--out", metavar="FILE", help="write the token to FILE (mode 0600) instead of stdout")
    args = p.parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        p.error(f"--roles {args.roles!r}: roles are any of {', '.join(ROLES)}")
    if not _NAME.fullmatch(args.name):
        p.error(f"name {args.name!r} must match {_NAME.pattern}")
    agent_ids = [a.strip() for a in args.agent_ids.split(",") if a.strip()]
    hosts = None if args.hosts is None else [h.strip() for h in args.hosts.split(",") if h.strip()]
    token = new_token()
    table = principal_table(args.name, token, roles, agent_ids, hosts)
    if args.out:
        write_secret(Path(args.out), token)
        print(f"# token written to {args.out} (mode 0600); add this to the auth file:")
    else:
        print("# the token, shown once (keep it in a file the client reads: --token-file FILE):")
        print(token)
        print("# add this to the auth file (it holds the token's SHA-256, never the token):")
    sys.stdout.write(table)
    return 0
