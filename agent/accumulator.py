"""Points from the collectors accumulate here until the batcher cuts them into columns.

Points are kept per series in typed `array`s (no per-point objects), so a cut lays them out
series-major, consecutive points of a series together (the better lz4 ratio), without a sort.
Series are looked up by identity: collectors hand out the same `SeriesDef` object every cycle
(`SeriesCache`), and the batch holds a reference to each, so an id cannot be reused within it.
An equal series under another object only costs a second row in the frame's series table.
"""

from __future__ import annotations

from array import array
from typing import NamedTuple

from ferry.series import SeriesDef


class Columns(NamedTuple):
    series: list[SeriesDef]
    refs: array  # "I"
    times: array  # "q", unix ms
    values: array  # "d"


class Accumulator:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._refs: dict[int, int] = {}
        self._series: list[SeriesDef] = []
        self._times: list[array] = []
        self._values: list[array] = []
        self._n = 0
        self.time_ms = 0

    def add(self, series: SeriesDef, time_ms: int, value: float) -> None:
        self.time_ms = time_ms
        self.point(series, value)

    def point(self, series: SeriesDef, value: float) -> None:
        """A point at `time_ms` (set once per collection cycle): the collectors' hot path."""
        ref = self._refs.get(id(series))
        if ref is None:
            ref = self._new(series)
        self._times[ref].append(self.time_ms)
        self._values[ref].append(value)
        self._n += 1

    def _new(self, series: SeriesDef) -> int:
        ref = self._refs[id(series)] = len(self._series)
        self._series.append(series)
        self._times.append(array("q"))
        self._values.append(array("d"))
        return ref

    def __len__(self) -> int:
        return self._n

    def cut(self) -> Columns:
        refs, times, values = array("I"), array("q"), array("d")
        for ref, (t, v) in enumerate(zip(self._times, self._values, strict=True)):
            refs.extend(array("I", [ref]) * len(t))
            times.extend(t)
            values.extend(v)
        out = Columns(self._series, refs, times, values)
        self._reset()
        return out
