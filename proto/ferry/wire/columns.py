"""In-memory columnar metric batches: what the collector decodes (and what tests and the
synthetic source build in bulk).

A `MetricBatch` is the numpy twin of `ferry.v1.MetricColumns`: a series table plus parallel
point columns. `codec` converts between the two; nothing here touches the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferry.series import (
    COUNTER,
    DELTA,
    GAUGE,
    HISTOGRAM,
    KIND_NAMES,
    KINDS_BY_NAME,
    Labels,
    SeriesDef,
    labels_key,
)

__all__ = [
    "COUNTER",
    "DELTA",
    "GAUGE",
    "HISTOGRAM",
    "KINDS_BY_NAME",
    "KIND_NAMES",
    "Labels",
    "MetricBatch",
    "SeriesDef",
    "labels_key",
]


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
