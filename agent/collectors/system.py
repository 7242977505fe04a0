"""Host metrics from /proc and statvfs: CPU, memory, load, network, filesystems.

Reads /proc files directly (a few hundred microseconds a cycle); the proc root is injectable so
tests run the real parser on a fixture tree. Rates (cpu utilization) need two samples: the first
cycle emits none rather than a false 0.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agent import catalogue as c
from agent.collectors.base import Emit
from ferry.columns import SeriesDef

# /proc/stat columns after the cpu name, mapped to OpenTelemetry cpu states
CPU_STATES = ("user", "nice", "system", "idle", "wait", "interrupt", "softirq", "steal")
# not disks: skipped unless the configuration says otherwise
PSEUDO_FS = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs",
        "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore", "ramfs",
        "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs", "fuse.lxcfs",
        "fuse.gvfsd-fuse", "fuse.portal", "nfsd",
    }
)  # fmt: skip


class SystemCollector:
    name = "system"

    def __init__(
        self,
        proc_root: str | Path = "/proc",
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
        exclude_fs_types: frozenset[str] = PSEUDO_FS,
    ):
        self.proc = Path(proc_root)
        self.statvfs = statvfs
        self.exclude_fs_types = exclude_fs_types
        self.ticks = os.sysconf("SC_CLK_TCK")
        self._prev_cpu: dict[str, list[int]] = {}
        self._series: dict[tuple, SeriesDef] = {}

    def _s(self, metric: c.MetricDef, *values: str) -> SeriesDef:
        key = (metric.name, values)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = metric.series(values)
        return s

    def collect(self, time_ms: int, emit: Emit) -> None:
        self._cpu(emit)
        self._memory(emit)
        self._load(emit)
        self._network(emit)
        self._filesystems(emit)

    def _cpu(self, emit: Emit) -> None:
        for line in (self.proc / "stat").read_text().splitlines():
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            parts = line.split()
            cpu, ticks = parts[0], [int(x) for x in parts[1:9]]
            ticks += [0] * (8 - len(ticks))
            for state, t in zip(CPU_STATES, ticks, strict=True):
                emit(self._s(c.CPU_TIME, cpu, state), t / self.ticks)
            prev = self._prev_cpu.get(cpu)
            self._prev_cpu[cpu] = ticks
            if prev is None:
                continue
            deltas = [max(0, a - b) for a, b in zip(ticks, prev, strict=True)]
            total = sum(deltas)
            if total <= 0:
                continue
            for state, d in zip(CPU_STATES, deltas, strict=True):
                emit(self._s(c.CPU_UTILIZATION, cpu, state), d / total)

    def _memory(self, emit: Emit) -> None:
        info = {}
        for line in (self.proc / "meminfo").read_text().splitlines():
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
            emit(self._s(c.MEMORY_USAGE, state), float(value))
            emit(self._s(c.MEMORY_UTILIZATION, state), value / total if total else 0.0)

    def _load(self, emit: Emit) -> None:
        one, five, fifteen = (self.proc / "loadavg").read_text().split()[:3]
        emit(self._s(c.LOAD_1M), float(one))
        emit(self._s(c.LOAD_5M), float(five))
        emit(self._s(c.LOAD_15M), float(fifteen))

    def _network(self, emit: Emit) -> None:
        # columns after 'dev:': 8 receive fields (bytes packets errs drop ...), then 8 transmit fields
        for line in (self.proc / "net" / "dev").read_text().splitlines()[2:]:
            dev, _, rest = line.partition(":")
            f = rest.split()
            if len(f) < 16:
                continue
            dev = dev.strip()
            for direction, base in (("receive", 0), ("transmit", 8)):
                emit(self._s(c.NETWORK_IO, dev, direction), float(f[base]))
                emit(self._s(c.NETWORK_PACKETS, dev, direction), float(f[base + 1]))
                emit(self._s(c.NETWORK_ERRORS, dev, direction), float(f[base + 2]))
                emit(self._s(c.NETWORK_DROPPED, dev, direction), float(f[base + 3]))

    def _filesystems(self, emit: Emit) -> None:
        # a later mount on the same mountpoint hides the earlier one: statvfs sees the last
        visible: dict[str, tuple[str, str, str]] = {}
        for line in (self.proc / "mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4:
                visible[_unescape(parts[1])] = (parts[0], parts[2], parts[3])
        for mountpoint, (device, fstype, options) in visible.items():
            if fstype in self.exclude_fs_types:
                continue
            try:
                st = self.statvfs(mountpoint)
            except OSError:
                continue
            mode = "ro" if "ro" in options.split(",") else "rw"
            size = st.f_frsize
            values = {
                "used": (st.f_blocks - st.f_bfree) * size,
                "free": st.f_bavail * size,
                "reserved": (st.f_bfree - st.f_bavail) * size,
            }
            for state, v in values.items():
                emit(self._s(c.FILESYSTEM_USAGE, device, mode, mountpoint, state, fstype), float(v))


def _unescape(path: str) -> str:
    """/proc/mounts escapes space, tab, newline and backslash as octal."""
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
