"""What a collector is: `collect(time_ms, emit)` calls `emit(series, value)` per point."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ferry.columns import SeriesDef

Emit = Callable[[SeriesDef, float], None]


class Collector(Protocol):
    name: str

    def collect(self, time_ms: int, emit: Emit) -> None: ...
