"""SQL of one value per (group, step), computed in the store: what QueryRange reads back.

Each builder returns a statement whose rows are (g, t, value columns...): `g` the group key of
ferry.collector.query.lookup (series id, 0, or cityHash64 of the group-by labels' values), `t`
the bucket start in ms. So the answer's size is groups x steps whatever the number of matched
series; the matched series are joined in the store (`source_sql`). Each statement is capped at
`{limit}` rows (the answer's points; histogram quantiles: one row per bound list) and carries no
ORDER BY: the caller sorts.

Semantics (the same as the per-series path they replace, kept in tests/collector/query/oracle.py
as the tests' oracle):
- avg, min, max, sum, count: over every point of the group in the bucket (avg = their sum /
  their count, so a series with more points weighs more); over a rollup, from its exact
  min/max/sum/count columns.
- last: the value of the group's latest point; ties go to the highest series id. Over a rollup
  a series' last is its state's, and series are ordered by the rollup bucket (it keeps no finer
  time), then by id.
- quantiles of plain series: exact (quantileExactInclusive), raw only.
- histograms: avg = sum / count of observations, sum, count; quantiles from bucket counts added
  per (group, step, bound list), interpolated in ferry.collector.query.quantiles.
- increase and rate (`growth_sql`): see there.

No request value becomes SQL text: everything is a bound parameter, tables come from a fixed
list (`check_identifier`).
"""

from __future__ import annotations

from typing import Any

from ferry.collector.query.answer import Operand, Window
from ferry.collector.query.lookup import source_sql
from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.query.sql import series_where
from ferry.collector.storage.layout import check_identifier
from ferry.wire.columns import COUNTER, KIND_NAMES

RAW_AGGS = {
    "avg": "avg(p.value)",
    "sum": "sum(p.value)",
    "count": "toFloat64(count())",
    "min": "min(p.value)",
    "max": "max(p.value)",
    "last": "argMax(p.value, (p.ts, p.series_id))",
}

ROLLUP_AGGS = {
    "avg": "sum(p.sum) / sum(p.count)",
    "sum": "sum(p.sum)",
    "count": "toFloat64(sum(p.count))",
    "min": "min(p.min)",
    "max": "max(p.max)",
}

# a histogram point, like a rollup row, holds the sum and count of what it stands for
HISTOGRAM_AGGS = {agg: ROLLUP_AGGS[agg] for agg in ("avg", "sum", "count")}


def _params(op: Operand, w: Window, limit: int) -> dict[str, Any]:
    return {
        "metric": op.metric,
        "start": w.start_ms,
        # a rollup row counts when its bucket start (whole seconds) lies in [start, end)
        "start_s": -(-w.start_ms // 1000),
        "end_s": -(-w.end_ms // 1000),
        "step_s": max(w.step_ms // 1000, 1),
        "end": w.end_ms,
        "step": w.step_ms,
        "align": w.align_ms,
        "align_s": w.align_ms // 1000,  # a rollup's alignment is whole minutes (resolution.choose)
        "limit": limit,
    }


def _points_where(db: str, op: Operand, params: dict[str, Any], raw: bool) -> str:
    """The condition on a points table: the metric, the range, and (with matchers) the series."""
    if raw:
        ts = (
            "p.ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') "
            "AND p.ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC')"
        )
    else:  # a rollup row's ts is its bucket start, a DateTime: it counts when it lies in range
        ts = "p.ts >= toDateTime({start_s:Int64}, 'UTC') AND p.ts < toDateTime({end_s:Int64}, 'UTC')"
    where = f"p.name = {{metric:String}} AND {ts}"
    if op.matchers:
        cond = series_where(op.metric, op.matchers, params)
        where += f" AND p.series_id IN (SELECT series_id FROM {db}.series WHERE {cond})"
    return where


def _bucket(raw: bool, params: dict[str, Any]) -> str:
    """The bucket of a point: its start in ms (raw), or in seconds over a rollup, whose `ts` is
    a DateTime and whose steps are whole minutes (`_in_ms` turns those into ms once per row
    of the answer, not once per row read: grouping by the 4-byte seconds measured faster).
    Buckets start at multiples of the step, or at `align` + multiples (every point read lies
    at or after it: `check_window`)."""
    if raw:
        if params["align"]:
            ms = "toUnixTimestamp64Milli(p.ts) - {align:Int64}"
            return f"intDiv({ms}, {{step:Int64}}) * {{step:Int64}} + {{align:Int64}}"
        return "intDiv(toUnixTimestamp64Milli(p.ts), {step:Int64}) * {step:Int64}"
    if params["align"]:
        return (
            "intDiv(toUInt32(p.ts) - {align_s:UInt32}, {step_s:UInt32}) * {step_s:UInt32} + {align_s:UInt32}"
        )
    return "intDiv(toUInt32(p.ts), {step_s:UInt32}) * {step_s:UInt32}"


def _in_ms(sql: str, raw: bool) -> str:
    """`sql`, whose rows are (g, t, ...), with t in ms: a rollup statement's t is in seconds."""
    if raw:
        return sql
    return f"SELECT * REPLACE (toInt64(t) * 1000 AS t) FROM ({sql})"


def _key(op: Operand) -> str:
    """A points row's group key: the series id or 0 straight from the points, else the joined
    series' `h` (their labels' key)."""
    if op.by is None:
        return "p.series_id"
    return "toUInt64(0)" if not op.by else "s.h"


def _series_join(db: str, op: Operand, params: dict[str, Any]) -> str:
    return f"INNER JOIN ({source_sql(db, op, params)}) AS s ON p.series_id = s.series_id "


def _join(db: str, op: Operand, params: dict[str, Any]) -> tuple[str, str]:
    """(JOIN clause, group key expression): a join on the matched series when the key needs
    their labels, none otherwise."""
    return (_series_join(db, op, params) if op.by else ""), _key(op)


def points_sql(db: str, op: Operand, w: Window, table: str) -> tuple[str, dict[str, Any]]:
    """About how many (group, step) pairs of `op` hold points in `table` (samples, histograms or
    a rollup of either): the answer's points. Asked before a statement whose answer might not
    fit, so that one over the cap is refused before it is computed (the quantiles' values, say,
    held in the store). uniqCombined keeps a fixed few hundred KB whatever the count, where an
    exact count would hold every pair (measured on 3.2 M pairs: 26 MB of collector RSS instead
    of ~350 MB, 1.2% under the exact count)."""
    params = _params(op, w, 0)
    raw = table in ("samples", "histograms")
    where = _points_where(db, op, params, raw)
    join, key = _join(db, op, params)
    sql = (
        f"SELECT uniqCombined({key}, {_bucket(raw, params)}) "
        f"FROM {db}.{check_identifier(table, 'table')} AS p {join}WHERE {where}"
    )
    return sql, params


# refuse only past this margin over the cap: closer, the statement's LIMIT decides exactly
POINTS_ERROR = 0.02


def plain_sql(db: str, op: Operand, w: Window, limit: int, rollup: str = "") -> tuple[str, dict[str, Any]]:
    """avg min max sum count last of plain series per (group, step), from `samples` or the
    rollup table `rollup` (samples_1m, samples_1h)."""
    params = _params(op, w, limit)
    raw = not rollup
    if not raw and op.agg == "last":
        return _rollup_last_sql(db, op, params, rollup)
    table = "samples" if raw else check_identifier(rollup, "table")
    agg = (RAW_AGGS if raw else ROLLUP_AGGS)[op.agg]
    where = _points_where(db, op, params, raw)
    join, key = _join(db, op, params)
    sql = (
        f"SELECT {key} AS g, {_bucket(raw, params)} AS t, {agg} AS v FROM {db}.{table} AS p {join}"
        f"WHERE {where} GROUP BY g, t LIMIT {{limit:UInt64}}"
    )
    return _in_ms(sql, raw), params


def _rollup_last_sql(db: str, op: Operand, params: dict[str, Any], rollup: str) -> tuple[str, dict[str, Any]]:
    """`last` over a rollup: per (series, step) the state's last value and the latest rollup
    bucket, then per group the series latest by bucket, then by id."""
    where = _points_where(db, op, params, raw=False)
    inner = (
        f"SELECT p.series_id AS series_id, {_bucket(False, params)} AS t, argMaxMerge(p.last) AS v, "
        f"max(p.ts) AS lts FROM {db}.{check_identifier(rollup, 'table')} AS p WHERE {where} "
        "GROUP BY series_id, t"
    )
    join, key = _join(db, op, params)
    sql = (
        f"SELECT {key} AS g, p.t AS t, argMax(p.v, (p.lts, p.series_id)) AS v FROM ({inner}) AS p {join}"
        "GROUP BY g, t LIMIT {limit:UInt64}"
    )
    return _in_ms(sql, False), params


def quantile_sql(db: str, op: Operand, w: Window, limit: int) -> tuple[str, dict[str, Any]]:
    """The exact quantile of plain series' raw values per (group, step).

    quantileExactInclusive interpolates linearly between the two closest ranks, like
    numpy.quantile's default and Prometheus' quantile_over_time. The level comes from the fixed
    QUANTILES table, never from the request text."""
    params = _params(op, w, limit)
    where = _points_where(db, op, params, raw=True)
    join, key = _join(db, op, params)
    level = QUANTILES[op.agg]
    sql = (
        f"SELECT {key} AS g, {_bucket(True, params)} AS t, quantileExactInclusive({level!r})(p.value) AS v "
        f"FROM {db}.samples AS p {join}WHERE {where} GROUP BY g, t LIMIT {{limit:UInt64}}"
    )
    return sql, params


def histogram_sql(
    db: str, op: Operand, w: Window, limit: int, rollup: str = ""
) -> tuple[str, dict[str, Any]]:
    """avg sum count of HISTOGRAM series per (group, step), or a quantile from the bucket
    counts added per (group, step, bound list) (`_histogram_quantile`), so counts are only ever
    added under the same bounds. A step without observations gives avg no row."""
    params = _params(op, w, limit)
    raw = not rollup
    table = "histograms" if raw else check_identifier(rollup, "table")
    where = _points_where(db, op, params, raw)
    join, key = _join(db, op, params)
    if op.agg in QUANTILES:
        counts = "sumForEach(p.counts)" if raw else "sumForEachMerge(p.counts)"
        select, keys, having = f"p.bounds AS b, {counts} AS c", "g, t, b", ""
    else:
        select, keys = f"{HISTOGRAM_AGGS[op.agg]} AS v", "g, t"
        having = "HAVING sum(p.count) > 0 " if op.agg == "avg" else ""
    sql = (
        f"SELECT {key} AS g, {_bucket(raw, params)} AS t, {select} FROM {db}.{table} AS p {join}"
        f"WHERE {where} GROUP BY {keys} {having}LIMIT {{limit:UInt64}}"
    )
    if op.agg in QUANTILES:
        params["q"] = QUANTILES[op.agg]
        return _histogram_quantile(_in_ms(sql, raw)), params
    return _in_ms(sql, raw), params


def _histogram_quantile(counts_sql: str) -> str:
    """Per (g, t): the quantile {q} of the bucket counts `counts_sql` added per bound list, as the
    per-series path's numpy histogram_quantile did (tests/collector/query/oracle.py: the same
    float operations in the same order, so the same value): rows (g, t, v, bound lists met, two
    of them). A (g, t) meeting two bound lists is refused by the caller; one without
    observations reads NaN. So only numbers cross into Python, not each row's bounds and counts
    (a p99 by host of 1,000 histograms x 100 steps held 182 MB of Python lists per 100k rows:
    review)."""
    value = (
        "multiIf(total = 0 OR k = 0, nan, j >= k, b[k], j = 0 AND b[1] <= 0, b[1], "
        "lower + (upper - lower) * ((rank - below) / inside))"
    )
    per_list = (
        "SELECT g, t, b, arrayCumSum(c) AS cum, arraySum(c) AS total, {q:Float64} * total AS rank, "
        "length(b) AS k, arrayCount(x -> x < rank, cum) AS j, least(j, k - 1) AS fi, "
        "b[fi + 1] AS upper, if(fi = 0, 0., b[fi]) AS lower, "
        "if(fi = 0, 0., toFloat64(cum[fi])) AS below, toFloat64(c[fi + 1]) AS inside, "
        f"{value} AS v FROM ({counts_sql})"
    )
    return (
        "SELECT g, t, any(v) AS v, uniqExact(b) AS lists, toString(groupUniqArray(2)(b)) AS two "
        f"FROM ({per_list}) GROUP BY g, t LIMIT {{limit:UInt64}}"
    )


def raw_points_sql(db: str, op: Operand, w: Window) -> tuple[str, dict[str, Any]]:
    """How many raw points `op` reads over `w`: what sizes a growth statement's parts."""
    params = _params(op, w, 0)
    return f"SELECT count() FROM {db}.samples AS p WHERE {_points_where(db, op, params, True)}", params


def growth_sql(
    db: str, op: Operand, w: Window, limit: int, part: int = 0, parts: int = 1
) -> tuple[str, dict[str, Any]]:
    """increase or rate of COUNTER and DELTA series per (group, step): rows (g, t, v).

    Per series and step:
    - a COUNTER's growth is that of the pairs of consecutive points in range whose later point
      falls in the step (so the first point in range is only a baseline, and a pair may
      straddle a step edge); a drop is a reset, the new value being the growth since it; equal
      timestamps are ordered by value, so a duplicate point never reads as a reset. A step
      with no such pair gives the series nothing. The span it covers is the sum of those
      pairs' durations.
    - a DELTA's growth is the sum of its values in the step; each point covers the time since
      the previous point in range (the first point in range: until the next one; alone: the
      step), at most one step: an increment covers its flush interval, which a sparse series'
      gaps (points only when something happened) overstate.
    The window over the points holds them all in the store's memory (about 100 bytes a point:
    1.3 M points of 3,600 counters took 128 MB), so a large read is split into `parts`
    statements over disjoint ranges of series ids (hashes, so evenly filled), which the sort key
    (name, series_id, ts) narrows: each part reads only its own granules. The caller adds their sums.
    increase = the growth summed over the group's series. rate = each series' growth divided by
    the seconds its points cover in the step, summed over the group: a steady counter reads
    the same rate in a step its points cover only partly (the current one, or the one it
    started in) as in a whole one. A COUNTER whose pairs cover no time in a step (duplicate
    timestamps only) adds to increase but not to rate.
    """
    params = _params(op, w, limit)
    params["counter"] = KIND_NAMES[COUNTER]
    where = _points_where(db, op, params, raw=True)
    if parts > 1:
        lo, hi = (part << 64) // parts, ((part + 1) << 64) // parts
        params["lo"] = lo
        where += " AND p.series_id >= {lo:UInt64}"
        if part + 1 < parts:
            params["hi"] = hi
            where += " AND p.series_id < {hi:UInt64}"
    inner = (
        "SELECT series_id, t, "
        "sumIf(if(value >= prev, value - prev, value), has_prev) AS grown, "
        "countIf(has_prev) AS pairs, sum(value) AS total, "
        "sumIf(ms - prev_ms, has_prev) AS paired_ms, "
        "sumIf(least(ms - prev_ms, {step:Int64}), has_prev) "
        "+ sumIf(least(if(next_ms > ms, next_ms - ms, {step:Int64}), {step:Int64}), NOT has_prev) "
        "AS delta_ms "
        f"FROM (SELECT p.series_id AS series_id, {_bucket(True, params)} AS t, p.value AS value, "
        "toUnixTimestamp64Milli(p.ts) AS ms, "
        "lagInFrame(p.value) OVER w AS prev, lagInFrame(ms, 1, ms) OVER w AS prev_ms, "
        "leadInFrame(ms, 1, ms) OVER w AS next_ms, row_number() OVER w > 1 AS has_prev "
        f"FROM {db}.samples AS p WHERE {where} "
        "WINDOW w AS (PARTITION BY p.series_id ORDER BY p.ts, p.value "
        "ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)) "
        "GROUP BY series_id, t"
    )
    counter = "s.kind = {counter:String}"
    counted = f"(NOT {counter} OR p.pairs > 0)"
    growth = f"if({counter}, p.grown, p.total)"
    covered = f"if({counter}, p.paired_ms, p.delta_ms)"
    if op.agg == "increase":
        value, having = f"sumIf({growth}, {counted})", f"countIf({counted}) > 0"
    else:
        value = f"sumIf({growth} / ({covered} / 1000), {counted} AND {covered} > 0)"
        having = f"countIf({counted} AND {covered} > 0) > 0"
    # the join is always made here: it holds each series' kind
    sql = (
        f"SELECT {_key(op)} AS g, p.t AS t, {value} AS v FROM ({inner}) AS p {_series_join(db, op, params)}"
        f"GROUP BY g, t HAVING {having} LIMIT {{limit:UInt64}}"
    )
    return sql, params
