"""The test oracle of QueryRange: the per-series path as it was at commit 235c532, frozen here.

Until issue 19 QueryRange looked the matched series up in Python, read one partial row per
(series, step) back from the store and combined them per group with numpy. The product now
computes per (group, step) in the store; this module keeps the old path, in tests only, so that
the new one can be checked against what the old one answered (tests/integration/
test_fleet_aggregation.py). Taken from 235c532's collector/query/{groups,ranges,combine,
quantiles,sql,resolution,service}.py, made self-contained: it imports only stable things of the
product (Store, the kind names, QUANTILES, RESOLUTIONS, LABEL_KEY_RE, check_identifier,
check_name) and none of the readers being rewritten.

Differences from the old `_query_range`, on purpose: no answer-size limits (no max_rows, no
max_points, no max_answer_bytes, no max_buckets; `max_series` defaults to 10**7), no call
settings (time and memory caps) on its statements. Same resolution choice, same SQL, same
combination, same answer order. Bad requests raise this module's QueryError, as the old path
raised the product's QueryError (INVALID_ARGUMENT).

Entry points: `oracle_answer(store, req)` -> OracleAnswer (resolution name and series), and
`oracle_query(store, req)` -> [(labels, times, values)] in answer order.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.storage.layout import check_identifier
from ferry.collector.storage.rollups import RESOLUTIONS, Resolution
from ferry.collector.storage.store import Store
from ferry.limits import LABEL_KEY_RE, Limits, ValidationError, check_name
from ferry.v1 import query_pb2
from ferry.wire.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, KIND_NAMES

# no limit the old path had on an answer's size applies here
UNLIMITED_ROWS = 1 << 62

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]
Series = tuple[dict[str, str], list[int], list[float]]


class QueryError(ValueError):
    """A request the old path refused as bad (INVALID_ARGUMENT)."""


class LimitExceeded(QueryError):
    """More series matched than the oracle's `max_series`."""


# ---------------------------------------------------------------------------------------------
# sql.py (235c532): the aggregations, their partials and the SQL builders


GROWTH = ("increase", "rate")

AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last", *GROWTH, *QUANTILES)

PARTIALS = {
    "avg": ("sum(value)", "count()"),
    "sum": ("sum(value)",),
    "count": ("count()",),
    "min": ("min(value)",),
    "max": ("max(value)",),
    "last": ("argMax(value, ts)", "toUnixTimestamp64Milli(max(ts))"),
}

ROLLUP_PARTIALS = {
    "avg": ("sum(sum)", "sum(count)"),
    "sum": ("sum(sum)",),
    "count": ("sum(count)",),
    "min": ("min(min)",),
    "max": ("max(max)",),
    "last": ("argMaxMerge(last)", "toUnixTimestamp(max(ts)) * 1000"),
}

HISTOGRAM_PARTIALS = {
    "avg": ("sum(sum)", "sum(count)"),
    "sum": ("sum(sum)",),
    "count": ("sum(count)",),
    **{q: ("bounds", "sumForEach(counts)") for q in QUANTILES},
}

HISTOGRAM_ROLLUP_PARTIALS = {
    **HISTOGRAM_PARTIALS,
    **{q: ("bounds", "sumForEachMerge(counts)") for q in QUANTILES},
}


def matcher_sql(matchers, params: dict[str, Any]) -> list[str]:
    ops = {
        query_pb2.EQ: "labels[{k%d:String}] = {v%d:String}",
        query_pb2.NEQ: "labels[{k%d:String}] != {v%d:String}",
        query_pb2.RE: "match(labels[{k%d:String}], concat('^(?:', {v%d:String}, ')$'))",
        query_pb2.NRE: "NOT match(labels[{k%d:String}], concat('^(?:', {v%d:String}, ')$'))",
    }
    clauses = []
    for i, mt in enumerate(matchers):
        if not LABEL_KEY_RE.fullmatch(mt.label):
            raise QueryError(
                f"matcher {i}: label name {mt.label[:80]!r} does not match {LABEL_KEY_RE.pattern}"
            )
        if mt.op not in ops:
            raise QueryError(f"matcher {i}: unknown operator {mt.op}")
        params[f"k{i}"] = mt.label
        params[f"v{i}"] = mt.value
        clauses.append(ops[mt.op] % (i, i))
    return clauses


def check_metric(name: str) -> None:
    try:
        check_name(name, Limits())
    except ValidationError as exc:
        raise QueryError(str(exc)) from None


def series_where(metric: str, matchers, params: dict[str, Any]) -> str:
    where = matcher_sql(matchers, params)
    if metric:
        check_metric(metric)
        params["metric"] = metric
        where.insert(0, "name = {metric:String}")
    return " AND ".join(where) or "1"


def check_range(req: query_pb2.QueryRangeRequest) -> str:
    """The old check_range without its max_buckets limit."""
    check_metric(req.metric)
    agg = req.agg or "avg"
    if agg not in AGGREGATIONS:
        raise QueryError(f"aggregation {agg[:80]!r} is not one of {', '.join(AGGREGATIONS)}")
    if req.step_ms <= 0:
        raise QueryError(f"step {req.step_ms} ms must be > 0")
    if req.end_ms <= req.start_ms:
        raise QueryError(f"end {req.end_ms} must be after start {req.start_ms}")
    for label in req.group_by:
        if not LABEL_KEY_RE.fullmatch(label):
            raise QueryError(f"group-by label {label[:80]!r} does not match {LABEL_KEY_RE.pattern}")
    return agg


def _range_where(db: str, req: query_pb2.QueryRangeRequest, max_rows: int, alias: str = ""):
    params: dict[str, Any] = {
        "metric": req.metric,
        "start": req.start_ms,
        "end": req.end_ms,
        "step": req.step_ms,
        "max_rows": max_rows + 1,
    }
    matchers = matcher_sql(req.matchers, params)
    cond = " AND ".join(["name = {metric:String}", *matchers])
    where = (
        f"{alias}name = {{metric:String}} "
        f"AND {alias}ts >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC') "
        f"AND {alias}ts < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
    )
    if matchers:
        where += f" AND {alias}series_id IN (SELECT series_id FROM {db}.series WHERE {cond})"
    return params, cond, where


def _bucket(alias: str = "") -> str:
    return f"intDiv(toUnixTimestamp64Milli({alias}ts), {{step:Int64}}) * {{step:Int64}} AS t"


_ROLLUP_BUCKET = "intDiv(toUnixTimestamp(ts) * 1000, {step:Int64}) * {step:Int64} AS t"


def _source(agg: str, rollup: str, raw_table: str, raw: dict, rolled: dict) -> tuple[str, str, str]:
    if not rollup:
        return ", ".join(raw[agg]), raw_table, _bucket()
    return ", ".join(rolled[agg]), check_identifier(rollup, "table"), _ROLLUP_BUCKET


def range_sql(
    db: str, req: query_pb2.QueryRangeRequest, agg: str, max_rows: int, rollup: str = ""
) -> tuple[str, dict[str, Any]]:
    params, _, where = _range_where(db, req, max_rows)
    partials, table, bucket = _source(agg, rollup, "samples", PARTIALS, ROLLUP_PARTIALS)
    sql = (
        f"SELECT series_id, {bucket}, {partials} FROM {db}.{table} WHERE {where} "
        "GROUP BY series_id, t LIMIT {max_rows:UInt64}"
    )
    return sql, params


def histogram_range_sql(
    db: str, req: query_pb2.QueryRangeRequest, agg: str, max_rows: int, rollup: str = ""
) -> tuple[str, dict[str, Any]]:
    params, _, where = _range_where(db, req, max_rows)
    partials, table, bucket = _source(
        agg, rollup, "histograms", HISTOGRAM_PARTIALS, HISTOGRAM_ROLLUP_PARTIALS
    )
    keys = "series_id, t, bounds" if agg in QUANTILES else "series_id, t"
    sql = (
        f"SELECT series_id, {bucket}, {partials} FROM {db}.{table} WHERE {where} "
        f"GROUP BY {keys} LIMIT {{max_rows:UInt64}}"
    )
    return sql, params


def quantile_range_sql(
    db: str,
    req: query_pb2.QueryRangeRequest,
    agg: str,
    max_rows: int,
    keys: list[list[str]] | None = None,
) -> tuple[str, dict[str, Any]]:
    params, cond, where = _range_where(db, req, max_rows, alias="p.")
    level = QUANTILES[agg]
    if req.group_by:
        params["by"], params["keys"] = list(req.group_by), keys or []
        group = "toInt64(indexOf({keys:Array(Array(String))}, arrayMap(k -> l[k], {by:Array(String)}))) - 1"
        key = "s.grp"
        join = (
            f"INNER JOIN (SELECT series_id, {group} AS grp FROM (SELECT series_id, any(labels) AS l "
            f"FROM {db}.series WHERE {cond} GROUP BY series_id)) AS s ON p.series_id = s.series_id "
        )
    else:
        key, join = "p.series_id", ""
    sql = (
        f"SELECT {key} AS g, {_bucket('p.')}, quantileExactInclusive({level!r})(p.value) "
        f"FROM {db}.samples AS p {join}WHERE {where} "
        "GROUP BY g, t LIMIT {max_rows:UInt64}"
    )
    return sql, params


def increase_range_sql(
    db: str, req: query_pb2.QueryRangeRequest, max_rows: int
) -> tuple[str, dict[str, Any]]:
    params, _, where = _range_where(db, req, max_rows)
    sql = (
        "SELECT series_id, t, "
        "sumIf(if(value >= prev, value - prev, value), has_prev) AS grown, "
        "countIf(has_prev) AS pairs, sum(value) AS total "
        f"FROM (SELECT series_id, {_bucket()}, value, lagInFrame(value) OVER w AS prev, "
        "row_number() OVER w > 1 AS has_prev "
        f"FROM {db}.samples WHERE {where} "
        "WINDOW w AS (PARTITION BY series_id ORDER BY ts, value ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)) "
        "GROUP BY series_id, t LIMIT {max_rows:UInt64}"
    )
    return sql, params


# ---------------------------------------------------------------------------------------------
# resolution.py (235c532)

RAW = "raw"
ROLLUP_AGGS = ("avg", "min", "max", "sum", "count", "last")
HISTOGRAM_ROLLUP_AGGS = ("avg", "sum", "count", *QUANTILES)
NAMES = (RAW, *(r.name for r in RESOLUTIONS))


def choose(
    resolution: str, agg: str, step_ms: int, start_ms: int, end_ms: int, histogram: bool
) -> Resolution | None:
    if resolution not in ("", *NAMES):
        raise QueryError(
            f"resolution {resolution[:80]!r} is not one of {', '.join(NAMES)} (or empty: automatic)"
        )
    if resolution == RAW:
        return None
    held = HISTOGRAM_ROLLUP_AGGS if histogram else ROLLUP_AGGS
    eligible = agg in held
    if resolution:
        rollup = next(r for r in RESOLUTIONS if r.name == resolution)
        if not eligible:
            what = "histogram" if histogram else "plain"
            raise QueryError(
                f"resolution {resolution}: aggregation {agg!r} of {what} series is answered from raw "
                f"samples only (rollups of {what} series hold {', '.join(held)}); use resolution "
                "raw or automatic"
            )
        if step_ms % rollup.step_ms:
            raise QueryError(
                f"resolution {resolution}: step {step_ms} ms is not a multiple of {rollup.step_ms} ms"
            )
        return rollup
    if not eligible:
        return None
    for rollup in sorted(RESOLUTIONS, key=lambda r: -r.step_ms):
        if not (step_ms % rollup.step_ms or start_ms % rollup.step_ms or end_ms % rollup.step_ms):
            return rollup
    return None


# ---------------------------------------------------------------------------------------------
# groups.py (235c532): the matched series and the group of each


@dataclass
class Matched:
    labels: list[dict[str, str]]  # per group, in answer order
    ids: np.ndarray  # uint64 series ids, ascending
    group: np.ndarray  # int64: the group of ids[i]
    kinds: np.ndarray  # str: the kind name of ids[i]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def locate(self, series_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sids = np.asarray(series_ids, dtype=np.uint64)
        if self.ids.shape[0] == 0:
            known = np.zeros(sids.shape[0], dtype=bool)
            return np.zeros(0, dtype=np.int64), known
        at = np.minimum(np.searchsorted(self.ids, sids), self.ids.shape[0] - 1)
        known = self.ids[at] == sids
        return self.group[at[known]], known

    def kind_of(self, series_ids: np.ndarray) -> np.ndarray:
        return self.kinds[np.searchsorted(self.ids, np.asarray(series_ids, dtype=np.uint64))]


def matched_sql(db: str, metric: str, matchers, by: list[str], limit: int) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    cond = series_where(metric, matchers, params)
    if not by:
        sql = (
            f"SELECT series_id, kind, labels FROM {db}.series WHERE {cond} "
            "LIMIT 1 BY series_id LIMIT {limit:UInt64}"
        )
        return sql, params
    params["by"] = list(by)
    sql = (
        "SELECT key, groupArray(series_id), groupArray(kind), sum(count()) OVER () "
        "FROM (SELECT series_id, kind, arrayMap(k -> labels[k], {by:Array(String)}) AS key "
        f"FROM {db}.series WHERE {cond} LIMIT 1 BY series_id LIMIT {{limit:UInt64}}) "
        "GROUP BY key ORDER BY key"
    )
    return sql, params


def matched(store: Store, metric: str, matchers, by: list[str], max_series: int) -> Matched:
    sql, params = matched_sql(store.db, metric, matchers, by, max_series + 1)
    rows = store.query(sql, params)
    total = (int(rows[0][3]) if by else len(rows)) if rows else 0
    if total > max_series:
        raise LimitExceeded(f"{metric} with these matchers has more than {max_series} series")
    if not by:
        rows = sorted(rows, key=lambda r: sorted(r[2].items()))
        labels = [dict(r[2]) for r in rows]
        ids = [r[0] for r in rows]
        group = list(range(len(rows)))
        kinds = [r[1] for r in rows]
    else:
        labels = [dict(zip(by, key, strict=True)) for key, *_ in rows]
        ids = [sid for r in rows for sid in r[1]]
        group = [g for g, r in enumerate(rows) for _ in r[1]]
        kinds = [k for r in rows for k in r[2]]
    ids_a = np.asarray(ids, dtype=np.uint64)
    order = np.argsort(ids_a, kind="stable")
    return Matched(
        labels=labels,
        ids=ids_a[order],
        group=np.asarray(group, dtype=np.int64)[order],
        kinds=np.asarray(kinds, dtype=object)[order],
    )


# ---------------------------------------------------------------------------------------------
# combine.py and quantiles.py (235c532)


def combine(agg: str, group: np.ndarray, t: np.ndarray, partials: list[np.ndarray]):
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
        run = np.repeat(np.arange(starts.shape[0]), np.diff(np.append(starts, g.shape[0])))
        pick = np.lexsort((last_ts, run))
        ends = np.append(starts[1:], g.shape[0]) - 1
        value = values[pick][ends]
    else:
        raise ValueError(f"unknown aggregation {agg!r}")
    return g[starts], tt[starts], value


class MixedBounds(ValueError):
    def __init__(self, a: Sequence[float], b: Sequence[float], group: int, t_ms: int):
        super().__init__(f"bucket bounds {list(a)} and {list(b)} in one group at {t_ms}")
        self.a, self.b, self.group, self.t_ms = list(a), list(b), group, t_ms


def histogram_quantile(q: float, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
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
    n = group.shape[0]
    if n == 0:
        return group, t, np.zeros(0, dtype=np.float64)
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
        at = np.flatnonzero(b == k)
        src = order[at]
        summed_rows = np.array([counts[i] for i in src.tolist()], dtype=np.float64)
        runs = run_of_row[at]
        run_starts = np.flatnonzero(np.concatenate(([True], runs[1:] != runs[:-1])))
        summed = np.add.reduceat(summed_rows, run_starts, axis=0)
        value[runs[run_starts]] = histogram_quantile(q, np.asarray(bound_list), summed)
    keep = ~np.isnan(value)
    return g[starts][keep], tt[starts][keep], value[keep]


# ---------------------------------------------------------------------------------------------
# ranges.py (235c532): the readers, without their row caps


def is_histogram(metric: str, kinds: np.ndarray) -> bool:
    kinds = sorted(set(kinds.tolist()))
    histogram = KIND_NAMES[HISTOGRAM]
    if histogram in kinds and len(kinds) > 1:
        raise QueryError(
            f"{metric}: the matched series mix kinds {', '.join(kinds)}; "
            f"add a matcher so that all or none are {histogram}"
        )
    return kinds == [histogram]


def read_samples(store: Store, req, agg: str, series: Matched, rollup: str = "") -> Columns:
    sql, params = range_sql(store.db, req, agg, UNLIMITED_ROWS, rollup)
    cols = _read_np(store, sql, params)
    if cols is None:
        return _empty()
    if agg == "last":
        # ties of the last time (always, in a rollup: the bucket start) go to the highest series id
        order = np.argsort(cols[0], kind="stable")
        cols = [c[order] for c in cols]
    group, known = series.locate(cols[0])
    t = cols[1][known].astype(np.int64)
    return combine(agg, group, t, [c[known] for c in cols[2:]])


def read_histograms(store: Store, req, agg: str, series: Matched, rollup: str = "") -> Columns:
    if agg not in HISTOGRAM_PARTIALS:
        raise QueryError(
            f"aggregation {agg!r} is not defined for histogram {req.metric}; "
            f"use one of {', '.join(HISTOGRAM_PARTIALS)}"
        )
    sql, params = histogram_range_sql(store.db, req, agg, UNLIMITED_ROWS, rollup)
    read = _read if agg in QUANTILES else _read_np
    cols = read(store, sql, params)
    if cols is None:
        return _empty()
    group, known = series.locate(cols[0])
    t = np.asarray(cols[1], dtype=np.int64)[known]
    if agg in QUANTILES:
        keep = known.nonzero()[0].tolist()
        bounds, counts = [cols[2][i] for i in keep], [cols[3][i] for i in keep]
        try:
            return combine_histograms(QUANTILES[agg], group, t, bounds, counts)
        except MixedBounds as exc:
            raise QueryError(
                f"{req.metric}: histograms with bucket bounds {exc.a} and {exc.b} fall in one group "
                f"and step (at {exc.t_ms})"
            ) from None
    partials = [np.asarray(c, dtype=np.float64)[known] for c in cols[2:]]
    with np.errstate(invalid="ignore"):
        g, tt, v = combine(agg, group, t, partials)
    keep = ~np.isnan(v)
    return g[keep], tt[keep], v[keep]


def read_increases(store: Store, req, agg: str, series: Matched) -> Columns:
    other = sorted(set(series.kinds.tolist()) - {KIND_NAMES[COUNTER], KIND_NAMES[DELTA]})
    if other:
        hint = "; a gauge is a level, not a count" if KIND_NAMES[GAUGE] in other else ""
        raise QueryError(f"aggregation {agg!r} is not defined for {other[0]} series ({req.metric}){hint}")
    sql, params = increase_range_sql(store.db, req, UNLIMITED_ROWS)
    cols = _read_np(store, sql, params)
    if cols is None:
        return _empty()
    group, known = series.locate(cols[0])
    counter = series.kind_of(cols[0][known]) == KIND_NAMES[COUNTER]
    t = cols[1][known].astype(np.int64)
    grown, pairs, total = (c[known] for c in cols[2:5])
    value = np.where(counter, grown, total).astype(np.float64)
    keep = ~counter | (pairs.astype(np.int64) > 0)
    g, tt, v = combine("sum", group[keep], t[keep], [value[keep]])
    if agg == "rate":  # the OLD rate: increase / the whole step (the product's is changing)
        v = v / (req.step_ms / 1000.0)
    return g, tt, v


def read_quantiles(store: Store, req, agg: str, series: Matched) -> Columns:
    by = list(req.group_by)
    keys = [[labels[k] for k in by] for labels in series.labels] if by else None
    sql, params = quantile_range_sql(store.db, req, agg, UNLIMITED_ROWS, keys)
    cols = _read_np(store, sql, params)
    if cols is None:
        return _empty()
    if not by:
        group, known = series.locate(cols[0])
    else:
        g = cols[0].astype(np.int64)
        known = g >= 0
        group = g[known]
    t = np.asarray(cols[1], dtype=np.int64)[known]
    v = np.asarray(cols[2], dtype=np.float64)[known]
    order = np.lexsort((t, group))
    return group[order], t[order], v[order]


def _read(store: Store, sql: str, params: dict[str, Any]):
    cols = store.query_columns(sql, params)
    return cols if cols and len(cols[0]) else None


def _read_np(store: Store, sql: str, params: dict[str, Any]) -> list[np.ndarray] | None:
    rows = store.query_np(sql, params)
    return [rows[name] for name in rows.dtype.names] if rows.shape[0] else None


def _empty() -> Columns:
    return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# service.py (235c532): `_query_range`, without its limits


@dataclass
class OracleAnswer:
    resolution: str = ""  # "" when no series matched (an empty response), else raw, 1m or 1h
    series: list[Series] = field(default_factory=list)  # in answer order


def oracle_answer(store: Store, req: query_pb2.QueryRangeRequest, max_series: int = 10**7) -> OracleAnswer:
    """What the old QueryRange answered for `req` on `store`, without its answer-size limits."""
    agg = check_range(req)
    by = list(req.group_by)
    series = matched(store, req.metric, req.matchers, by, max_series)
    if not len(series):
        return OracleAnswer()
    histogram = is_histogram(req.metric, series.kinds)
    rollup = choose(req.resolution, agg, req.step_ms, req.start_ms, req.end_ms, histogram)
    out = OracleAnswer(resolution=rollup.name if rollup else RAW)
    if histogram:
        g, t, v = read_histograms(store, req, agg, series, rollup.histogram_table if rollup else "")
    elif agg in GROWTH:
        g, t, v = read_increases(store, req, agg, series)
    elif agg in QUANTILES:
        g, t, v = read_quantiles(store, req, agg, series)
    else:
        g, t, v = read_samples(store, req, agg, series, rollup.table if rollup else "")
    if g.shape[0] == 0:
        return out
    bounds = [*np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1]))).tolist(), g.shape[0]]
    for a, b in itertools.pairwise(bounds):
        out.series.append((dict(series.labels[int(g[a])]), t[a:b].tolist(), v[a:b].tolist()))
    return out


def oracle_query(store: Store, req: query_pb2.QueryRangeRequest, max_series: int = 10**7) -> list[Series]:
    """(labels, bucket start times ms, values) per group with points, in the old answer order:
    grouped, by the group-by labels' values (in group_by order); else by the sorted labels."""
    return oracle_answer(store, req, max_series).series
