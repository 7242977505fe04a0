"""The auth file (`--auth FILE`): who may call the collector, as what, and how fast.

    points_per_second = 0        # defaults for every principal (0: no limit)
    frames_per_second = 0
    burst_seconds = 10

    [[principals]]
    name = "web-agents"
    token_sha256 = "9f86d0…"     # hex SHA-256 of a bearer token (or a list, to rotate)
    cert_subject = "web-*"       # a client certificate whose CN or a SAN matches also identifies it
    roles = ["ingest"]           # any of ingest, query, admin
    agent_ids = ["web-*"]        # ingest: the agent ids it may write as
    hosts = ["web-*"]            # ingest: the host names its frames may carry (the series' host)
    points_per_second = 5000     # its own limits, instead of the defaults

A call is identified by its bearer token (SHA-256 compared with every principal's hashes in
constant time) or, without one, by its verified client certificate (the first principal, in
file order, whose `cert_subject` glob matches the certificate's CN or one of its SANs).
The keys are declared once below; docs/configuration.md lists them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ferry.runtime.config import ConfigError, apply_file, load_toml, parse_names, setting
from ferry.runtime.tables import Section, tables

ROLES = ("ingest", "query", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")


def token_hash(token: str) -> bytes:
    """The SHA-256 of a bearer token (what the auth file holds, as hex)."""
    return hashlib.sha256(token.encode()).digest()


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is required and must match {_NAME.pattern}")
    return value


def _hashes(value: Any, what: str) -> tuple[bytes, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{what}: expected a hex string or a list of them")
    out = []
    for item in items:
        text = item.strip().lower()
        if not _HEX.fullmatch(text):
            raise ConfigError(
                f"{what}: {item[:12]!r}... is not a SHA-256 in hex (64 characters 0-9a-f); "
                "the file holds the token's hash, never the token (ferry-collector token new prints it)"
            )
        out.append(bytes.fromhex(text))
    return tuple(out)


def _roles(value: Any, what: str) -> frozenset[str]:
    names = parse_names(value, what)
    unknown = sorted(set(names) - set(ROLES))
    if unknown or not names:
        raise ConfigError(
            f"{what}: {', '.join(unknown) or 'none'} given; roles are any of {', '.join(ROLES)}"
        )
    return frozenset(names)


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{what}: {value!r} is not a number >= 0 (0: no limit)")
    return float(value)


@dataclass
class PrincipalKeys:
    """The keys of one `[[principals]]` table of the auth file."""

    name: str = setting(None, help="the principal's name, in logs and refusals", parse=_name, required=True)
    token_sha256: tuple = setting(
        None, help="hex SHA-256 of its bearer token, or a list of them (rotation)", parse=_hashes
    )
    cert_subject: str = setting("", help="a client certificate whose CN or a SAN matches this glob")
    roles: frozenset = setting(None, help="any of ingest, query, admin", parse=_roles, required=True)
    agent_ids: list = setting(
        None, "names", "globs of the agent ids it may write as (required with the ingest role)"
    )
    hosts: list = setting(
        None,
        "names",
        "globs of the host names its frames may carry: every series, event and log of a frame is "
        "stored under its host (required with the ingest role)",
    )
    points_per_second: float = setting(None, help="its points/s limit (default: the file's)", parse=_rate)
    frames_per_second: float = setting(None, help="its frames/s limit (default: the file's)", parse=_rate)
    bytes_per_second: float = setting(
        None, help="its limit of decompressed payload bytes/s (default: the file's)", parse=_rate
    )


@dataclass(frozen=True)
class Rate:
    """A principal's limits per second (0: none), in bursts of `burst_s`: metric points, frames,
    and decompressed payload bytes (which bound events and logs too)."""

    points_per_s: float = 0.0
    frames_per_s: float = 0.0
    burst_s: float = 10.0
    bytes_per_s: float = 0.0

    @property
    def limited(self) -> bool:
        return bool(self.points_per_s or self.frames_per_s or self.bytes_per_s)


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    token_hashes: tuple[bytes, ...] = ()
    cert_subject: str = ""
    agent_ids: tuple[str, ...] = ()
    rate: Rate = Rate()
    hosts: tuple[str, ...] = ()

    def may(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles

    def may_write(self, agent_id: str) -> bool:
        return any(fnmatch.fnmatchcase(agent_id, glob) for glob in self.agent_ids)

    def may_host(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, glob) for glob in self.hosts)

    def matches_cert(self, names: Iterable[str]) -> bool:
        return bool(self.cert_subject) and any(fnmatch.fnmatchcase(n, self.cert_subject) for n in names)


ANONYMOUS = Principal("anonymous", frozenset(ROLES), agent_ids=("*",), hosts=("*",))  # no --auth: all


def _principal(values: dict[str, Any], at: str, earlier: list[Principal]) -> Principal:
    name = values["name"]
    if any(p.name == name for p in earlier):
        raise ConfigError(f"{at}: principal {name!r} is named twice")
    hashes = values["token_sha256"] or ()
    if not hashes and not values["cert_subject"]:
        raise ConfigError(f"{at}: principal {name!r} needs token_sha256 or cert_subject (or both)")
    for other in earlier:
        shared = set(hashes) & set(other.token_hashes)
        if shared:
            raise ConfigError(f"{at}: principal {name!r} has the token hash of principal {other.name!r}")
    for key, what in (("agent_ids", "agent ids it may write as"), ("hosts", "host names it may write")):
        if "ingest" in values["roles"] and not values[key]:
            raise ConfigError(
                f'{at}: principal {name!r} has the ingest role: {key} is required (the {what}; ["*"] for any)'
            )
    rate = Rate(
        _given(values["points_per_second"]), _given(values["frames_per_second"]), -1.0,
        _given(values["bytes_per_second"]),
    )  # fmt: skip
    return Principal(
        name,
        values["roles"],
        tuple(hashes),
        values["cert_subject"],
        tuple(values["agent_ids"] or ()),
        rate,
        tuple(values["hosts"] or ()),
    )


def _given(value: float | None) -> float:
    return -1.0 if value is None else value  # -1: the file's default, resolved by Principals.load


@dataclass
class AuthFile:
    """The auth file (`--auth FILE`): principals, and the rate limits they get by default."""

    principals: list = tables(
        Section("principals", PrincipalKeys, _principal), "who may call, as [[principals]] tables"
    )
    points_per_second: float = setting(
        0.0, help="default points/s per principal (0: no limit)", parse=_rate, flag=False
    )
    frames_per_second: float = setting(
        0.0, help="default frames/s per principal (0: no limit)", parse=_rate, flag=False
    )
    bytes_per_second: float = setting(
        0.0, help="default decompressed payload bytes/s per principal (0: no limit)", parse=_rate, flag=False
    )
    burst_seconds: float = setting(
        10.0, "duration", "a principal may send this many seconds' worth at once", flag=False
    )


class Principals:
    """The principals of an auth file, with their limits resolved, and how a call finds its own."""

    def __init__(self, principals: Sequence[Principal], path: str = ""):
        self.all = tuple(principals)
        self.path = path
        self._hashes = [(h, p) for p in self.all for h in p.token_hashes]

    @classmethod
    def load(cls, path: str) -> Principals:
        """Read and check an auth file; raises ConfigError naming the file, line and key."""
        keys = AuthFile()
        apply_file(keys, load_toml(path), path)
        if not keys.principals:
            raise ConfigError(f"{path}: no [[principals]]: nothing could call the collector")
        resolved = []
        for p in keys.principals:
            rate = Rate(
                keys.points_per_second if p.rate.points_per_s < 0 else p.rate.points_per_s,
                keys.frames_per_second if p.rate.frames_per_s < 0 else p.rate.frames_per_s,
                keys.burst_seconds,
                keys.bytes_per_second if p.rate.bytes_per_s < 0 else p.rate.bytes_per_s,
            )
            resolved.append(dataclasses.replace(p, rate=rate))
        return cls(resolved, path)

    def by_token(self, token: str) -> Principal | None:
        """The principal holding `token`: its hash compared with every hash in constant time (the
        loop does not stop at a match), so the time taken says nothing about which came close."""
        digest = token_hash(token)
        found = None
        for known, principal in self._hashes:
            if hmac.compare_digest(digest, known) and found is None:
                found = principal
        return found

    def by_cert(self, names: Sequence[str]) -> Principal | None:
        return next((p for p in self.all if p.matches_cert(names)), None)
