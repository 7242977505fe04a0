"""Cuts accumulated points and records (every kind of `ferry.records`: events, logs) into
payloads and hands them to the sink (the spool's append).

A batch is cut when it holds `max_points` records (points and records together), or
`max_bytes` serialized (`ferry.wire.frames.CUT_PAYLOAD_BYTES`, the size both sides agree on: an
upper bound counted as points, series and records come in), or half of any count the collector
caps before it parses a frame (series, label keys, records, protobuf fields: `ferry.limits`),
or when its oldest record is `max_age_s` old (checked after each collector's run and on a
timer), and once more at shutdown. So the agent never builds a frame the collector cannot take,
however many series or records an app sends.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence

from ferry.agent import selfmetrics as m
from ferry.agent.accumulator import Accumulator
from ferry.agent.intake import Intake
from ferry.limits import Limits, RecordLimits
from ferry.records import KINDS
from ferry.series import SeriesDef
from ferry.v1 import payload_pb2
from ferry.wire.encode import SeriesMessages, encode_columns, pack_payload
from ferry.wire.frames import CUT_PAYLOAD_BYTES

RECORD_FIELDS = 16  # protobuf fields of a record besides its attributes (an upper bound)
CHECK_EVERY = 64  # points taken between size checks (a series is at most ~12 KB)


class Batcher:
    def __init__(
        self,
        resource: payload_pb2.Resource,
        sink: Callable[[bytes, int], object],
        max_points: int = 20_000,
        max_age_s: float = 10.0,
        before_cut: Callable[[], list[tuple[SeriesDef, int, float]]] = list,
        max_bytes: int = CUT_PAYLOAD_BYTES,
        limits: Limits | None = None,
        record_limits: RecordLimits | None = None,
        relabel: Callable[[SeriesDef], SeriesDef] | None = None,
    ):
        self.resource = resource
        self.before_cut = before_cut  # points held elsewhere until a frame is cut (summed deltas)
        self.sink = sink
        self.max_points = max_points
        self.max_age_ms = int(max_age_s * 1000)
        self.max_bytes = max_bytes
        limits, record_limits = limits or Limits(), record_limits or RecordLimits()
        # half of each census cap: a check may come up to CHECK_EVERY points (or one intake's
        # histograms) late, and what one such step adds is far below the other half
        self._max_count = min(limits.max_points, limits.max_series, record_limits.max_records) // 2
        self._max_fields = limits.max_fields // 2
        self._max_labels = limits.max_series_labels // 2
        self.acc = Accumulator(relabel)  # relabel: what a series is sent as (ferry.agent.redact)
        self.series_messages = SeriesMessages()
        self._records: dict[str, list] = {k.name: [] for k in KINDS}  # kind → its records, in order
        self._record_bytes = 0
        self._record_fields = 0
        self._opened_ms: int | None = None

    def take(self, intake: Intake) -> None:
        """Points, histograms and records from an event-loop source (not its deltas, which the
        caller sums until `before_cut` hands them back)."""
        acc = self.acc
        for i, (series, time_ms, value) in enumerate(intake.points, 1):
            acc.add(series, time_ms, value)
            if not i % CHECK_EVERY and self.full():
                self._emit()
        for series, time_ms, total, counts in intake.histograms:
            acc.histogram(series, time_ms, total, counts)
            if self.full():
                self._emit()
        for kind in KINDS:
            self._add_records(kind, getattr(intake, kind.name))
        self.settle()

    def add_runs(self, time_ms: int, runs: Sequence[tuple[SeriesDef, array]]) -> None:
        """Runs of points at one time, each (series, values): a bulk source's path (the synthetic
        source), checked against the size bound once for the lot."""
        for series, values in runs:
            self.acc.extend(series, time_ms, values)
        self.settle()

    def _add_records(self, kind, records: Sequence) -> None:
        for r in records:
            self._records[kind.name].append(r)  # looked up each time: a cut replaces the lists
            self._record_bytes += r.ByteSize() + 4  # its tag and length in the Payload
            self._record_fields += RECORD_FIELDS + len(getattr(r, kind.attributes))
            if self.full():
                self._emit()

    def full(self) -> bool:
        """The open batch is as large as a frame may be: by count, serialized size or fields."""
        acc = self.acc
        return (
            len(self) >= min(self.max_points, self._max_count)
            or acc.bytes + self._record_bytes >= self.max_bytes
            or acc.series_fields + self._record_fields >= self._max_fields
            or (acc.series_fields - 4 * acc.series_count) // 2 >= self._max_labels
        )

    def emitter(self, time_ms: int) -> Callable[[SeriesDef, float], None]:
        """The emit function for one collection cycle at `time_ms`; call `settle` after each
        collector (the size bound is checked there, not per point)."""
        self.acc.time_ms = time_ms
        return self.acc.point

    def touch(self) -> None:
        """Start the age clock: something (held by `before_cut`) waits for the next frame."""
        if self._opened_ms is None:
            self._opened_ms = int(time.time() * 1000)

    def settle(self) -> None:
        n = len(self)
        if self._opened_ms is None and n:
            self._opened_ms = int(time.time() * 1000)
        if self.full():
            self.cut()
        m.BUFFERED_POINTS.set(len(self.acc))

    def __len__(self) -> int:
        return len(self.acc) + sum(map(len, self._records.values()))

    def due_at_ms(self) -> int | None:
        """When the open batch reaches its maximum age (None: no open batch). Other threads may
        read it to decide when to look again."""
        opened = self._opened_ms
        return None if opened is None else opened + self.max_age_ms

    def cut_if_due(self) -> None:
        due = self.due_at_ms()
        if due is not None and time.time() * 1000 >= due:
            self.cut()

    def cut(self) -> None:
        """Everything open, and what `before_cut` holds, into frames (more than one if it is
        more than a frame may hold)."""
        for i, (series, time_ms, value) in enumerate(self.before_cut(), 1):
            self.acc.add(series, time_ms, value)
            if not i % CHECK_EVERY and self.full():
                self._emit()
        self._opened_ms = None
        self._emit()

    def _emit(self) -> None:
        """The open batch as one frame into the sink (nothing when it is empty)."""
        n = len(self.acc)
        if not n and not any(self._records.values()):
            return
        metrics = encode_columns(*self.acc.cut(), messages=self.series_messages) if n else None
        records = self._records
        self._records, self._record_bytes, self._record_fields = {k.name: [] for k in KINDS}, 0, 0
        self.sink(pack_payload(self.resource, metrics, **records), n)
        m.BATCHES.inc()
        m.BUFFERED_POINTS.set(0)
