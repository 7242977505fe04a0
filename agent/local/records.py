"""`ferry.v1.Records` from apps → a validated `Intake` for the pipeline thread.

Every record is checked by the rules the collector applies (`ferry.limits`, the same functions:
names, labels, units, values, bounds, every text field of events and logs) before any of a
request is accepted, so a bad record is refused with its index and reason instead of poisoning a
frame full of other points; the Local service checks times by `ferry.limits.on_arrival`, the
collector's window narrowed by the time a frame may take to get there. Times: a record's own
time if set, else the receipt time. A refusal carries a `reason` (what kind of rule it broke),
by which the service counts what it dropped.

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

from ferry.agent import selfmetrics as m
from ferry.agent.accumulator import series_bytes
from ferry.agent.intake import Intake, Point
from ferry.limits import (
    MAX_RECORDS,
    Limits,
    RecordLimits,
    ValidationError,
    check_bounds,
    check_labels,
    check_name,
    check_time_ms,
    check_unit,
)
from ferry.records import KINDS, count
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, KIND_NAMES, SeriesDef
from ferry.v1 import local_pb2

ACCEPTED_KINDS = (GAUGE, COUNTER, DELTA)
_INF = math.inf


class RecordError(ValueError):
    """A request the agent refuses; `code` is the gRPC status name to answer with."""

    def __init__(self, message: str, code: str = "INVALID_ARGUMENT", reason: str = "invalid"):
        super().__init__(message)
        self.code = code
        self.reason = reason  # series, kind, value, time, histogram, events, logs, size, busy


def _refuse(reason: str, exc: ValidationError) -> RecordError:
    return RecordError(str(exc), reason=reason)


class KnownSeries:
    """Series seen before, each checked once and held as one `SeriesDef` object: the batcher
    keys series by identity, so an app's records for one series share one row of the frame's
    series table however many arrive. Emptied when it passes `limit` entries or `max_bytes`
    of series (32 labels of 256 bytes make a series of ~10 KB: a count alone bounds nothing)."""

    def __init__(self, limit: int = 20_000, max_bytes: int = 4 * 1024 * 1024):
        self.limit = limit
        self.max_bytes = max_bytes
        self._known: dict[tuple, SeriesDef] = {}
        self._bytes = 0

    def get(self, r, kind: int, bounds: tuple, limits: Limits, what: str) -> SeriesDef:
        key = (r.name, kind, r.unit, tuple(sorted(r.labels.items())), bounds)
        series = self._known.get(key)
        if series is None:
            where = f"{what} ({r.name[:40]!r})"
            check_name(r.name, limits, f"{what}: name")
            check_labels(key[3], limits, where)
            check_unit(r.unit, limits, where)
            if kind == HISTOGRAM:
                check_bounds(bounds, limits, where)
            series = SeriesDef(r.name, kind, r.unit, key[3], bounds)
            size = series_bytes(series)
            if len(self._known) >= self.limit or self._bytes + size > self.max_bytes:
                self._known.clear()
                self._bytes = 0
            self._known[key] = series
            self._bytes += size
        return series


def convert(
    records: local_pb2.Records,
    now_ns: int,
    limits: Limits,
    record_limits: RecordLimits | None = None,
    known: KnownSeries | None = None,
) -> Intake:
    """Raises RecordError naming the first bad record; nothing of the request is taken then."""
    n = len(records.metrics) + len(records.histograms) + count(records)
    if n > MAX_RECORDS:
        raise RecordError(f"{n} records in one request > {MAX_RECORDS} allowed", "RESOURCE_EXHAUSTED", "size")
    out = Intake()
    now_ms = now_ns // 1_000_000
    try:
        known = known if known is not None else KnownSeries()
        _metrics(records, now_ms, limits, known, out)
        _histograms(records, now_ms, limits, known, out)
        _texts(records, now_ns, record_limits or RecordLimits(), out)
    except ValidationError as exc:
        raise RecordError(str(exc)) from None
    return out


def _metrics(
    records: local_pb2.Records, now_ms: int, limits: Limits, known: KnownSeries, out: Intake
) -> None:
    points, deltas = out.points, out.deltas
    lo, hi = now_ms - limits.max_past_ms, now_ms + limits.max_future_ms
    for i, r in enumerate(records.metrics):
        try:
            series = known.get(r, r.kind, (), limits, f"metric record {i}")  # name and labels first
        except ValidationError as exc:
            raise _refuse("series", exc) from None
        if r.kind not in ACCEPTED_KINDS:
            where = f"metric record {i} ({r.name[:40]!r})"
            name = KIND_NAMES.get(r.kind, "unspecified" if r.kind == 0 else str(r.kind))
            raise RecordError(
                f"{where}: kind {name} is not one of gauge, counter, delta (histograms go in `histograms`)",
                reason="kind",
            )
        value, t = r.value, r.time_unix_ms or now_ms
        if not (-_INF < value < _INF and lo <= t <= hi):
            where = f"metric record {i} ({r.name[:40]!r})"
            if not math.isfinite(value):
                raise RecordError(f"{where}: value {value} is not finite", reason="value")
            try:
                check_time_ms(t, now_ms, limits, where)
            except ValidationError as exc:
                raise _refuse("time", exc) from None
        (deltas if r.kind == DELTA else points).append((series, t, value))


def _histograms(
    records: local_pb2.Records, now_ms: int, limits: Limits, known: KnownSeries, out: Intake
) -> None:
    for i, r in enumerate(records.histograms):
        where = f"histogram record {i} ({r.name[:40]!r})"
        bounds = tuple(r.bounds)
        try:
            series = known.get(r, HISTOGRAM, bounds, limits, f"histogram record {i}")
        except ValidationError as exc:
            raise _refuse("series", exc) from None
        if len(r.counts) != len(bounds) + 1:
            raise RecordError(
                f"{where}: {len(r.counts)} counts != {len(bounds) + 1} (one per bound, then +Inf)",
                reason="histogram",
            )
        if not math.isfinite(r.sum):
            raise RecordError(f"{where}: sum {r.sum} is not finite", reason="value")
        t = r.time_unix_ms or now_ms
        try:
            check_time_ms(t, now_ms, limits, where)
        except ValidationError as exc:
            raise _refuse("time", exc) from None
        out.histograms.append((series, t, r.sum, tuple(r.counts)))


def _texts(records: local_pb2.Records, now_ns: int, limits: RecordLimits, out: Intake) -> None:
    """Records of every kind (events, logs), stamped with the receipt time if they have none."""
    for kind in KINDS:
        taken = getattr(out, kind.name)
        for i, record in enumerate(getattr(records, kind.name)):
            if not record.time_unix_ns:
                record.time_unix_ns = now_ns
            try:
                kind.check(record, now_ns, limits, f"{kind.noun} {i}")
            except ValidationError as exc:
                raise _refuse(kind.name, exc) from None
            taken.append(record)


class DeltaSums:
    """Increments per series since the last flush. An increment that would take its series'
    sum past the largest double (two of 1.7e308) is dropped and counted
    (`ferry_agent_records_dropped_total{reason="overflow"}`): the sum is sent as a point, and
    the collector refuses a non-finite one with the whole frame."""

    def __init__(self, clock: Callable[[], float] = time.time, max_series: int = 20_000):
        self.clock = clock
        self.max_series = max_series
        self._sums: dict[SeriesDef, float] = {}

    def __len__(self) -> int:
        return len(self._sums)

    @property
    def full(self) -> bool:
        """As many series as a frame should carry: flush now (however long the batch has been
        open), so an app sending to ever new series cannot grow this without bound."""
        return len(self._sums) >= self.max_series

    def add(self, increments: list[Point]) -> None:
        sums = self._sums
        for series, _t, value in increments:
            total = sums.get(series, 0.0) + value
            if -_INF < total < _INF:
                sums[series] = total
            else:
                m.RECORDS_DROPPED.labels("overflow").inc()

    def flush(self) -> list[Point]:
        """One point per series with the sum since the last flush, stamped now."""
        if not self._sums:
            return []
        now_ms = int(self.clock() * 1000)
        out = [(series, now_ms, total) for series, total in self._sums.items()]
        self._sums = {}
        return out
