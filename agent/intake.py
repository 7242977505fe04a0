"""What the agent's event-loop sources (checks, the Local service, the scraper) hand to the
pipeline thread, which owns the batcher. One value per hand-over keeps the thread hop cheap."""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry.series import SeriesDef
from ferry.v1 import payload_pb2

Point = tuple[SeriesDef, int, float]  # series, unix ms, value
HistogramPoint = tuple[SeriesDef, int, float, tuple[int, ...]]  # ..., sum, counts per bucket


@dataclass(slots=True)
class Intake:
    points: list[Point] = field(default_factory=list)
    deltas: list[Point] = field(default_factory=list)  # DELTA increments, summed until the next frame
    histograms: list[HistogramPoint] = field(default_factory=list)
    events: list[payload_pb2.Event] = field(default_factory=list)
    logs: list[payload_pb2.LogRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.points) + len(self.deltas) + len(self.histograms) + len(self.events) + len(self.logs)
