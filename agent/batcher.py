"""Cuts accumulated points into payloads and hands them to the sink (the spool's append).

A batch is cut when it holds `max_points` points or its oldest point is `max_age_s` old
(checked after each collector's run and on a timer), and once more at shutdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from agent import selfmetrics as m
from agent.accumulator import Accumulator
from ferry.encode import SeriesMessages, encode_columns, pack_payload
from ferry.series import SeriesDef
from ferry.v1 import payload_pb2


class Batcher:
    def __init__(
        self,
        resource: payload_pb2.Resource,
        sink: Callable[[bytes, int], object],
        max_points: int = 20_000,
        max_age_s: float = 10.0,
        before_cut: Callable[[], list[tuple[SeriesDef, int, float]]] = list,
    ):
        self.resource = resource
        self.before_cut = before_cut  # points held elsewhere until a frame is cut (summed deltas)
        self.sink = sink
        self.max_points = max_points
        self.max_age_ms = int(max_age_s * 1000)
        self.acc = Accumulator()
        self.series_messages = SeriesMessages()
        self._opened_ms: int | None = None

    def add(self, series: SeriesDef, time_ms: int, value: float) -> None:
        self.acc.add(series, time_ms, value)
        self.settle()

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
        if self._opened_ms is None and len(self.acc):
            self._opened_ms = int(time.time() * 1000)
        if len(self.acc) >= self.max_points:
            self.cut()
        m.BUFFERED_POINTS.set(len(self.acc))

    def __len__(self) -> int:
        return len(self.acc)

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
        if not n:
            return
        cols = self.acc.cut()
        self.sink(pack_payload(self.resource, encode_columns(*cols, messages=self.series_messages)), n)
        m.BATCHES.inc()
        m.BUFFERED_POINTS.set(0)
