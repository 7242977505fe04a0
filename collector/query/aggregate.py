"""One aggregated query (an Operand over a Window) → its Answer, computed in the store.

The service calls `aggregate` once per operand: the lookup counts the groups (refusing more than
`max_groups`), the metric's kind picks the statement (ferry.collector.query.grouped), the
resolution rule picks raw samples or a rollup, and the statement's rows — at most `max_points`
of them, one per (group, step) — come back as numpy columns and are mapped to the lookup's groups.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ferry.collector.query.answer import Answer, Operand, Window
from ferry.collector.query.grouped import (
    HISTOGRAM_AGGS,
    POINTS_ERROR,
    growth_sql,
    histogram_sql,
    plain_sql,
    points_sql,
    quantile_sql,
    raw_points_sql,
)
from ferry.collector.query.lookup import Groups, lookup
from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.query.resolution import RAW, choose
from ferry.collector.query.resultunit import aggregated
from ferry.collector.query.sql import GROWTH, LimitExceeded, QueryError
from ferry.wire.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, KIND_NAMES

if TYPE_CHECKING:
    from ferry.collector.storage.store import Store


def aggregate(
    store: Store, op: Operand, w: Window, resolution: str, max_groups: int, max_points: int, settings: str
) -> Answer:
    """`op` over `w`: at most `max_groups` groups and `max_points` points (LimitExceeded past
    either), read at `resolution` ("" automatic, raw, 1m, 1h)."""
    groups = lookup(store, op, max_groups, settings)
    if not len(groups):
        return Answer()
    histogram = is_histogram(op.metric, groups.kinds)
    if histogram:
        _check_histogram(op)
    elif op.agg in GROWTH:
        _check_growth(op, groups.kinds)
    grouped = op.by is not None
    rollup = choose(resolution, op.agg, w.step_ms, w.start_ms, w.end_ms, histogram, w.align_ms, grouped)
    limit = max_points + 1
    db = store.db
    buckets = (w.end_ms - w.start_ms) // w.step_ms + 1
    if len(groups) * buckets > max_points:  # it might not fit: count its points first
        raw = "histograms" if histogram else "samples"
        table = (rollup.histogram_table if histogram else rollup.table) if rollup else raw
        sql, params = points_sql(db, op, w, table)
        points = int(store.query(sql + settings, params)[0][0])
        if points > max_points * (1 + POINTS_ERROR):
            raise _too_many(max_points, f" (about {points})")
    if op.agg in GROWTH:  # raw points only (`choose` gives no rollup); never a histogram (checked)
        cols = _growth(store, op, w, max_points, settings)
    else:
        if histogram:
            sql, params = histogram_sql(db, op, w, limit, rollup.histogram_table if rollup else "")
        elif op.agg in QUANTILES:
            sql, params = quantile_sql(db, op, w, limit)
        else:
            sql, params = plain_sql(db, op, w, limit, rollup.table if rollup else "")
        cols = _read(store, sql + settings, params, max_points)
        if cols and histogram and op.agg in QUANTILES:
            _check_bounds(op, cols)
    g, t, v = _located(groups, cols) if cols else _empty()
    unit = aggregated(groups.units, op.agg)
    return Answer(groups.labels, g, t, v, rollup.name if rollup else RAW, unit)


def is_histogram(metric: str, kinds: list[str]) -> bool:
    """Whether `metric`'s matched series (their kind names) are histograms.

    Kind is an attribute of a series, not its identity, so a name could carry both; a query
    over such a mix has no one meaning and is refused."""
    histogram = KIND_NAMES[HISTOGRAM]
    if histogram in kinds and len(kinds) > 1:
        raise QueryError(
            f"{metric}: the matched series mix kinds {', '.join(kinds)}; "
            f"add a matcher so that all or none are {histogram}"
        )
    return histogram in kinds


def _check_histogram(op: Operand) -> None:
    held = (*HISTOGRAM_AGGS, *QUANTILES)
    if op.agg not in held:
        raise QueryError(
            f"aggregation {op.agg!r} is not defined for histogram {op.metric}; use one of {', '.join(held)}"
        )


def _check_growth(op: Operand, kinds: list[str]) -> None:
    other = sorted(set(kinds) - {KIND_NAMES[COUNTER], KIND_NAMES[DELTA]})
    if other:
        hint = "; a gauge is a level, not a count: use max, last or avg" if KIND_NAMES[GAUGE] in other else ""
        raise QueryError(
            f"aggregation {op.agg!r} is not defined for {other[0]} series ({op.metric}); "
            f"only for {KIND_NAMES[COUNTER]} and {KIND_NAMES[DELTA]}{hint}"
        )


def _read(store: Store, sql: str, params: dict[str, Any], max_points: int):
    """The statement's columns as numpy arrays (None when it has no row); LimitExceeded past
    `max_points`."""
    rows = store.query_np(sql, params)
    n, cols = rows.shape[0], [rows[name] for name in rows.dtype.names] if rows.shape[0] else []
    if n > max_points:
        raise _too_many(max_points)
    return cols if n else None


def _too_many(max_points: int, about: str = "") -> LimitExceeded:
    return LimitExceeded(
        f"answer of more than query_max_points {max_points} points{about}; "
        "use a larger step, a shorter range or fewer groups (matchers, by)"
    )


def _located(groups: Groups, cols) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    group, known = groups.locate(cols[0])
    t = np.asarray(cols[1], dtype=np.int64)[known]
    v = np.asarray(cols[2], dtype=np.float64)[known]
    keep = ~np.isnan(v)
    group, t, v = group[keep], t[keep], v[keep]
    order = np.lexsort((t, group))
    return group[order], t[order], v[order]


# raw points one growth statement reads at most: its window holds them all in the store's memory,
# about 100 bytes each (grouped.growth_sql)
GROWTH_POINTS_PER_STATEMENT = 2_000_000


def _growth(store: Store, op: Operand, w: Window, max_points: int, settings: str):
    """increase / rate columns (g, t, v), read in as many statements over disjoint series as
    keep each within GROWTH_POINTS_PER_STATEMENT raw points, and added per (g, t): a group's
    increase and rate are sums over its series."""
    sql, params = raw_points_sql(store.db, op, w)
    points = int(store.query(sql + settings, params)[0][0])
    parts = max(1, -(-points // GROWTH_POINTS_PER_STATEMENT))
    read = []
    for part in range(parts):
        sql, params = growth_sql(store.db, op, w, max_points + 1, part, parts)
        cols = _read(store, sql + settings, params, max_points)
        if cols:
            read.append(cols)
    if not read:
        return None
    if len(read) == 1:
        return read[0]
    g, t, v = (np.concatenate([np.asarray(c[i]) for c in read]) for i in range(3))
    order = np.lexsort((t, g))
    g, t, v = g[order], t[order], v[order]
    starts = np.flatnonzero(np.concatenate(([True], (g[1:] != g[:-1]) | (t[1:] != t[:-1]))))
    if starts.shape[0] > max_points:
        raise _too_many(max_points)
    return [g[starts], t[starts], np.add.reduceat(v.astype(np.float64), starts)]


def _check_bounds(op: Operand, cols) -> None:
    """QueryError when histograms of two bound lists met in one group and step."""
    mixed = np.flatnonzero(np.asarray(cols[3]) > 1)
    if mixed.shape[0]:
        at = int(mixed[0])
        a, b = ([float(x) for x in bounds] for bounds in orjson.loads(cols[4][at]))
        raise QueryError(
            f"{op.metric}: histograms with bucket bounds {a} and {b} fall in one group and step "
            f"(at {int(cols[1][at])}); query them apart with matchers or --by, or with a smaller "
            "step where one series changed its bounds"
        )


def _empty() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
