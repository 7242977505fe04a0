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

`ProcessGroupKeys` declares a table's keys; `parse_process_groups` (ferry.runtime.tables) parses
the `processes` key of ferry.agent.collectors.processes.ProcessesConfig.
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass
from typing import Any

from ferry.runtime.config import ConfigError, setting
from ferry.runtime.tables import Section

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


def _group(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _GROUP.fullmatch(value) or value == TOP_GROUP:
        raise ConfigError(f"{what} {value!r} must match {_GROUP.pattern} and not be {TOP_GROUP!r}")
    return value


def _matcher(value: Any, what: str) -> str:
    if not isinstance(value, str | int) or value in ("", True, False):
        raise ConfigError(f"{what} {value!r} must be a non-empty string")
    return str(value)


def _regex(value: Any, what: str) -> re.Pattern:
    text = _matcher(value, what)
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigError(f"{what} {value!r} is not a regex: {exc}") from None


def _uid(value: Any, what: str) -> int:
    user = _matcher(value, what)
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise ConfigError(f"{what} {value!r} is not a user on this host") from None


def _cap(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ConfigError(f"{what} {value!r} must be an integer from 1 to 1000")
    return value


@dataclass
class ProcessGroupKeys:
    """The keys of one `[[processes]]` table: a group and its matchers (at least one)."""

    group: str = setting(
        None, help=f"the `group` label ({_GROUP.pattern}, not {TOP_GROUP!r})", parse=_group, required=True
    )
    name: str = setting(
        None, "regex", help="full match on the process name (comm, 15 characters)", parse=_regex
    )
    cmdline: str = setting(
        None, "regex", help="searched in the command line (arguments joined by spaces)", parse=_regex
    )
    user: str = setting(None, help="user name or uid (the real uid)", parse=_uid)
    pidfile: str = setting(None, help="the process whose pid this file holds", parse=_matcher)
    unit: str = setting(None, help="systemd unit, from /proc/PID/cgroup", parse=_matcher)
    max_processes: int = setting(10, "int", help="report at most this many (lowest pids first)", parse=_cap)


def _process_group(values: dict[str, Any], at: str, earlier: list[ProcessGroup]) -> ProcessGroup:
    group = values["group"]
    if any(g.group == group for g in earlier):
        raise ConfigError(f"{at}: key 'group' {group!r} is used by another [[processes]] table")
    if all(values[k] is None for k in MATCHERS):
        raise ConfigError(f"{at}: needs at least one of the keys {', '.join(MATCHERS)}")
    return ProcessGroup(
        group=group,
        name=values["name"],
        cmdline=values["cmdline"],
        uid=values["user"],
        pidfile=values["pidfile"] or "",
        unit=values["unit"] or "",
        max_processes=values["max_processes"],
    )


parse_process_groups = Section("processes", ProcessGroupKeys, _process_group)
