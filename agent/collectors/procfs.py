"""Cheap reads of /proc/PID files: every process's `stat` each cycle, more for a chosen few.

Opening a /proc file costs about as much as reading it, so files stay open between cycles and
are re-read with `pread` at offset 0 (the kernel regenerates them). A descriptor of a process
that has exited answers ESRCH; then every descriptor of that pid is closed, because the pid may
already belong to a new process, and the file is opened afresh. At most `max_open` descriptors
are kept; past that, files are opened and closed per read.
"""

from __future__ import annotations

import os
from typing import NamedTuple

STAT_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "blocked",
    "Z": "zombies",
    "T": "stopped",
    "t": "stopped",
    "I": "idle",
    "W": "paging",
}


class ProcStat(NamedTuple):
    """The fields of /proc/PID/stat the agent uses (times in clock ticks, rss in pages)."""

    pid: str
    comm: str
    state: str
    start: int
    utime: int
    stime: int
    threads: int
    vsize: int
    rss_pages: int


def parse_stat(pid: str, raw: bytes) -> ProcStat | None:
    """None for a stat line that does not have the fields of any Linux since 2.6."""
    # comm sits in parentheses and may itself contain spaces or parentheses
    open_, close = raw.find(b"("), raw.rfind(b")")
    f = raw[close + 2 :].split(None, 22)
    if open_ < 0 or len(f) < 22:
        return None
    # after comm: state(0) ... utime(11) stime(12) ... num_threads(17) ... starttime(19) vsize(20) rss(21)
    return ProcStat(
        pid,
        raw[open_ + 1 : close].decode(errors="replace"),
        f[0].decode(),
        int(f[19]),
        int(f[11]),
        int(f[12]),
        int(f[17]),
        int(f[20]),
        int(f[21]),
    )


class ProcFiles:
    def __init__(self, proc_root: str = "/proc", max_open: int = 1024):
        self.root = proc_root
        self.max_open = max_open
        self._fds: dict[str, dict[str, int]] = {}
        self._denied: set[tuple[str, str]] = set()
        self._open = 0

    def __len__(self) -> int:
        return self._open

    def read(self, pid: str, name: str, size: int = 4096) -> bytes | None:
        """The file's bytes, or None if the process is gone or the file is not readable to us."""
        files = self._fds.get(pid)
        fd = files.get(name) if files else None
        if fd is not None:
            try:
                return os.pread(fd, size, 0)
            except OSError:
                self.forget(pid)  # exited; the pid may name another process by now
        if (pid, name) in self._denied:
            return None
        try:
            fd = os.open(f"{self.root}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            self._denied.add((pid, name))  # for the life of this pid here: do not ask every cycle
            return None
        except OSError:
            return None
        try:
            data = os.pread(fd, size, 0)
        except OSError:
            os.close(fd)
            return None
        if self._open < self.max_open:
            self._fds.setdefault(pid, {})[name] = fd
            self._open += 1
        else:
            os.close(fd)
        return data

    def forget(self, pid: str) -> None:
        for fd in self._fds.pop(pid, {}).values():
            os.close(fd)
            self._open -= 1

    def keep_only(self, live: set[str]) -> None:
        """Close the files of processes that were not in the last listing."""
        for pid in [p for p in self._fds if p not in live]:
            self.forget(pid)
        self._denied = {(pid, name) for pid, name in self._denied if pid in live}

    def close(self) -> None:
        self.keep_only(set())

    def scan(self) -> list[ProcStat]:
        """`stat` of every process now (threads excluded)."""
        out = []
        live = set()
        for pid in os.listdir(self.root):
            if not pid.isdigit():
                continue
            live.add(pid)
            raw = self.read(pid, "stat", 1024)
            if raw is not None:
                st = parse_stat(pid, raw)
                if st is not None:
                    out.append(st)
        self.keep_only(live)
        return out


def status_counter(raw: bytes, key: bytes) -> int | None:
    """An integer field of /proc/PID/status, e.g. b"voluntary_ctxt_switches"."""
    at = raw.find(b"\n" + key + b":")
    if at < 0:
        return None
    end = raw.find(b"\n", at + 1)
    return int(raw[at + len(key) + 2 : end if end > 0 else None].split()[0])


def fd_dir_size_counts(proc_root: str) -> bool:
    """Whether st_size of /proc/PID/fd is the number of open descriptors (Linux >= 6.2)."""
    path = f"{proc_root}/self/fd"
    try:
        size = os.stat(path).st_size
        listed = len(os.listdir(path))  # the listing itself holds one more descriptor
    except OSError:
        return False
    return size > 0 and abs(size - listed) <= 1


def count_fds(proc_root: str, pid: str, by_size: bool) -> int | None:
    """Open descriptors of a process: one stat() where the kernel counts them, else a listing."""
    path = f"{proc_root}/{pid}/fd"
    try:
        return os.stat(path).st_size if by_size else len(os.listdir(path))
    except OSError:
        return None  # another user's process without CAP_SYS_PTRACE, or gone
