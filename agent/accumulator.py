"""Points from the collectors accumulate here until the batcher cuts them into columns.

Points are kept per series in typed `array`s (no per-point objects), so a cut lays them out
series-major, consecutive points of a series together (the better lz4 ratio), without a sort.
Series are looked up by identity: collectors hand out the same `SeriesDef` object every cycle
(`SeriesCache`), and the batch holds a reference to each, so an id cannot be reused within it.
An equal series under another object only costs a second row in the frame's series table.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import NamedTuple

from ferry.series import SeriesDef


class Columns(NamedTuple):
    series: list[SeriesDef]
    refs: array  # "I"
    times: array  # "q", unix ms
    values: array  # "d"; for a HISTOGRAM point, the sum of its observations
    buckets: array  # "Q": for each HISTOGRAM point in column order, len(bounds) + 1 counts


class Accumulator:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._refs: dict[int, int] = {}
        self._series: list[SeriesDef] = []
        self._times: list[array] = []
        self._values: list[array] = []
        self._buckets: dict[int, array] = {}  # ref -> counts of a HISTOGRAM series' points
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

    def histogram(self, series: SeriesDef, time_ms: int, total: float, counts: Sequence[int]) -> None:
        """A HISTOGRAM point: the sum and the per-bucket counts of the observations it holds."""
        if len(counts) != len(series.bounds) + 1:
            raise ValueError(f"{series.name}: {len(counts)} bucket counts != {len(series.bounds) + 1}")
        ref = self._refs.get(id(series))
        if ref is None:
            ref = self._new(series)
        self._times[ref].append(time_ms)
        self._values[ref].append(total)
        self._buckets.setdefault(ref, array("Q")).extend(counts)
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
        refs, times, values, buckets = array("I"), array("q"), array("d"), array("Q")
        for ref, (t, v) in enumerate(zip(self._times, self._values, strict=True)):
            refs.extend(array("I", [ref]) * len(t))
            times.extend(t)
            values.extend(v)
            if ref in self._buckets:
                buckets.extend(self._buckets[ref])
        out = Columns(self._series, refs, times, values, buckets)
        self._reset()
        return out
