"""`ferry.v1.Records` from apps → a validated `Intake` for the pipeline thread.

Every record is checked by the rules the collector applies (`ferry.limits`) before any of a
request is accepted, so a bad record is refused with its index and reason instead of poisoning a
frame full of other points. Times: a record's own time if set, else the receipt time.

DELTA records are not forwarded one by one: increments are summed per series and flushed as one
point per series (timestamped at the flush) when the agent cuts a batch. An app sending 100k
increments a second costs the pipeline a few hundred points per frame. HISTOGRAM records keep
their time and are forwarded as they are: each holds the observations of one interval (the
client library sends one per series per flush), never a running total.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from agent.intake import Intake, Point
from ferry.limits import (
    Limits,
    RecordLimits,
    ValidationError,
    check_bounds,
    check_event,
    check_labels,
    check_log,
    check_name,
)
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, KIND_NAMES, SeriesDef, labels_key
from ferry.v1 import local_pb2

ACCEPTED_KINDS = (GAUGE, COUNTER, DELTA)
MAX_RECORDS = 10_000  # per request; a bigger batch is refused whole (RESOURCE_EXHAUSTED)


class RecordError(ValueError):
    """A request the agent refuses; `code` is the gRPC status name to answer with."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.code = code


def convert(
    records: local_pb2.Records,
    now_ns: int,
    limits: Limits,
    record_limits: RecordLimits | None = None,
) -> Intake:
    """Raises RecordError naming the first bad record; nothing of the request is taken then."""
    n = len(records.metrics) + len(records.histograms) + len(records.events) + len(records.logs)
    if n > MAX_RECORDS:
        raise RecordError(f"{n} records in one request > {MAX_RECORDS} allowed", "RESOURCE_EXHAUSTED")
    out = Intake()
    now_ms = now_ns // 1_000_000
    try:
        _metrics(records, now_ms, limits, out)
        _histograms(records, now_ms, limits, out)
        _texts(records, now_ns, record_limits or RecordLimits(), out)
    except ValidationError as exc:
        raise RecordError(str(exc)) from None
    return out


def _series(name: str, labels: dict, limits: Limits, what: str) -> tuple[str, tuple]:
    where = f"{what} ({name[:40]!r})"
    check_name(name, limits, f"{what}: name")
    key = labels_key(dict(labels))
    check_labels(key, limits, where)
    return where, key


def _check_time(t: int, now_ms: int, limits: Limits, where: str) -> None:
    lo, hi = now_ms - limits.max_past_ms, now_ms + limits.max_future_ms
    if not lo <= t <= hi:
        raise ValidationError(f"{where}: time {t} ms is outside the accepted window [{lo}, {hi}]")


def _metrics(records: local_pb2.Records, now_ms: int, limits: Limits, out: Intake) -> None:
    for i, r in enumerate(records.metrics):
        where, labels = _series(r.name, r.labels, limits, f"metric record {i}")
        if r.kind not in ACCEPTED_KINDS:
            name = KIND_NAMES.get(r.kind, "unspecified" if r.kind == 0 else str(r.kind))
            raise ValidationError(
                f"{where}: kind {name} is not one of gauge, counter, delta (histograms go in `histograms`)"
            )
        if not math.isfinite(r.value):
            raise ValidationError(f"{where}: value {r.value} is not finite")
        t = r.time_unix_ms or now_ms
        _check_time(t, now_ms, limits, where)
        point = (SeriesDef(r.name, r.kind, r.unit, labels), t, r.value)
        (out.deltas if r.kind == DELTA else out.points).append(point)


def _histograms(records: local_pb2.Records, now_ms: int, limits: Limits, out: Intake) -> None:
    for i, r in enumerate(records.histograms):
        where, labels = _series(r.name, r.labels, limits, f"histogram record {i}")
        bounds = tuple(r.bounds)
        check_bounds(bounds, limits, where)
        if len(r.counts) != len(bounds) + 1:
            raise ValidationError(
                f"{where}: {len(r.counts)} counts != {len(bounds) + 1} (one per bound, then +Inf)"
            )
        if not math.isfinite(r.sum):
            raise ValidationError(f"{where}: sum {r.sum} is not finite")
        t = r.time_unix_ms or now_ms
        _check_time(t, now_ms, limits, where)
        series = SeriesDef(r.name, HISTOGRAM, r.unit, labels, bounds)
        out.histograms.append((series, t, r.sum, tuple(r.counts)))


def _texts(records: local_pb2.Records, now_ns: int, limits: RecordLimits, out: Intake) -> None:
    for i, event in enumerate(records.events):
        if not event.time_unix_ns:
            event.time_unix_ns = now_ns
        check_event(event, now_ns, limits, f"event {i}")
        out.events.append(event)
    for i, log in enumerate(records.logs):
        if not log.time_unix_ns:
            log.time_unix_ns = now_ns
        check_log(log, now_ns, limits, f"log {i}")
        out.logs.append(log)


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
