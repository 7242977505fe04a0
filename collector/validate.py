"""Semantic checks on a decoded frame: names, labels, values and timestamps against limits.

Called by the ingest service after `ferry.wire.codec` decoded the structure. Per-series checks loop
over the series table (hundreds of rows); per-point checks are whole-column numpy operations.
Records of every kind (`ferry.records`: events, logs) are checked one at a time by their
kind's declaration (the rules the client and the agent apply too). Every error names the
offending value and the limit it broke.
"""

from __future__ import annotations

import numpy as np

from ferry.limits import (
    DAY_MS,
    LABEL_KEY_RE,
    NAME_RE,
    Limits,
    RecordLimits,
    ValidationError,
    check_bounds,
    check_labels,
    check_name,
    check_unit,
)
from ferry.records import KINDS
from ferry.v1 import payload_pb2
from ferry.wire.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, MetricBatch, SeriesDef

__all__ = [
    "DAY_MS",
    "LABEL_KEY_RE",
    "NAME_RE",
    "Limits",
    "RecordLimits",
    "ValidationError",
    "check_labels",
    "check_name",
    "validate_records",
]
_KINDS = (GAUGE, COUNTER, DELTA, HISTOGRAM)


def check_series(series: SeriesDef, limits: Limits, index: int) -> None:
    check_name(series.name, limits)
    where = f"series {index} {series.name!r}"
    if series.kind not in _KINDS:
        raise ValidationError(
            f"{where}: unknown kind {series.kind} (known: 1 GAUGE, 2 COUNTER, 3 DELTA, 4 HISTOGRAM)"
        )
    check_labels(series.labels, limits, where)
    check_unit(series.unit, limits, where)
    if series.kind == HISTOGRAM:
        check_bounds(series.bounds, limits, where)
    elif series.bounds:
        raise ValidationError(f"{where}: bucket bounds given for a non-histogram series")


def validate_batch(batch: MetricBatch, now_ms: int, limits: Limits, series_checked: bool = False) -> None:
    """`series_checked`: the series table passed these limits before (a table the collector
    recognised by its bytes, ferry.collector.seriescache); only the points are checked."""
    if len(batch.series) > limits.max_series:
        raise ValidationError(f"{len(batch.series)} series in one frame > {limits.max_series} allowed")
    if len(batch) > limits.max_points:
        raise ValidationError(f"{len(batch)} points in one frame > {limits.max_points} allowed")
    for i, series in enumerate(() if series_checked else batch.series):
        check_series(series, limits, i)
    if not len(batch):
        return
    finite = np.isfinite(batch.value)
    if not finite.all():
        i = int(np.argmin(finite))
        name = batch.series[int(batch.series_ref[i])].name
        raise ValidationError(f"point {i} of {name!r} has non-finite value {float(batch.value[i])}")
    lo, hi = now_ms - limits.max_past_ms, now_ms + limits.max_future_ms
    t = batch.time_ms
    bad = (t < lo) | (t > hi)
    if bad.any():
        i = int(np.argmax(bad))
        name = batch.series[int(batch.series_ref[i])].name
        raise ValidationError(
            f"point {i} of {name!r} has time {int(t[i])} ms outside the accepted window "
            f"[{lo}, {hi}] (now - {limits.max_past_ms} ms, now + {limits.max_future_ms} ms)"
        )


def validate_records(payload: payload_pb2.Payload, now_ns: int, limits: RecordLimits) -> None:
    """Every record of every kind in a frame's payload; the error names the record's index."""
    for kind in KINDS:
        for i, record in enumerate(getattr(payload, kind.name)):
            kind.check(record, now_ns, limits, f"{kind.noun} {i}")
