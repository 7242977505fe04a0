"""`[[processes]]` groups: the processes an operator names, reported whether busy or not.

    [[processes]]
    group = "web"              # the `group` label of every series of these processes
    name = "nginx"             # regex, full match on the process name (comm, 15 characters)
    cmdline = "--config \\S+"  # regex, searched in the command line (arguments joined by spaces)
    user = "www-data"          # user name or uid (the real uid)
    pidfile = "/run/nginx.pid" # the process whose pid the file holds, read every cycle
    unit = "nginx.service"     # systemd unit, from /proc/PID/cgroup
    max_processes = 10         # the group reports at most this many processes (lowest pids first)

A group needs at least one matcher; all the matchers it has must match. The name, command
line, user and unit of a process are read once per process (pid and start time), so a process
that rewrites its command line later keeps the group it had when first seen.
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass
from typing import Any

from ferry.runtime.config import ConfigError, array_of_tables

TOP_GROUP = "top"  # the group label of processes reported because they rank in the top N
_GROUP = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
MATCHERS = ("name", "cmdline", "user", "pidfile", "unit")


@dataclass(frozen=True)
class ProcessGroup:
    group: str
    name: re.Pattern | None = None
    cmdline: re.Pattern | None = None
    uid: int | None = None
    pidfile: str = ""
    unit: str = ""
    max_processes: int = 10

    @property
    def needs(self) -> frozenset[str]:
        """What must be read about a process beyond its stat line to decide."""
        return frozenset(
            k
            for k, v in (("cmdline", self.cmdline), ("uid", self.uid), ("unit", self.unit))
            if v not in (None, "")
        )

    def matches_static(self, comm: str, info: ProcInfo) -> bool:
        """Every matcher but the pidfile (which is checked each cycle)."""
        if self.name is not None and not self.name.fullmatch(comm):
            return False
        if self.cmdline is not None and (info.cmdline is None or not self.cmdline.search(info.cmdline)):
            return False
        if self.uid is not None and info.uid != self.uid:
            return False
        return not (self.unit and info.unit != self.unit)

    def pidfile_pid(self) -> str | None:
        try:
            with open(self.pidfile, "rb") as fh:
                value = fh.read(64).split()
        except OSError:
            return None
        return value[0].decode() if value and value[0].isdigit() else None


@dataclass(frozen=True)
class ProcInfo:
    cmdline: str | None = None
    uid: int | None = None
    unit: str | None = None


def read_info(proc_root: str, pid: str, needs: frozenset[str]) -> ProcInfo:
    cmdline = uid = unit = None
    base = f"{proc_root}/{pid}"
    try:
        if "cmdline" in needs:
            with open(f"{base}/cmdline", "rb") as fh:
                cmdline = fh.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
        if "uid" in needs:
            with open(f"{base}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"Uid:"):
                        uid = int(line.split()[1])  # real uid
                        break
        if "unit" in needs:
            with open(f"{base}/cgroup", "rb") as fh:
                unit = systemd_unit(fh.read().decode(errors="replace"))
    except (OSError, ValueError):
        pass  # gone, or not ours to read: the matcher that needed it does not match
    return ProcInfo(cmdline, uid, unit)


def systemd_unit(cgroup: str) -> str:
    """The innermost .service or .scope in a /proc/PID/cgroup path, '' outside systemd."""
    for line in cgroup.splitlines():
        _, _, path = line.partition("::")  # the cgroup v2 line is "0::/path"
        if not path and "name=systemd:" in line:  # cgroup v1 hierarchy
            path = line.split("name=systemd:", 1)[1]
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".scope")):
                return part
    return ""


def parse_process_groups(value: Any, where: str) -> list[ProcessGroup]:
    """Validate the `[[processes]]` tables; errors name the table's position and key."""
    groups, seen = [], set()
    for at, table in array_of_tables(value, where, "processes"):
        unknown = set(table) - {"group", "max_processes", *MATCHERS}
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(unknown))}")
        group = table.get("group")
        if not isinstance(group, str) or not _GROUP.fullmatch(group) or group == TOP_GROUP:
            raise ConfigError(
                f"{at}: key 'group' {group!r} must match {_GROUP.pattern} and not be {TOP_GROUP!r}"
            )
        if group in seen:
            raise ConfigError(f"{at}: key 'group' {group!r} is used by another [[processes]] table")
        seen.add(group)
        if not any(k in table for k in MATCHERS):
            raise ConfigError(f"{at}: needs at least one of the keys {', '.join(MATCHERS)}")
        for key in MATCHERS:
            if key in table and (not isinstance(table[key], str | int) or table[key] in ("", True, False)):
                raise ConfigError(f"{at}: key {key!r} {table[key]!r} must be a non-empty string")
        cap = table.get("max_processes", 10)
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 1000:
            raise ConfigError(f"{at}: key 'max_processes' {cap!r} must be an integer from 1 to 1000")
        groups.append(
            ProcessGroup(
                group=group,
                name=_regex(table, "name", at),
                cmdline=_regex(table, "cmdline", at),
                uid=_uid(table["user"], at) if "user" in table else None,
                pidfile=str(table.get("pidfile", "")),
                unit=str(table.get("unit", "")),
                max_processes=cap,
            )
        )
    return groups


def _regex(table: dict, key: str, at: str) -> re.Pattern | None:
    if key not in table:
        return None
    try:
        return re.compile(str(table[key]))
    except re.error as exc:
        raise ConfigError(f"{at}: key {key!r} {table[key]!r} is not a regex: {exc}") from None


def _uid(user: Any, at: str) -> int:
    if isinstance(user, int) or str(user).isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"{at}: key 'user' {user!r} is not a user on this host") from None
