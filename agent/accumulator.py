"""Points from the collectors accumulate here until the batcher cuts them into a MetricBatch.

Appends go into typed `array`s (no per-point objects); `cut` turns them into numpy columns,
ordered series-major so consecutive points of a series sit together (better lz4 ratio).
"""

from __future__ import annotations

from array import array

import numpy as np

from ferry.columns import MetricBatch, SeriesDef


class Accumulator:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._refs: dict[SeriesDef, int] = {}
        self._series: list[SeriesDef] = []
        self._ref = array("I")
        self._time = array("q")
        self._value = array("d")
        self.first_ms: int | None = None

    def add(self, series: SeriesDef, time_ms: int, value: float) -> None:
        ref = self._refs.get(series)
        if ref is None:
            ref = self._refs[series] = len(self._series)
            self._series.append(series)
        self._ref.append(ref)
        self._time.append(time_ms)
        self._value.append(value)
        if self.first_ms is None:
            self.first_ms = time_ms

    def __len__(self) -> int:
        return len(self._ref)

    def cut(self) -> MetricBatch:
        refs = np.frombuffer(self._ref, dtype=np.uint32).copy()
        times = np.frombuffer(self._time, dtype=np.int64).copy()
        values = np.frombuffer(self._value, dtype=np.float64).copy()
        series = self._series
        self._reset()
        order = np.lexsort((times, refs))
        return MetricBatch(series=series, series_ref=refs[order], time_ms=times[order], value=values[order])
