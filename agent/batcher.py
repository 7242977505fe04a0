"""Cuts accumulated points and records (every kind of `ferry.records`: events, logs) into
payloads and hands them to the sink (the spool's append).

A batch is cut when it holds `max_points` records (points and records together) or
`max_record_bytes` of records, or its oldest record is `max_age_s` old (checked after each
collector's run and on a timer), and once more at shutdown.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence

from ferry.agent import selfmetrics as m
from ferry.agent.accumulator import Accumulator
from ferry.agent.intake import Intake
from ferry.records import KINDS
from ferry.series import SeriesDef
from ferry.v1 import payload_pb2
from ferry.wire.encode import SeriesMessages, encode_columns, pack_payload

MAX_RECORD_BYTES = 8 * 1024 * 1024  # records of all kinds per frame; the collector takes 64 MiB raw


class Batcher:
    def __init__(
        self,
        resource: payload_pb2.Resource,
        sink: Callable[[bytes, int], object],
        max_points: int = 20_000,
        max_age_s: float = 10.0,
        before_cut: Callable[[], list[tuple[SeriesDef, int, float]]] = list,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ):
        self.resource = resource
        self.before_cut = before_cut  # points held elsewhere until a frame is cut (summed deltas)
        self.sink = sink
        self.max_points = max_points
        self.max_age_ms = int(max_age_s * 1000)
        self.max_record_bytes = max_record_bytes
        self.acc = Accumulator()
        self.series_messages = SeriesMessages()
        self._records: dict[str, list] = {k.name: [] for k in KINDS}  # kind → its records, in order
        self._record_bytes = 0
        self._opened_ms: int | None = None

    def take(self, intake: Intake) -> None:
        """Points, histograms and records from an event-loop source (not its deltas, which the
        caller sums until `before_cut` hands them back)."""
        acc = self.acc
        for series, time_ms, value in intake.points:
            acc.add(series, time_ms, value)
        for series, time_ms, total, counts in intake.histograms:
            acc.histogram(series, time_ms, total, counts)
        for kind in KINDS:
            self._add_records(kind.name, getattr(intake, kind.name))
        self.settle()

    def add_runs(self, time_ms: int, runs: Sequence[tuple[SeriesDef, array]]) -> None:
        """Runs of points at one time, each (series, values): a bulk source's path (the synthetic
        source), checked against the size bound once for the lot."""
        for series, values in runs:
            self.acc.extend(series, time_ms, values)
        self.settle()

    def _add_records(self, kind: str, records: Sequence) -> None:
        for r in records:
            self._records[kind].append(r)  # looked up each time: a cut replaces the lists
            self._record_bytes += r.ByteSize()
            if self._record_bytes >= self.max_record_bytes:
                self.cut()

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
        if n >= self.max_points:
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
        for series, time_ms, value in self.before_cut():
            self.acc.add(series, time_ms, value)
        self._opened_ms = None
        n = len(self.acc)
        if not n and not any(self._records.values()):
            return
        metrics = encode_columns(*self.acc.cut(), messages=self.series_messages) if n else None
        records = self._records
        self._records, self._record_bytes = {k.name: [] for k in KINDS}, 0
        self.sink(pack_payload(self.resource, metrics, **records), n)
        m.BATCHES.inc()
        m.BUFFERED_POINTS.set(0)
