"""What the agent's event-loop sources (checks, the Local service, the scraper) hand to the
pipeline thread, which owns the batcher. One value per hand-over keeps the thread hop cheap.

Besides metric points an Intake holds one list per record kind (`ferry.records.KINDS`), under
the kind's name (`events`, `logs`): the fields are generated from the declarations.
"""

from __future__ import annotations

from dataclasses import field, make_dataclass

from ferry.records import KINDS
from ferry.series import SeriesDef

Point = tuple[SeriesDef, int, float]  # series, unix ms, value
HistogramPoint = tuple[SeriesDef, int, float, tuple[int, ...]]  # ..., sum, counts per bucket

_METRICS = ("points", "deltas", "histograms")  # deltas: DELTA increments, summed until the next frame


def _len(self) -> int:
    return sum(len(getattr(self, name)) for name in self.__dataclass_fields__)


def _extend(self, other) -> None:
    """Another Intake's records appended to this one's, kind by kind."""
    for name in self.__dataclass_fields__:
        getattr(self, name).extend(getattr(other, name))


Intake = make_dataclass(
    "Intake",
    [(name, list, field(default_factory=list)) for name in (*_METRICS, *(k.name for k in KINDS))],
    namespace={"__len__": _len, "extend": _extend, "__module__": __name__},
    slots=True,
)
