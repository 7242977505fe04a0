"""What a collector is, and the small helpers the /proc collectors share.

A collector's `collect(time_ms, emit)` calls `emit(series, value)` per point. `SeriesCache`
keeps one SeriesDef per (metric, label values) so steady-state cycles allocate nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent.catalogue import MetricDef
from ferry.series import SeriesDef

Emit = Callable[[SeriesDef, float], None]


class Collector(Protocol):
    name: str

    def collect(self, time_ms: int, emit: Emit) -> None: ...


class SeriesCache:
    def __init__(self) -> None:
        self._series: dict[tuple, SeriesDef] = {}

    def __call__(self, metric: MetricDef, *values: str) -> SeriesDef:
        key = (metric.name, values)
        s = self._series.get(key)
        if s is None:
            s = self._series[key] = metric.series(values)
        return s


def read(path: Path) -> str | None:
    """A /proc file's text, or None where this kernel does not have it (that source is skipped)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
