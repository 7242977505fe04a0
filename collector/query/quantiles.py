"""Quantiles of HISTOGRAM series: add bucket counts per (group, step), then interpolate.

Called by `ferry.collector.query.aggregate` with the per-(group, step, bound list) bucket counts
the store summed.
Each histogram point holds the observations of its own interval (delta counts), so adding the
counts of every point of a group in a step gives the histogram of that group in that step.
The estimate is Prometheus' `histogram_quantile`: find the bucket where the cumulative count
reaches rank = q * total, and interpolate linearly inside it. The answer therefore lies in the
bucket that holds the rank; its error is at most that bucket's width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The quantile aggregations QueryRange accepts, and the level each stands for.
QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


class MixedBounds(ValueError):
    """Histograms with different bucket bounds met in one group and step."""

    def __init__(self, a: Sequence[float], b: Sequence[float], group: int, t_ms: int):
        super().__init__(f"bucket bounds {list(a)} and {list(b)} in one group at {t_ms}")
        self.a, self.b, self.group, self.t_ms = list(a), list(b), group, t_ms


def histogram_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The q-quantile (0 < q < 1) of each row of `counts`, shape (n, len(bounds) + 1).

    `bounds` are the finite upper bounds, strictly ascending; the last count of a row is the
    +Inf bucket. Per row: NaN when it holds no observation (or there is no finite bound); the
    highest finite bound when the rank falls in the +Inf bucket; otherwise the linear
    interpolation inside the bucket holding the rank, whose lower edge is the previous bound,
    or 0 for the first bucket (the first bound itself when that is <= 0).
    """
    bounds = np.asarray(bounds, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    k = bounds.shape[0]
    if counts.ndim != 2 or counts.shape[1] != k + 1:
        raise ValueError(f"counts shape {counts.shape} does not fit {k} bounds (+Inf bucket)")
    n = counts.shape[0]
    total = counts.sum(axis=1)
    if k == 0 or n == 0:
        return np.full(n, np.nan)
    cum = np.cumsum(counts, axis=1)
    rank = q * total
    # index of the first bucket whose cumulative count reaches the rank (cum ascends per row)
    b = (cum < rank[:, None]).sum(axis=1)
    finite = np.minimum(b, k - 1)
    rows = np.arange(n)
    upper = bounds[finite]
    lower = np.where(finite == 0, 0.0, bounds[np.maximum(finite - 1, 0)])
    below = np.where(finite == 0, 0.0, cum[rows, np.maximum(finite - 1, 0)])
    inside = counts[rows, finite]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = lower + (upper - lower) * ((rank - below) / inside)
    value = np.where((b == 0) & (bounds[0] <= 0), bounds[0], value)
    value = np.where(b >= k, bounds[k - 1], value)
    return np.where(total > 0, value, np.nan)


def combine_histograms(
    q: float,
    group: np.ndarray,
    t: np.ndarray,
    bounds: Sequence[Sequence[float]],
    counts: Sequence[Sequence[int]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (group, t, value) with one row per distinct (group, t) that holds observations.

    Rows are (series, step) partials: their bucket `bounds` and summed bucket `counts`. Rows of
    one (group, t) must share their bounds, else MixedBounds names the two lists.
    """
    n = group.shape[0]
    if n == 0:
        return group, t, np.zeros(0, dtype=np.float64)
    # one id per distinct bound list: a handful, whatever the number of rows
    ids: dict[tuple[float, ...], int] = {}
    bid = np.fromiter((ids.setdefault(tuple(b), len(ids)) for b in bounds), dtype=np.int64, count=n)
    lists = list(ids)
    order = np.lexsort((t, group))
    g, tt, b = group[order], t[order], bid[order]
    starts = np.flatnonzero(np.concatenate(([True], (g[1:] != g[:-1]) | (tt[1:] != tt[:-1]))))
    lo, hi = np.minimum.reduceat(b, starts), np.maximum.reduceat(b, starts)
    mixed = np.flatnonzero(lo != hi)
    if mixed.shape[0]:
        first = int(mixed[0])
        raise MixedBounds(lists[lo[first]], lists[hi[first]], int(g[starts[first]]), int(tt[starts[first]]))
    run_of_row = np.repeat(np.arange(starts.shape[0]), np.diff(np.append(starts, n)))
    value = np.full(starts.shape[0], np.nan)
    for k, bound_list in enumerate(lists):
        at = np.flatnonzero(b == k)  # positions in sorted order; whole runs, as bounds agree per run
        src = order[at]
        summed_rows = np.array([counts[i] for i in src.tolist()], dtype=np.float64)
        runs = run_of_row[at]
        run_starts = np.flatnonzero(np.concatenate(([True], runs[1:] != runs[:-1])))
        summed = np.add.reduceat(summed_rows, run_starts, axis=0)
        value[runs[run_starts]] = histogram_quantile(q, np.asarray(bound_list), summed)
    keep = ~np.isnan(value)
    return g[starts][keep], tt[starts][keep], value[keep]
