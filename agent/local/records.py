"""`ferry.v1.Records` from apps → validated points for the batcher.

Every record is checked by the rules the collector applies (`ferry.limits`) before any of a
request is accepted, so a bad record is refused with its index and reason instead of poisoning a
frame full of other points. Times: a record's `time_unix_ms` if set, else the receipt time.

DELTA records are not forwarded one by one: increments are summed per series and flushed as one
point per series (timestamped at the flush) when the agent cuts a batch. An app sending 100k
increments a second costs the pipeline a few hundred points per frame.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ferry.limits import Limits, ValidationError, check_labels, check_name
from ferry.series import COUNTER, DELTA, GAUGE, KIND_NAMES, SeriesDef, labels_key
from ferry.v1 import local_pb2

ACCEPTED_KINDS = (GAUGE, COUNTER, DELTA)
MAX_RECORDS = 10_000  # per request; a bigger batch is refused whole (RESOURCE_EXHAUSTED)

Point = tuple[SeriesDef, int, float]


class RecordError(ValueError):
    """A request the agent refuses; `code` is the gRPC status name to answer with."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.code = code


def convert(records: local_pb2.Records, now_ms: int, limits: Limits) -> tuple[list[Point], list[Point]]:
    """(points to batch as they are, DELTA increments to sum); raises RecordError."""
    n = len(records.metrics) + len(records.histograms) + len(records.events) + len(records.logs)
    if n > MAX_RECORDS:
        raise RecordError(f"{n} records in one request > {MAX_RECORDS} allowed", "RESOURCE_EXHAUSTED")
    if records.histograms or records.events or records.logs:
        raise RecordError("histogram, event and log records are not accepted yet (metric records only)")
    points: list[Point] = []
    deltas: list[Point] = []
    lo, hi = now_ms - limits.max_past_ms, now_ms + limits.max_future_ms
    for i, r in enumerate(records.metrics):
        where = f"metric record {i} ({r.name[:40]!r})"
        labels = labels_key(dict(r.labels))
        try:
            check_name(r.name, limits, f"metric record {i}: name")
            check_labels(labels, limits, where)
        except ValidationError as exc:
            raise RecordError(str(exc)) from None
        if r.kind not in ACCEPTED_KINDS:
            name = KIND_NAMES.get(r.kind, "unspecified" if r.kind == 0 else str(r.kind))
            raise RecordError(f"{where}: kind {name} is not one of gauge, counter, delta")
        if not math.isfinite(r.value):
            raise RecordError(f"{where}: value {r.value} is not finite")
        t = r.time_unix_ms or now_ms
        if not lo <= t <= hi:
            raise RecordError(f"{where}: time {t} ms is outside the accepted window [{lo}, {hi}]")
        series = SeriesDef(r.name, r.kind, r.unit, labels)
        (deltas if r.kind == DELTA else points).append((series, t, r.value))
    return points, deltas


class DeltaSums:
    """Increments per series since the last flush."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._sums: dict[SeriesDef, float] = {}

    def __len__(self) -> int:
        return len(self._sums)

    def add(self, increments: list[Point]) -> None:
        sums = self._sums
        for series, _t, value in increments:
            sums[series] = sums.get(series, 0.0) + value

    def flush(self) -> list[Point]:
        """One point per series with the sum since the last flush, stamped now."""
        if not self._sums:
            return []
        now_ms = int(self.clock() * 1000)
        out = [(series, now_ms, total) for series, total in self._sums.items()]
        self._sums = {}
        return out
