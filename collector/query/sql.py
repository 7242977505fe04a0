"""QueryRange / ListSeries requests → SQL text plus bound parameters.

No request value ever becomes SQL text: metric names, label keys and values, regexes and step
are bound as `{name:Type}` parameters; the aggregation picks from a fixed table; identifiers
(the database) are checked by `check_identifier`. Validation errors raise QueryError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry.collector.query.answer import Operand, Window
from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.storage.layout import check_identifier
from ferry.collector.validate import LABEL_KEY_RE, Limits, ValidationError, check_name
from ferry.v1 import query_pb2

# Growth of COUNTER and DELTA series per step: `increase`, and `rate` = increase / step seconds.
GROWTH = ("increase", "rate")

AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last", *GROWTH, *QUANTILES)

# Per (series, bucket) partials fetched for each aggregation; combined across a group in Python
# (numpy, which also sorts them: the range SQL has no ORDER BY, its LIMIT only bounds the rows).
PARTIALS = {
    "avg": ("sum(value)", "count()"),
    "sum": ("sum(value)",),
    "count": ("count()",),
    "min": ("min(value)",),
    "max": ("max(value)",),
    "last": ("argMax(value, ts)", "toUnixTimestamp64Milli(max(ts))"),
}

# The same over a rollup table (samples_1m, samples_1h), exact from its merged columns. `last`
# orders series by the bucket's start (a rollup keeps no finer time of its last point).
ROLLUP_PARTIALS = {
    "avg": ("sum(sum)", "sum(count)"),
    "sum": ("sum(sum)",),
    "count": ("sum(count)",),
    "min": ("min(min)",),
    "max": ("max(max)",),
    "last": ("argMaxMerge(last)", "toUnixTimestamp(max(ts)) * 1000"),
}

# The same over the histograms table: a point's sum and count are those of its observations.
# min, max and last have no meaning over bucket counts, so they are missing here.
HISTOGRAM_PARTIALS = {
    "avg": ("sum(sum)", "sum(count)"),
    "sum": ("sum(sum)",),
    "count": ("sum(count)",),
    **{q: ("bounds", "sumForEach(counts)") for q in QUANTILES},
}

# The same over a histogram rollup (histograms_1m, histograms_1h): its counts are sumForEach
# states, one row per bound list.
HISTOGRAM_ROLLUP_PARTIALS = {
    **HISTOGRAM_PARTIALS,
    **{q: ("bounds", "sumForEachMerge(counts)") for q in QUANTILES},
}


class QueryError(ValueError):
    """A bad request: the message names the field, the value and the limit."""


class LimitExceeded(QueryError):
    """A request over a limit (RESOURCE_EXHAUSTED): the message names the limit."""


@dataclass(frozen=True)
class QueryLimits:
    max_groups: int = 10_000  # groups of an answer (series, without a group-by)
    max_points: int = 1_000_000  # (group, step) points of an answer, or of an expression's operand
    max_rows_read: int = 1_000_000_000  # rows one statement may scan (ClickHouse max_rows_to_read)
    max_buckets: int = 11_000  # per series, as Prometheus
    max_execution_s: float = 30.0  # per call, in the store; the client's deadline may cut it
    max_memory_bytes: int = 1 << 30  # per statement, in the store (max_memory_usage)
    max_answer_bytes: int = 32 << 20  # a QueryRange answer, estimated before it is built
    default_list_limit: int = 1_000
    max_list_limit: int = 100_000


# The largest answer the `ferry` CLI and the query client accept: twice the default answer
# cap, so an answer the collector allows is never refused by them (gRPC's default is 4 MiB).
CLIENT_MAX_RECEIVE_BYTES = 2 * QueryLimits().max_answer_bytes


# A series' `host` label is also its `host` column (the collector writes the frame's host into
# both; migration 9 copied labels['host'] into the column), and `series` is sorted by
# (name, host, series_id): a matcher on `host` reads that column, so `host="h-0017"` reads the
# granule of that host's series, not every series of the metric (bench/serieslookup.py, 994k
# series: 2.5 ms and 8,192 rows read instead of 27.8 ms and 262,144). A regex on it also gets the
# literal prefix every match starts with (`regex_prefix`), which the sort key can use
# (`host=~"h-19.*"`: 16,384 rows read instead of 212,992).
_LABEL_OPS = {
    query_pb2.EQ: "{x} = {{v{i}:String}}",
    query_pb2.NEQ: "{x} != {{v{i}:String}}",
    query_pb2.RE: "match({x}, concat('^(?:', {{v{i}:String}}, ')$'))",
    query_pb2.NRE: "NOT match({x}, concat('^(?:', {{v{i}:String}}, ')$'))",
}


def matcher_sql(matchers, params: dict[str, Any]) -> list[str]:
    """One condition on the `series` table per matcher (a missing label reads as "")."""
    clauses = []
    for i, mt in enumerate(matchers):
        if not LABEL_KEY_RE.fullmatch(mt.label):
            raise QueryError(
                f"matcher {i}: label name {mt.label[:80]!r} does not match {LABEL_KEY_RE.pattern}"
            )
        if mt.op not in _LABEL_OPS:
            raise QueryError(f"matcher {i}: unknown operator {mt.op}")
        params[f"k{i}"] = mt.label
        params[f"v{i}"] = mt.value
        host = mt.label == "host"
        clauses.append(_LABEL_OPS[mt.op].format(x="host" if host else f"labels[{{k{i}:String}}]", i=i))
        if host and mt.op == query_pb2.RE and (prefix := regex_prefix(mt.value)):
            params[f"vp{i}"] = prefix
            clauses.append(f"startsWith(host, {{vp{i}:String}})")
    return clauses


# characters that stand for themselves in an RE2 pattern (none of them is special anywhere)
_LITERAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:/@=,; ")


def regex_prefix(pattern: str) -> str:
    """A prefix every string matching `^(?:pattern)$` starts with ("" when none is sure): the
    pattern's leading literal characters, without the last one when a quantifier that allows
    zero of it (`*`, `?`, `{`) follows; "" when the pattern has a `|` anywhere (an alternative
    need not start the same way)."""
    if "|" in pattern:
        return ""
    n = 0
    while n < len(pattern) and pattern[n] in _LITERAL:
        n += 1
    if n < len(pattern) and pattern[n] in "*?{":
        n -= 1
    return pattern[: max(n, 0)]


def check_metric(name: str) -> None:
    try:
        check_name(name, Limits())
    except ValidationError as exc:
        raise QueryError(str(exc)) from None


def series_where(metric: str, matchers, params: dict[str, Any]) -> str:
    """The condition on the `series` table for a metric (empty: every metric) and matchers."""
    where = matcher_sql(matchers, params)
    if metric:
        check_metric(metric)
        params["metric"] = metric
        where.insert(0, "name = {metric:String}")
    return " AND ".join(where) or "1"


def series_sql(db: str, metric: str, matchers, limit: int, max_bytes: int) -> tuple[str, dict[str, Any]]:
    """ListSeries: at most `limit` series, cut by size (`paged_by_size`); each row ends with
    its size and the running size."""
    params: dict[str, Any] = {"limit": limit, "max_bytes": max_bytes}
    cond = series_where(metric, matchers, params)
    sql = (
        "SELECT series_id, name, any(kind), any(unit) AS u, any(labels) AS l, "
        "toUnixTimestamp64Milli(min(first_seen)), toUnixTimestamp64Milli(max(last_seen)), "
        f"length(name) + length(u) + {_map_bytes('l')} + 48 AS _size "
        f"FROM {db}.series WHERE {cond} GROUP BY series_id, name "
        "ORDER BY name, series_id LIMIT {limit:UInt64}"
    )
    return paged_by_size(sql, "name, series_id"), params


def _map_bytes(column: str) -> str:
    """Upper bound of a Map(String, String)'s bytes in a protobuf map field."""
    return f"arraySum(arrayMap(x -> length(x) + 4, arrayConcat(mapKeys({column}), mapValues({column}))))"


def paged_by_size(sql: str, order: str) -> str:
    """`sql`, whose rows come in `order` and end with their estimated answer bytes `_size`,
    cut where the running size passes {max_bytes:UInt64}: the rows that start within it are
    kept, each followed by the running size, so the store never sends much more than a page.
    The caller keeps the rows that fit (`fits_in_page`) and calls the answer truncated when
    any is left over."""
    running = f"sum(_size) OVER (ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    return (
        f"SELECT * FROM (SELECT *, {running} AS _upto FROM ({sql})) "
        f"WHERE _upto - _size <= {{max_bytes:UInt64}} ORDER BY {order}"
    )


def fits_in_page(rows, max_bytes: int) -> int:
    """How many `paged_by_size` rows (the running size last) fit a page: at least one."""
    for n in range(1, len(rows)):
        if rows[n][-1] > max_bytes:
            return n
    return len(rows)


def check_window(req: query_pb2.QueryRangeRequest, limits: QueryLimits) -> Window:
    """The request's range and step, checked."""
    if req.step_ms <= 0:
        raise QueryError(f"step {req.step_ms} ms must be > 0")
    if req.end_ms <= req.start_ms:
        raise QueryError(f"end {req.end_ms} must be after start {req.start_ms}")
    buckets = (req.end_ms - req.start_ms) // req.step_ms + 1
    if buckets > limits.max_buckets:
        raise QueryError(
            f"range / step = {buckets} buckets > {limits.max_buckets} allowed; use a larger step"
        )
    return Window(req.start_ms, req.end_ms, req.step_ms)


def check_agg(agg: str) -> str:
    """The aggregation `agg` names ("" is avg), checked."""
    agg = agg or "avg"
    if agg not in AGGREGATIONS:
        raise QueryError(f"aggregation {agg[:80]!r} is not one of {', '.join(AGGREGATIONS)}")
    return agg


def check_operand(op: Operand) -> None:
    """An operand's metric, aggregation and group-by labels, checked (matchers are checked as
    they become SQL)."""
    check_metric(op.metric)
    check_agg(op.agg)
    for label in op.by or ():
        if not LABEL_KEY_RE.fullmatch(label):
            raise QueryError(f"group-by label {label[:80]!r} does not match {LABEL_KEY_RE.pattern}")


def check_range(req: query_pb2.QueryRangeRequest, limits: QueryLimits) -> str:
    """A request of one query (no expression), checked: its aggregation."""
    check_window(req, limits)
    agg = check_agg(req.agg)
    check_operand(Operand(req.metric, tuple(req.matchers), agg, tuple(req.group_by) or None))
    return agg


def _range_where(db: str, req: query_pb2.QueryRangeRequest, max_rows: int, alias: str = ""):
    """Parameters and WHERE clause of the points of `req.metric`'s matched series in range."""
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
    if matchers:  # without them every series of the metric is matched: the name says it all
        where += f" AND {alias}series_id IN (SELECT series_id FROM {db}.series WHERE {cond})"
    return params, cond, where


def _bucket(alias: str = "") -> str:
    return f"intDiv(toUnixTimestamp64Milli({alias}ts), {{step:Int64}}) * {{step:Int64}} AS t"


# the bucket of a rollup row, whose `ts` is a DateTime (seconds) bucket start
_ROLLUP_BUCKET = "intDiv(toUnixTimestamp(ts) * 1000, {step:Int64}) * {step:Int64} AS t"


def _source(agg: str, rollup: str, raw_table: str, raw: dict, rolled: dict) -> tuple[str, str, str]:
    """(partials, table, bucket expression) for reading `raw_table`, or the rollup table
    `rollup`, whose `ts` is a DateTime (seconds) bucket start."""
    if not rollup:
        return ", ".join(raw[agg]), raw_table, _bucket()
    return ", ".join(rolled[agg]), check_identifier(rollup, "table"), _ROLLUP_BUCKET


def range_sql(
    db: str, req: query_pb2.QueryRangeRequest, agg: str, max_rows: int, rollup: str = ""
) -> tuple[str, dict[str, Any]]:
    """Per (series, step) partials from `samples`, or from the rollup table `rollup` (whose
    `ts` is a DateTime bucket start)."""
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
    """Per (series, step) partials of a HISTOGRAM metric, from `histograms` or the rollup table
    `rollup`; for quantiles also per bound list, so bucket counts are only ever added under the
    same bounds."""
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
    """The exact quantile of the raw samples per (group, step), grouped in SQL: per series, or
    by the array of the group-by labels' values (a missing label reads as ""), answered as the
    index of that array in `keys` (the groups the lookup found; -1 for another), so every
    column is a number.

    quantileExactInclusive interpolates linearly between the two closest ranks, like
    numpy.quantile's default and Prometheus' quantile_over_time. The level comes from the fixed
    QUANTILES table, never from the request text.
    """
    params, cond, where = _range_where(db, req, max_rows, alias="p.")
    level = QUANTILES[agg]
    if req.group_by:
        params["by"], params["keys"] = list(req.group_by), keys or []
        # the group of each series, found once per series, not once per point
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
    """Per (series, step): `grown`, the counter growth of the pairs of consecutive points whose
    later point falls in the step; `pairs`, how many such pairs; `total`, the sum of the values
    (a DELTA series' increase).

    The previous point comes from a window over the series' points in the queried range, so the
    first point in range is only a baseline, and a pair may straddle a step edge (its growth
    belongs to the later point's step). A drop is a reset: the new value is the growth since it.
    Equal timestamps are ordered by value, so a duplicate point never reads as a reset.
    """
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


def points_sql(
    db: str, req: query_pb2.QueryRangeRequest, table: str, rollup: bool
) -> tuple[str, dict[str, Any]]:
    """About how many (series, step) pairs of `req` hold points in `table` (samples, histograms
    or a rollup of either, whose `ts` is a DateTime): the answer's points when no group-by
    combines them. Asked before a read whose answer might not fit. uniqCombined keeps a fixed
    few hundred KB whatever the count, where an exact count would hold every pair (measured on
    3.2 M pairs: 26 MB of collector RSS instead of ~350 MB, 1.2% under the exact count)."""
    params, _, where = _range_where(db, req, 0)
    bucket = _ROLLUP_BUCKET if rollup else _bucket()
    table = check_identifier(table, "table")
    return (
        f"SELECT uniqCombined(series_id, {bucket.removesuffix(' AS t')}) FROM {db}.{table} WHERE {where}",
        params,
    )


# refuse only past this margin over the cap: closer, the read's row cap decides exactly
POINTS_ERROR = 0.02
