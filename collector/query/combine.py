"""Combine per-(series, bucket) partials into one result per group, with whole-column numpy."""

from __future__ import annotations

import numpy as np


def combine(agg: str, group: np.ndarray, t: np.ndarray, partials: list[np.ndarray]):
    """Return (group, t, value) arrays, one row per distinct (group, t), sorted by both.

    `partials` are the columns PARTIALS[agg] selected, row-aligned with group and t.
    """
    if group.shape[0] == 0:
        return group, t, np.zeros(0, dtype=np.float64)
    order = np.lexsort((t, group))
    g, tt = group[order], t[order]
    cols = [np.asarray(p)[order] for p in partials]
    starts = np.flatnonzero(np.concatenate(([True], (g[1:] != g[:-1]) | (tt[1:] != tt[:-1]))))
    if agg == "avg":
        value = np.add.reduceat(cols[0].astype(np.float64), starts) / np.add.reduceat(
            cols[1].astype(np.float64), starts
        )
    elif agg in ("sum", "count"):
        value = np.add.reduceat(cols[0].astype(np.float64), starts)
    elif agg == "min":
        value = np.minimum.reduceat(cols[0].astype(np.float64), starts)
    elif agg == "max":
        value = np.maximum.reduceat(cols[0].astype(np.float64), starts)
    elif agg == "last":
        values, last_ts = cols[0].astype(np.float64), cols[1].astype(np.int64)
        # within each run, pick the row whose last_ts is greatest
        run = np.repeat(np.arange(starts.shape[0]), np.diff(np.append(starts, g.shape[0])))
        pick = np.lexsort((last_ts, run))
        ends = np.append(starts[1:], g.shape[0]) - 1
        value = values[pick][ends]
    else:
        raise ValueError(f"unknown aggregation {agg!r}")
    return g[starts], tt[starts], value
