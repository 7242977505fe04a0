"""Prometheus histograms → Ferry HISTOGRAM points.

A Prometheus histogram exposes cumulative `le` buckets (each counts every observation up to its
bound, `+Inf` counts all) whose values only grow while the target runs. A Ferry HISTOGRAM point
holds per-bucket counts of the observations of one interval (`agent/intake.py`). So the buckets
are de-cumulated (`buckets`), and each scrape emits the growth since the previous scrape of the
same series (`delta`): summing every stored point gives what the target exposes. The first
scrape of a series emits all of it; after a reset (a bucket went down: the target restarted)
the new values are all new observations and are emitted whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Totals = tuple[tuple[int, ...], float]  # per-bucket counts (the last one +Inf) and the sum, as exposed


class HistogramError(ValueError):
    """Buckets that do not make a histogram; the message says what is wrong."""


def buckets(les: Iterable[tuple[str | None, float]]) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """(bounds, per-bucket counts) from (`le` label, cumulative count) pairs in any order. The
    bounds are the finite `le`s ascending; the counts have one more entry, the `+Inf` bucket."""
    cumulative: list[tuple[float, float]] = []
    for le, value in les:
        try:
            bound = float(le)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise HistogramError(f"bucket le={le!r} is not a number") from None
        if math.isnan(bound):
            raise HistogramError("bucket le=NaN")
        if not (math.isfinite(value) and value >= 0 and value == int(value)):
            raise HistogramError(f"bucket le={le!r} count {value!r} is not a whole number >= 0")
        cumulative.append((bound, value))
    cumulative.sort()
    if not cumulative or cumulative[-1][0] != math.inf:
        raise HistogramError("no le=+Inf bucket")
    bounds = tuple(b for b, _ in cumulative[:-1])
    if bounds and bounds[0] == -math.inf:
        raise HistogramError("bucket le=-Inf")
    counts, below = [], 0
    for bound, value in cumulative:
        n = int(value)
        if n < below:
            raise HistogramError(f"bucket le={bound:g} count {n} < {below} of the bucket below")
        counts.append(n - below)
        below = n
    if len(set(bounds)) != len(bounds):
        raise HistogramError("two buckets with the same le")
    return bounds, tuple(counts)


def delta(previous: Totals | None, counts: tuple[int, ...], total: float) -> Totals:
    """What to emit for a series now exposing (counts, total), given what it exposed last time."""
    if previous is None:
        return counts, total
    last_counts, last_total = previous
    if any(now < before for now, before in zip(counts, last_counts, strict=True)):
        return counts, total  # reset: everything exposed now was observed since
    return tuple(now - before for now, before in zip(counts, last_counts, strict=True)), total - last_total
