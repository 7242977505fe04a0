"""In-memory columnar metric batches: what the agent cuts and what the collector decodes.

A `MetricBatch` is the numpy twin of `ferry.v1.MetricColumns`: a series table plus parallel
point columns. `codec` converts between the two; nothing here touches the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferry.v1 import payload_pb2

GAUGE = payload_pb2.GAUGE
COUNTER = payload_pb2.COUNTER
DELTA = payload_pb2.DELTA
HISTOGRAM = payload_pb2.HISTOGRAM
KIND_NAMES = {GAUGE: "gauge", COUNTER: "counter", DELTA: "delta", HISTOGRAM: "histogram"}
KINDS_BY_NAME = {v: k for k, v in KIND_NAMES.items()}

Labels = tuple[tuple[str, str], ...]


def labels_key(labels: dict[str, str] | None) -> Labels:
    """The canonical (sorted) form of a label set, usable as a dict key."""
    if not labels:
        return ()
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class SeriesDef:
    """The identity of one series: name, kind, unit, sorted labels and (histograms) bounds."""

    name: str
    kind: int
    unit: str = ""
    labels: Labels = ()
    bounds: tuple[float, ...] = ()


@dataclass(slots=True)
class MetricBatch:
    """Points as parallel columns; `series_ref[i]` indexes `series` for point i.

    `bucket_counts` is flat: for each HISTOGRAM point in column order, len(bounds)+1 counts.
    """

    series: list[SeriesDef]
    series_ref: np.ndarray  # uint32
    time_ms: np.ndarray  # int64, absolute unix ms
    value: np.ndarray  # float64
    bucket_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))

    def __len__(self) -> int:
        return int(self.series_ref.shape[0])

    @classmethod
    def empty(cls) -> MetricBatch:
        return cls(
            series=[],
            series_ref=np.zeros(0, dtype=np.uint32),
            time_ms=np.zeros(0, dtype=np.int64),
            value=np.zeros(0, dtype=np.float64),
        )
