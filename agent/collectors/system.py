"""Host metrics: CPU, memory, paging, load and uptime here; disks, filesystems, network,
processes and the agent's own delivery counters (`agent`) from their own modules.
`HOST_COLLECTORS` is the registry of them all: each has a `build(config, env)` and, if it has
keys, a config dataclass; `build_collectors` builds the enabled ones for the agent, and
`HostCollectorsConfig` composes their keys.

Reads /proc directly (about a millisecond a cycle); the proc root is injectable so tests run the
real parsers on a fixture tree. Rates (cpu utilization) need two samples: the first cycle emits
none rather than a false 0. A source this kernel lacks is skipped.

Utilizations are rounded ratios (`filesystem.ratio`), never finer than the measurement: cpu
utilization is a tick delta over the cycle's ticks (USER_HZ 100: 1000 a cpu in 10 s), so its
resolution is one tick, and 4 decimals keep a twentieth of one at the default interval and at
most half of one up to 100 s (longer cycles keep more decimals). Memory utilization is rounded
to 4 decimals as well (0.01 percentage points, 1.6 MB of 16 GB); the bytes stay exact in
system.memory.usage. The rounded states of a cpu or of memory sum to 1 within 5e-5 a state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.agent import catalogue as c
from ferry.agent.collectors import agent_self, disk, filesystem, network, processes
from ferry.agent.collectors.base import Collector, Emit, HostEnv, ProcText, SeriesCache
from ferry.agent.collectors.filesystem import PSEUDO_FS, RATIO_SCALE, _unescape, ratio
from ferry.agent.collectors.process_groups import ProcessGroup
from ferry.runtime.config import ConfigError, parse_names, part_values, setting

__all__ = [
    "COLLECTOR_NAMES",
    "CPU_STATES",
    "HOST_COLLECTORS",
    "PSEUDO_FS",
    "SystemCollector",
    "_unescape",
    "build_collectors",
    "host_collectors",
]

# /proc/stat columns after the cpu name, mapped to OpenTelemetry cpu states
_VMSTAT_KEYS = re.compile(r"^(pswpin|pswpout|pgpgin|pgpgout|pgfault|pgmajfault) (\d+)$", re.M)
CPU_STATES = ("user", "nice", "system", "idle", "wait", "interrupt", "softirq", "steal")


class CpuMemoryCollector:
    name = "system"

    def __init__(self, proc_root: Path):
        self.proc = proc_root
        self.read = ProcText(proc_root)
        self.ticks = os.sysconf("SC_CLK_TCK")
        self._prev_cpu: dict[str, list[int]] = {}
        self.s = SeriesCache()

    def close(self) -> None:
        self.read.close()

    def collect(self, time_ms: int, emit: Emit) -> None:
        self._stat(emit)
        self._memory(emit)
        self._paging(emit)
        self._load_uptime(emit)

    def _stat(self, emit: Emit) -> None:
        s = self.s
        for line in self.read.required("stat").splitlines():
            if line.startswith("cpu") and not line.startswith("cpu "):
                self._cpu_line(line, emit)
            elif line.startswith("processes "):
                emit(s(c.PROCESSES_CREATED), float(line.split()[1]))

    def _cpu_line(self, line: str, emit: Emit) -> None:
        s = self.s
        parts = line.split()
        cpu, ticks = parts[0], [int(x) for x in parts[1:9]]
        ticks += [0] * (8 - len(ticks))
        for state, t in zip(CPU_STATES, ticks, strict=True):
            emit(s(c.CPU_TIME, cpu, state), t / self.ticks)
        prev = self._prev_cpu.get(cpu)
        self._prev_cpu[cpu] = ticks
        if prev is None:
            return
        deltas = [max(0, a - b) for a, b in zip(ticks, prev, strict=True)]
        total = sum(deltas)
        if total <= 0:
            return
        # a rounding error of at most half a tick: 4 decimals below 10,000 ticks a cycle
        scale = RATIO_SCALE if total < 10_000 else 10 ** len(str(total))
        for state, d in zip(CPU_STATES, deltas, strict=True):
            emit(s(c.CPU_UTILIZATION, cpu, state), ratio(d, total, scale))

    def _memory(self, emit: Emit) -> None:
        info = {}
        for line in self.read.required("meminfo").splitlines():
            key, _, rest = line.partition(":")
            fields = rest.split()
            if fields:
                info[key] = int(fields[0]) * (1024 if len(fields) > 1 and fields[1] == "kB" else 1)
        total = info["MemTotal"]
        states = {
            "free": info.get("MemFree", 0),
            "buffered": info.get("Buffers", 0),
            "cached": info.get("Cached", 0),
            "slab_reclaimable": info.get("SReclaimable", 0),
            "slab_unreclaimable": info.get("SUnreclaim", 0),
        }
        # used is the remainder, so the states always sum to MemTotal exactly
        states["used"] = total - sum(states.values())
        for state, value in states.items():
            emit(self.s(c.MEMORY_USAGE, state), float(value))
            emit(self.s(c.MEMORY_UTILIZATION, state), ratio(value, total) if total else 0.0)

    def _paging(self, emit: Emit) -> None:
        s = self.s
        swaps = self.read("swaps")
        if swaps is not None:
            for line in swaps.splitlines()[1:]:  # Filename Type Size Used Priority (KiB)
                f = line.split()
                if len(f) >= 4:
                    device, size, used = _unescape(f[0]), int(f[2]) * 1024, int(f[3]) * 1024
                    emit(s(c.PAGING_USAGE, device, "used"), float(used))
                    emit(s(c.PAGING_USAGE, device, "free"), float(size - used))
        vmstat = self.read("vmstat")
        if vmstat is not None:
            v = dict(_VMSTAT_KEYS.findall(vmstat))  # 6 of ~180 lines; a dict of all costs 10x
            for direction, major, minor in (
                ("page_in", "pswpin", "pgpgin"),
                ("page_out", "pswpout", "pgpgout"),
            ):
                if major in v and minor in v:
                    emit(s(c.PAGING_OPERATIONS, direction, "major"), float(v[major]))
                    emit(s(c.PAGING_OPERATIONS, direction, "minor"), float(v[minor]))
            if "pgfault" in v and "pgmajfault" in v:
                emit(s(c.PAGING_FAULTS, "major"), float(v["pgmajfault"]))
                emit(s(c.PAGING_FAULTS, "minor"), float(int(v["pgfault"]) - int(v["pgmajfault"])))

    def _load_uptime(self, emit: Emit) -> None:
        one, five, fifteen = self.read.required("loadavg").split()[:3]
        emit(self.s(c.LOAD_1M), float(one))
        emit(self.s(c.LOAD_5M), float(five))
        emit(self.s(c.LOAD_15M), float(fifteen))
        uptime = self.read("uptime")
        if uptime is not None:
            emit(self.s(c.UPTIME), float(uptime.split()[0]))


def build(cfg: object, env: HostEnv) -> CpuMemoryCollector:
    return CpuMemoryCollector(env.proc_root)  # nothing to configure


@dataclass(frozen=True)
class HostCollector:
    """One host collector as the agent knows it: its name (in the `collectors` key), how it is
    built, and the config dataclass of its own keys (composed into the agent's config; a reload
    rebuilds the collector when they change, and keeps the others with their state)."""

    name: str
    build: Callable[[Any, HostEnv], Collector]
    config: type | None = None


# the registry: adding a collector is its module (a Config and a build) and one line here
HOST_COLLECTORS = (
    HostCollector("system", build),
    HostCollector("disk", disk.build),
    HostCollector("filesystem", filesystem.build, filesystem.FilesystemConfig),
    HostCollector("network", network.build),
    HostCollector("processes", processes.build, processes.ProcessesConfig),
    HostCollector("agent", agent_self.build),  # the agent's own delivery counters
)
COLLECTOR_NAMES = tuple(c.name for c in HOST_COLLECTORS)


def _collector_names(value: Any, where: str) -> list[str]:
    names = parse_names(value, where)
    unknown = [n for n in names if n not in COLLECTOR_NAMES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown collector(s) {', '.join(unknown)} (known: {', '.join(COLLECTOR_NAMES)})"
        )
    return names


@dataclass
class HostConfig:
    """Which host collectors run."""

    collectors: list = setting(
        list(COLLECTOR_NAMES),
        "names",
        f"host collectors to run, comma-separated (of {', '.join(COLLECTOR_NAMES)})",
        metavar="NAME[,NAME...]",
        parse=_collector_names,
    )


@dataclass
class HostCollectorsConfig(*(c.config for c in reversed(HOST_COLLECTORS) if c.config), HostConfig):
    """Every host collector's keys, composed from theirs (host_collectors builds from it)."""


def collector_settings(cfg: Any, name: str) -> tuple:
    """The values of a host collector's own keys: it is rebuilt on reload when they change."""
    config = next(c.config for c in HOST_COLLECTORS if c.name == name)
    return part_values(cfg, config) if config is not None else ()


def build_collectors(
    cfg: Any, env: HostEnv | None = None, reuse: dict[str, Collector] | None = None
) -> list[Collector]:
    """The collectors `cfg.collectors` names, in registry order; those in `reuse` are kept."""
    env = env or HostEnv()
    reuse = reuse or {}
    return [
        reuse[c.name] if c.name in reuse else c.build(cfg, env)
        for c in HOST_COLLECTORS
        if c.name in cfg.collectors
    ]


def host_collectors(
    enabled: Sequence[str] = COLLECTOR_NAMES,
    proc_root: str | Path = "/proc",
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
    exclude_fs_types: frozenset[str] = PSEUDO_FS,
    process_top_n: int = 10,
    process_groups: Sequence[ProcessGroup] = (),
    max_open_files: int = 1024,
) -> list[Collector]:
    """The enabled host collectors, in catalogue order; each runs and is timed on its own."""
    unknown = set(enabled) - set(COLLECTOR_NAMES)
    if unknown:
        raise ValueError(
            f"unknown collector(s) {', '.join(sorted(unknown))}; known: {', '.join(COLLECTOR_NAMES)}"
        )
    cfg = HostCollectorsConfig(
        collectors=list(enabled),
        filesystem_exclude_types=sorted(exclude_fs_types),
        process_top_n=process_top_n,
        processes=list(process_groups),
    )
    return build_collectors(cfg, HostEnv(Path(proc_root), statvfs, max_open_files))


class SystemCollector:
    """Every host collector as one (for tests and benchmarks; the agent runs them one by one)."""

    name = "host"

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        exclude_fs_types: frozenset[str] = PSEUDO_FS,
        process_top_n: int = 10,
        process_groups: Sequence[ProcessGroup] = (),
    ):
        self.parts = tuple(
            host_collectors(
                COLLECTOR_NAMES,
                proc_root,
                statvfs,
                exclude_fs_types,
                process_top_n=process_top_n,
                process_groups=process_groups,
            )
        )

    def collect(self, time_ms: int, emit: Emit) -> None:
        for part in self.parts:
            part.collect(time_ms, emit)

    def close(self) -> None:
        for part in self.parts:
            part.close()
