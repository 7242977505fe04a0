"""Semantic checks on a decoded frame: names, labels, values and timestamps against limits.

Called by the ingest service after `ferry.codec` decoded the structure. Per-series checks loop
over the series table (hundreds of rows); per-point checks are whole-column numpy operations.
Every error names the offending value and the limit it broke.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ferry.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, MetricBatch, SeriesDef

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]*")
LABEL_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_KINDS = (GAUGE, COUNTER, DELTA, HISTOGRAM)
DAY_MS = 86_400_000


class ValidationError(ValueError):
    """The frame breaks a limit; it is rejected whole with INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Limits:
    max_name_len: int = 200
    max_label_key_len: int = 100
    max_label_value_bytes: int = 256
    max_labels: int = 32
    max_series: int = 100_000
    max_points: int = 4_000_000
    max_bounds: int = 256
    max_past_ms: int = 15 * DAY_MS  # the default raw retention: older points would be dropped anyway
    max_future_ms: int = 10 * 60_000


def check_name(name: str, limits: Limits, what: str = "metric name") -> None:
    if not name:
        raise ValidationError(f"{what} is empty")
    if len(name) > limits.max_name_len:
        raise ValidationError(f"{what} {name[:40]!r}... is {len(name)} chars > {limits.max_name_len} allowed")
    if not NAME_RE.fullmatch(name):
        raise ValidationError(f"{what} {name!r} does not match {NAME_RE.pattern}")


def check_labels(labels: tuple[tuple[str, str], ...], limits: Limits, where: str) -> None:
    if len(labels) > limits.max_labels:
        raise ValidationError(f"{where}: {len(labels)} labels > {limits.max_labels} allowed")
    seen = set()
    for key, value in labels:
        if len(key) > limits.max_label_key_len:
            raise ValidationError(
                f"{where}: label key {key[:40]!r}... is {len(key)} chars > {limits.max_label_key_len} allowed"
            )
        if not LABEL_KEY_RE.fullmatch(key):
            raise ValidationError(f"{where}: label key {key!r} does not match {LABEL_KEY_RE.pattern}")
        if key in seen:
            raise ValidationError(f"{where}: label key {key!r} appears twice")
        seen.add(key)
        size = len(value.encode())
        if size > limits.max_label_value_bytes:
            raise ValidationError(
                f"{where}: label value {size} bytes > {limits.max_label_value_bytes} allowed for {key!r}"
            )


def check_series(series: SeriesDef, limits: Limits, index: int) -> None:
    check_name(series.name, limits)
    where = f"series {index} {series.name!r}"
    if series.kind not in _KINDS:
        raise ValidationError(
            f"{where}: unknown kind {series.kind} (known: 1 GAUGE, 2 COUNTER, 3 DELTA, 4 HISTOGRAM)"
        )
    check_labels(series.labels, limits, where)
    if series.kind == HISTOGRAM:
        bounds = np.asarray(series.bounds, dtype=np.float64)
        if bounds.shape[0] > limits.max_bounds:
            raise ValidationError(f"{where}: {bounds.shape[0]} bucket bounds > {limits.max_bounds} allowed")
        if not np.isfinite(bounds).all() or (bounds.shape[0] > 1 and not (np.diff(bounds) > 0).all()):
            raise ValidationError(f"{where}: bucket bounds must be finite and strictly ascending")
    elif series.bounds:
        raise ValidationError(f"{where}: bucket bounds given for a non-histogram series")


def validate_batch(batch: MetricBatch, now_ms: int, limits: Limits) -> None:
    if len(batch.series) > limits.max_series:
        raise ValidationError(f"{len(batch.series)} series in one frame > {limits.max_series} allowed")
    if len(batch) > limits.max_points:
        raise ValidationError(f"{len(batch)} points in one frame > {limits.max_points} allowed")
    for i, series in enumerate(batch.series):
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
