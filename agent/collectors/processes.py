"""Per-process metrics for the busiest processes: the top N by CPU and the top N by memory.

Every cycle reads /proc/PID/stat for all processes (one small read each) to rank them; only the
selected ones pay for status, io and fd reads. Labels are `name` (the kernel's comm) and `pid`,
so a host's series stay bounded by 2 x top_n at a time; a new pid is a new series, which is the
point (a restarted service is a different process).

CPU utilization needs the process's previous sample: a process seen for the first time gets no
utilization point rather than a false 0, and ranks by cumulative CPU until it has one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

from agent import catalogue as c
from agent.collectors.base import Emit, SeriesCache

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


class ProcessCollector:
    name = "processes"

    def __init__(self, proc_root: Path, top_n: int = 10, clock: Callable[[], float] = time.monotonic):
        self.proc = proc_root
        self.top_n = top_n
        self.clock = clock
        self._prev: dict[tuple[int, int], tuple[float, int]] = {}  # (pid, start) -> (when, cpu ticks)
        self.s = SeriesCache()

    def _scan(self) -> list[tuple[int, str, int, int, int, int, int, int]]:
        """(pid, comm, start, utime, stime, threads, vsize, rss pages) for every readable process."""
        out = []
        root = str(self.proc)
        for name in os.listdir(root):
            if not name.isdigit():
                continue
            try:
                # plain open(): this runs for every process every cycle, pathlib costs double here
                with open(f"{root}/{name}/stat", "rb") as fh:
                    raw = fh.read().decode(errors="replace")
            except OSError:
                continue  # exited between listing and reading
            # comm sits in parentheses and may itself contain spaces or parentheses
            open_, close = raw.find("("), raw.rfind(")")
            comm, f = raw[open_ + 1 : close], raw[close + 2 :].split()
            # fields after comm: state(0) ... utime(11) stime(12) ... num_threads(17) ... starttime(19)
            # vsize(20) rss(21)
            out.append(
                (
                    int(name),
                    comm,
                    int(f[19]),
                    int(f[11]),
                    int(f[12]),
                    int(f[17]),
                    int(f[20]),
                    int(f[21]),
                )
            )
        return out

    def collect(self, time_ms: int, emit: Emit) -> None:
        now = self.clock()
        procs = self._scan()
        rates: dict[int, float] = {}
        prev, self._prev = self._prev, {}
        for pid, _comm, start, utime, stime, *_ in procs:
            ticks = utime + stime
            self._prev[(pid, start)] = (now, ticks)
            seen = prev.get((pid, start))
            if seen is not None and now > seen[0]:
                rates[pid] = (ticks - seen[1]) / TICK / (now - seen[0])
        by_cpu = sorted(procs, key=lambda p: (rates.get(p[0], -1.0), p[3] + p[4]), reverse=True)
        by_mem = sorted(procs, key=lambda p: p[7], reverse=True)
        chosen = {p[0]: p for p in by_cpu[: self.top_n] + by_mem[: self.top_n]}
        for pid, comm, _start, utime, stime, threads, vsize, rss in chosen.values():
            self._emit_one(emit, pid, comm, utime, stime, threads, vsize, rss, rates.get(pid))

    def _emit_one(
        self,
        emit: Emit,
        pid: int,
        comm: str,
        utime: int,
        stime: int,
        threads: int,
        vsize: int,
        rss: int,
        rate: float | None,
    ) -> None:
        s, p = self.s, str(pid)
        emit(s(c.PROCESS_CPU_TIME, comm, p, "user"), utime / TICK)
        emit(s(c.PROCESS_CPU_TIME, comm, p, "system"), stime / TICK)
        if rate is not None:
            emit(s(c.PROCESS_CPU_UTILIZATION, comm, p), rate)
        emit(s(c.PROCESS_MEMORY_USAGE, comm, p), float(rss * PAGE))
        emit(s(c.PROCESS_MEMORY_VIRTUAL, comm, p), float(vsize))
        emit(s(c.PROCESS_THREADS, comm, p), float(threads))
        base = self.proc / p
        try:
            for line in (base / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    emit(s(c.PROCESS_CONTEXT_SWITCHES, comm, p, "voluntary"), float(line.split()[1]))
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    emit(s(c.PROCESS_CONTEXT_SWITCHES, comm, p, "involuntary"), float(line.split()[1]))
        except OSError:
            pass
        try:
            io = dict(line.split(": ", 1) for line in (base / "io").read_text().splitlines() if ": " in line)
            emit(s(c.PROCESS_DISK_IO, "read", comm, p), float(io["read_bytes"]))
            emit(s(c.PROCESS_DISK_IO, "write", comm, p), float(io["write_bytes"]))
        except (OSError, KeyError):
            pass  # another user's process without CAP_SYS_PTRACE, or a kernel without task io accounting
        with contextlib.suppress(OSError):
            emit(s(c.PROCESS_OPEN_FDS, comm, p), float(len(os.listdir(base / "fd"))))
