"""Points from the collectors accumulate here until the batcher cuts them into columns.

Points are kept per series in typed `array`s (no per-point objects), so a cut lays them out
series-major, consecutive points of a series together (the better lz4 ratio), without a sort.
Series are looked up by identity: collectors hand out the same `SeriesDef` object every cycle
(`SeriesCache`), and the batch holds a reference to each, so an id cannot be reused within it.
An equal series under another object only costs a second row in the frame's series table.
A `relabel` function (the agent's redaction rules) says what each series is sent as.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from typing import NamedTuple

from ferry.series import SeriesDef

POINT_BYTES = 20  # a point's ref, time and value in the packed columns


def series_bytes(series: SeriesDef) -> int:
    """An upper bound on a series' serialized `ferry.v1.Series` message in the series table: its
    text, 3 bytes of tag and length per string (up to 16 KiB each), the bounds, the kind."""
    text = len(series.name.encode()) + len(series.unit.encode())
    text += sum(len(k.encode()) + len(v.encode()) for k, v in series.labels)
    return text + 3 * (3 + 2 * len(series.labels)) + 8 * len(series.bounds) + 16


class Columns(NamedTuple):
    series: list[SeriesDef]
    refs: array  # "I"
    times: array  # "q", unix ms
    values: array  # "d"; for a HISTOGRAM point, the sum of its observations
    buckets: array  # "Q": for each HISTOGRAM point in column order, len(bounds) + 1 counts


class Accumulator:
    def __init__(self, relabel: Callable[[SeriesDef], SeriesDef] | None = None) -> None:
        # what a series becomes in the frame (ferry.agent.redact), asked once per series per batch
        self.relabel = relabel
        self._reset()

    def _reset(self) -> None:
        self._slots: dict[int, tuple[array, array, int]] = {}  # id(series) -> times, values, ref
        self._series: list[SeriesDef] = []
        self._held: list[SeriesDef] = []  # series relabelled: held, so their ids stay theirs
        self._buckets: dict[int, array] = {}  # ref -> counts of a HISTOGRAM series' points
        self._n = 0
        self._series_bytes = 0  # what the series table will take, serialized (an upper bound)
        self._bucket_n = 0
        self.series_fields = 0  # protobuf fields of the series table (the collector counts them)
        self.time_ms = 0

    def add(self, series: SeriesDef, time_ms: int, value: float) -> None:
        self.time_ms = time_ms
        self.point(series, value)

    def point(self, series: SeriesDef, value: float) -> None:
        """A point at `time_ms` (set once per collection cycle): the collectors' hot path."""
        slot = self._slots.get(id(series))
        if slot is None:
            slot = self._new(series)
        slot[0].append(self.time_ms)
        slot[1].append(value)
        self._n += 1

    def extend(self, series: SeriesDef, time_ms: int, values: array) -> None:
        """`len(values)` points of one series at `time_ms` (values typecode "d"): a bulk source's
        path, a few C-level copies for the lot rather than a `point` call each."""
        slot = self._slots.get(id(series)) or self._new(series)
        slot[0].extend(array("q", [time_ms]) * len(values))
        slot[1].extend(values)
        self._n += len(values)

    def histogram(self, series: SeriesDef, time_ms: int, total: float, counts: Sequence[int]) -> None:
        """A HISTOGRAM point: the sum and the per-bucket counts of the observations it holds."""
        if len(counts) != len(series.bounds) + 1:
            raise ValueError(f"{series.name}: {len(counts)} bucket counts != {len(series.bounds) + 1}")
        slot = self._slots.get(id(series))
        if slot is None:
            slot = self._new(series)
        slot[0].append(time_ms)
        slot[1].append(total)
        self._buckets.setdefault(slot[2], array("Q")).extend(counts)
        self._bucket_n += len(counts)
        self._n += 1

    def _new(self, series: SeriesDef) -> tuple[array, array, int]:
        slot = self._slots[id(series)] = (array("q"), array("d"), len(self._series))
        if self.relabel is not None:
            sent = self.relabel(series)
            if sent is not series:
                self._held.append(series)
                series = sent
        self._series.append(series)
        self._series_bytes += series_bytes(series)
        self.series_fields += 4 + 2 * len(series.labels)
        return slot

    @property
    def series_count(self) -> int:
        return len(self._series)

    @property
    def bytes(self) -> int:
        """An upper bound on what the cut takes serialized: its series table and its columns
        (4-byte refs, 8-byte time deltas and values, 8-byte bucket counts)."""
        return self._series_bytes + POINT_BYTES * self._n + 8 * self._bucket_n + 64

    def __len__(self) -> int:
        return self._n

    def cut(self) -> Columns:
        refs, times, values, buckets = array("I"), array("q"), array("d"), array("Q")
        for t, v, ref in self._slots.values():  # in first-seen order, as refs were given
            refs.extend(array("I", [ref]) * len(t))
            times.extend(t)
            values.extend(v)
            if ref in self._buckets:
                buckets.extend(self._buckets[ref])
        out = Columns(self._series, refs, times, values, buckets)
        self._reset()
        return out
