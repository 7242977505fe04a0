"""Process metrics: counts by status for the host, and per-process metrics for a bounded few.

Every cycle reads /proc/PID/stat of every process (one `pread` each on a descriptor kept open,
see `procfs`) to count states and rank. Per-process metrics go out for:
- the top `top_n` by CPU over the last interval and the top `top_n` by resident memory
  (group label `top`), and
- the processes of each `[[processes]]` group (group label = the group's name), up to the
  group's `max_processes`.
Only those pay for the status, io and fd reads. Labels are `group`, `name` (the kernel's comm)
and `pid`: at most 2 x top_n + the groups' caps processes per cycle, and a restarted process is
a new series (a new pid), which is the point.

CPU utilization needs the previous sample of the same process (pid and start time): a process
seen for the first time gets no utilization point rather than a false 0, and ranks by its
cumulative CPU until it has one.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import NamedTuple

from ferry.agent import catalogue as c
from ferry.agent.collectors.base import Emit, HostEnv, SeriesCache
from ferry.agent.collectors.process_groups import (
    TOP_GROUP,
    ProcessGroup,
    ProcInfo,
    parse_process_groups,
    read_info,
)
from ferry.agent.collectors.procfs import (
    STAT_STATES,
    ProcFiles,
    ProcStat,
    count_fds,
    fd_dir_size_counts,
    status_counter,
)
from ferry.runtime.config import ConfigError, setting
from ferry.runtime.tables import tables
from ferry.series import SeriesDef

log = logging.getLogger("ferry.agent.processes")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
ALWAYS_COUNTED = ("running", "sleeping", "blocked", "zombies", "stopped", "idle")
_STATE = attrgetter("state")


class ProcessCollector:
    name = "processes"

    def __init__(
        self,
        proc_root: str = "/proc",
        top_n: int = 10,
        groups: Sequence[ProcessGroup] = (),
        clock: Callable[[], float] = time.monotonic,
        max_open_files: int = 1024,
    ):
        self.proc = str(proc_root)
        self.top_n = top_n
        self.groups = tuple(groups)
        self.clock = clock
        self.files = ProcFiles(self.proc, max_open_files)
        self._fds_by_size = fd_dir_size_counts(self.proc)
        self._prev: dict[tuple[str, int], int] = {}  # (pid, start) -> cpu ticks at the last cycle
        self._prev_at = 0.0
        self._members: dict[tuple[str, int], tuple[int, ...]] = {}  # (pid, start) -> static group matches
        self._needs = frozenset().union(*(g.needs for g in self.groups))
        self._capped: set[str] = set()
        self.s = SeriesCache()  # host-wide series (counts by status)
        # per reported process while it lives, whether or not it is reported this cycle: a process
        # that drops out of the top N and comes back keeps its SeriesDef objects (and the batcher's
        # cached series messages for them)
        self._series: dict[tuple, ProcSeries] = {}

    def close(self) -> None:
        self.files.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        now = self.clock()
        procs = self.files.scan()
        self._count_states(procs, emit)
        rates = self._rates(procs, now)
        chosen = self._grouped(procs)
        if self.top_n:
            by_cpu = sorted(procs, key=lambda p: (rates.get(p.pid, -1.0), p.utime + p.stime), reverse=True)
            by_mem = sorted(procs, key=lambda p: p.rss_pages, reverse=True)
            for p in by_cpu[: self.top_n] + by_mem[: self.top_n]:
                chosen.setdefault(p.pid, (TOP_GROUP, p))
        series = self._series
        for group, p in chosen.values():
            key = (p.pid, p.start, group, p.comm)
            ps = series.get(key)
            if ps is None:
                ps = series[key] = ProcSeries.of(group, p.comm, p.pid)
            self._emit_one(emit, ps, p, rates.get(p.pid))
        live = self._prev  # (pid, start) of every process this cycle
        for key in [k for k in series if (k[0], k[1]) not in live]:
            del series[key]

    def _count_states(self, procs: list[ProcStat], emit: Emit) -> None:
        counts = dict.fromkeys(ALWAYS_COUNTED, 0)
        for state, n in Counter(map(_STATE, procs)).items():  # the loop over processes in C
            status = STAT_STATES.get(state, "unknown")
            counts[status] = counts.get(status, 0) + n
        for status, n in counts.items():
            emit(self.s(c.PROCESSES_COUNT, status), float(n))

    def _rates(self, procs: list[ProcStat], now: float) -> dict[str, float]:
        """CPU seconds per second since the last cycle, for processes seen then too."""
        prev, self._prev = self._prev, {}
        elapsed, self._prev_at = now - self._prev_at, now
        rates = {}
        for p in procs:
            ticks = p.utime + p.stime
            key = (p.pid, p.start)
            self._prev[key] = ticks
            before = prev.get(key)
            if before is not None and elapsed > 0:
                rates[p.pid] = (ticks - before) / TICK / elapsed
        return rates

    def _grouped(self, procs: list[ProcStat]) -> dict[str, tuple[str, ProcStat]]:
        if not self.groups:
            return {}
        members, self._members = self._members, {}
        pidfile_pids = [g.pidfile_pid() if g.pidfile else None for g in self.groups]
        chosen: dict[str, tuple[str, ProcStat]] = {}
        taken = [0] * len(self.groups)
        for p in sorted(procs, key=lambda p: int(p.pid)):
            key = (p.pid, p.start)
            static = members.get(key)
            if static is None:
                info = read_info(self.proc, p.pid, self._needs) if self._needs else ProcInfo()
                static = tuple(i for i, g in enumerate(self.groups) if g.matches_static(p.comm, info))
            self._members[key] = static
            for i in static:
                g = self.groups[i]
                if g.pidfile and pidfile_pids[i] != p.pid:
                    continue
                if taken[i] >= g.max_processes:
                    self._warn_capped(g)
                    continue
                taken[i] += 1
                chosen.setdefault(p.pid, (g.group, p))  # the first group listed wins
                break
        return chosen

    def _warn_capped(self, g: ProcessGroup) -> None:
        if g.group not in self._capped:
            self._capped.add(g.group)
            log.warning(
                "process group %s matches more than max_processes=%d processes; reporting the lowest pids",
                g.group,
                g.max_processes,
            )

    def _emit_one(self, emit: Emit, s: ProcSeries, p: ProcStat, rate: float | None) -> None:
        emit(s.cpu_user, p.utime / TICK)
        emit(s.cpu_system, p.stime / TICK)
        if rate is not None:
            emit(s.cpu_utilization, rate)
        emit(s.memory, float(p.rss_pages * PAGE))
        emit(s.virtual, float(p.vsize))
        emit(s.threads, float(p.threads))
        status = self.files.read(p.pid, "status", 8192)
        if status:
            voluntary = status_counter(status, b"voluntary_ctxt_switches")
            involuntary = status_counter(status, b"nonvoluntary_ctxt_switches")
            if voluntary is not None and involuntary is not None:
                emit(s.switches_voluntary, float(voluntary))
                emit(s.switches_involuntary, float(involuntary))
        io = self.files.read(p.pid, "io")  # unreadable for another user's process without CAP_SYS_PTRACE
        if io:
            io = b"\n" + io  # status_counter looks for a key at a line start
            read, write = status_counter(io, b"read_bytes"), status_counter(io, b"write_bytes")
            if read is not None and write is not None:
                emit(s.io_read, float(read))
                emit(s.io_write, float(write))
        fds = self.files.fd_count(p.pid) if self._fds_by_size else count_fds(self.proc, p.pid, False)
        if fds is not None:
            emit(s.fds, float(fds))


class ProcSeries(NamedTuple):
    """The series of one reported process, built once for its life in the report."""

    cpu_user: SeriesDef
    cpu_system: SeriesDef
    cpu_utilization: SeriesDef
    memory: SeriesDef
    virtual: SeriesDef
    threads: SeriesDef
    switches_voluntary: SeriesDef
    switches_involuntary: SeriesDef
    io_read: SeriesDef
    io_write: SeriesDef
    fds: SeriesDef

    @classmethod
    def of(cls, group: str, comm: str, pid: str) -> ProcSeries:
        who = (group, comm, pid)
        return cls(
            c.PROCESS_CPU_TIME.series((*who, "user")),
            c.PROCESS_CPU_TIME.series((*who, "system")),
            c.PROCESS_CPU_UTILIZATION.series(who),
            c.PROCESS_MEMORY_USAGE.series(who),
            c.PROCESS_MEMORY_VIRTUAL.series(who),
            c.PROCESS_THREADS.series(who),
            c.PROCESS_CONTEXT_SWITCHES.series((*who, "voluntary")),
            c.PROCESS_CONTEXT_SWITCHES.series((*who, "involuntary")),
            c.PROCESS_DISK_IO.series(("read", *who)),
            c.PROCESS_DISK_IO.series(("write", *who)),
            c.PROCESS_OPEN_FDS.series(who),
        )


@dataclass
class ProcessesConfig:
    """The process collector."""

    process_top_n: int = setting(
        10, "int", "per-process metrics for the top N by CPU and the top N by memory (0: none)"
    )
    processes: list = tables(
        parse_process_groups,
        "process groups reported whatever their rank, as [[processes]] tables (config file only)",
    )

    def check(self) -> None:
        if self.process_top_n > 1000:
            raise ConfigError(f"process_top_n {self.process_top_n} must be <= 1000")


def build(cfg: ProcessesConfig, env: HostEnv) -> ProcessCollector:
    return ProcessCollector(
        str(env.proc_root), cfg.process_top_n, cfg.processes, max_open_files=env.max_open_files
    )
