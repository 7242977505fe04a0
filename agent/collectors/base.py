"""What a collector is, and the small helpers the /proc collectors share.

A collector's `collect(time_ms, emit)` calls `emit(series, value)` per point. `SeriesCache`
keeps one SeriesDef per (metric, label values) so steady-state cycles allocate nothing new.
`HostEnv` is what every collector's `build(config, env)` reads besides its config: the /proc
root and statvfs (injectable, so tests run the real parsers on a fixture tree) and the budget
of descriptors the process collector may keep open.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ferry.agent.catalogue import MetricDef
from ferry.series import SeriesDef

Emit = Callable[[SeriesDef, float], None]


class Collector(Protocol):
    name: str

    def collect(self, time_ms: int, emit: Emit) -> None: ...

    def close(self) -> None: ...


def proc_file_budget() -> int:
    """/proc descriptors the process collector may keep open: a quarter of the soft fd limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(soft // 4, 16384) if soft != resource.RLIM_INFINITY else 16384


@dataclass(frozen=True)
class HostEnv:
    proc_root: Path = Path("/proc")
    statvfs: Callable[[str], os.statvfs_result] = os.statvfs
    max_open_files: int = field(default_factory=proc_file_budget)


class SeriesCache:
    def __init__(self) -> None:
        self._series: dict[tuple, SeriesDef] = {}

    def __call__(self, metric: MetricDef, *values: str) -> SeriesDef:
        key = (metric.name, values)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = metric.series(values)
        return s


class ProcText:
    """/proc files of one collector, kept open and re-read with `pread` at offset 0.

    The kernel regenerates a /proc file on every read from offset 0, and opening it through
    Python's io layer costs more than the read itself (20 of 30 us for /proc/stat here).
    """

    def __init__(self, root: Path):
        self.root = root
        self._fds: dict[str, int] = {}
        self._sizes: dict[str, int] = {}

    def __call__(self, name: str) -> str | None:
        """The file's text, or None where this kernel does not have it (that source is skipped)."""
        fd = self._fds.get(name)
        if fd is None:
            try:
                fd = self._fds[name] = os.open(self.root / name, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        size = self._sizes.get(name, 16384)
        while True:
            data = os.pread(fd, size, 0)
            if len(data) < size:
                return data.decode(errors="replace")
            size = self._sizes[name] = size * 2  # it filled the buffer: there may be more

    def required(self, name: str) -> str:
        text = self(name)
        if text is None:
            raise FileNotFoundError(f"{self.root / name}: not on this kernel")
        return text

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
