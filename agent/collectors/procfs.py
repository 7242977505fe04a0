"""Cheap reads of /proc/PID files: every process's `stat` each cycle, more for a chosen few.

Opening a /proc file costs about as much as reading it, so files stay open between cycles and
are re-read with `pread` at offset 0 (the kernel regenerates them). A descriptor of a process
that has exited answers ESRCH; then every descriptor of that pid is closed, because the pid may
already belong to a new process, and the file is opened afresh. At most `max_open` descriptors
are kept; past that, files are opened and closed per read. A file we may not read (refused at
open, or, like /proc/PID/io of another user's process for root, at read) is not asked for again
while its pid lives. A stat line that comes back byte for byte the same as last cycle (a process
that slept through it: most of them) keeps its parse.
"""

from __future__ import annotations

import errno
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
        self._denied: dict[str, set[str]] = {}  # pid -> files we may not read
        self._stats: dict[str, tuple[bytes, ProcStat]] = {}  # pid -> its last stat line, parsed
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
            except OSError as exc:
                if exc.errno not in _DENIED:
                    self.forget(pid)  # exited; the pid may name another process by now
                    return self._open_and_read(pid, name, size)
                self._close(pid, name)
                self._deny(pid, name)
                return None
        return self._open_and_read(pid, name, size)

    def _open_and_read(self, pid: str, name: str, size: int) -> bytes | None:
        fd = self._open_file(pid, name, os.O_RDONLY | os.O_CLOEXEC)
        if fd is None:
            return None
        try:
            data = os.pread(fd, size, 0)
        except OSError as exc:
            # /proc/PID/io opens for root but answers EACCES to a read (the ptrace check is at
            # read time): remember that, or every cycle pays an open, a failed read and a close
            if exc.errno in _DENIED:
                self._deny(pid, name)
            self._close(pid, name, fd)
            return None
        self._release(pid, name, fd)
        return data

    def fd_count(self, pid: str) -> int | None:
        """Open descriptors of a process where st_size of /proc/PID/fd counts them (Linux >=
        6.2): fstat of a kept O_PATH descriptor of that directory (no read permission needed,
        as for a stat of the path), without a path walk per cycle."""
        files = self._fds.get(pid)
        fd = files.get("fd") if files else None
        if fd is None:
            fd = self._open_file(pid, "fd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            if fd is None:
                return count_fds(self.root, pid, True)
        try:
            size = os.fstat(fd).st_size
        except OSError:
            self._close(pid, "fd", fd)
            return None
        self._release(pid, "fd", fd)
        return size

    def _open_file(self, pid: str, name: str, flags: int) -> int | None:
        """A descriptor of /proc/PID/name, kept (within the budget) until the process goes;
        `_release` closes it after use if it was not kept."""
        denied = self._denied.get(pid)
        if denied is not None and name in denied:
            return None
        try:
            fd = os.open(f"{self.root}/{pid}/{name}", flags)
        except PermissionError:
            self._deny(pid, name)  # for the life of this pid here: do not ask every cycle
            return None
        except OSError:
            return None
        if self._open < self.max_open:
            self._fds.setdefault(pid, {})[name] = fd
            self._open += 1
        return fd

    def _release(self, pid: str, name: str, fd: int) -> None:
        files = self._fds.get(pid)
        if files is None or files.get(name) != fd:
            os.close(fd)  # opened past the budget: not kept

    def _close(self, pid: str, name: str, fd: int | None = None) -> None:
        """Close a descriptor (kept or not) of /proc/PID/name."""
        files = self._fds.get(pid)
        if files is not None and name in files and (fd is None or files[name] == fd):
            fd = files.pop(name)
            self._open -= 1
        if fd is not None:
            os.close(fd)

    def _deny(self, pid: str, name: str) -> None:
        self._denied.setdefault(pid, set()).add(name)

    def forget(self, pid: str) -> None:
        for fd in self._fds.pop(pid, {}).values():
            os.close(fd)
            self._open -= 1
        self._denied.pop(pid, None)

    def keep_only(self, live: set[str]) -> None:
        """Close the files of processes that were not in the last listing."""
        for pid in self._fds.keys() - live:
            self.forget(pid)
        for pid in self._denied.keys() - live:
            del self._denied[pid]

    def close(self) -> None:
        self.keep_only(set())
        self._stats.clear()

    def scan(self) -> list[ProcStat]:
        """`stat` of every process now (threads excluded). Most processes sleep through a cycle
        and their stat line comes back byte for byte the same: its last parse is reused."""
        out = []
        names = os.listdir(self.root)
        fds = self._fds
        last, self._stats = self._stats, {}
        stats = self._stats
        pread = os.pread
        for pid in names:
            if not pid.isdigit():
                continue
            files = fds.get(pid)
            fd = files.get("stat") if files is not None else None
            if fd is None:
                raw = self.read(pid, "stat", 1024)  # first sight, or past the budget
            else:
                try:
                    raw = pread(fd, 1024, 0)
                except OSError:
                    raw = self.read(pid, "stat", 1024)  # gone: closed, and the pid looked up afresh
            if raw is None:
                continue
            seen = last.get(pid)
            if seen is not None and seen[0] == raw:
                st = seen[1]
            else:
                st = parse_stat(pid, raw)
                if st is None:
                    continue
            stats[pid] = (raw, st)
            out.append(st)
        self.keep_only(set(names))
        return out


_DENIED = (errno.EACCES, errno.EPERM)


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
