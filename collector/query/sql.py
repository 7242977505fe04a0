"""QueryRange / ListSeries requests → SQL text plus bound parameters.

No request value ever becomes SQL text: metric names, label keys and values, regexes and step
are bound as `{name:Type}` parameters; the aggregation picks from a fixed table; identifiers
(the database) are checked by `check_identifier`. Validation errors raise QueryError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from collector.validate import LABEL_KEY_RE, Limits, ValidationError, check_name
from ferry.v1 import query_pb2

AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last")

# Per (series, bucket) partials fetched for each aggregation; combined across a group in Python.
PARTIALS = {
    "avg": ("sum(value)", "count()"),
    "sum": ("sum(value)",),
    "count": ("count()",),
    "min": ("min(value)",),
    "max": ("max(value)",),
    "last": ("argMax(value, ts)", "toUnixTimestamp64Milli(max(ts))"),
}


class QueryError(ValueError):
    """A bad request: the message names the field, the value and the limit."""


@dataclass(frozen=True)
class QueryLimits:
    max_series: int = 10_000
    max_buckets: int = 11_000  # per series, as Prometheus
    max_rows: int = 5_000_000  # (series, bucket) rows read back from the store
    max_execution_s: int = 30
    default_list_limit: int = 1_000
    max_list_limit: int = 100_000


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
            raise QueryError(f"matcher {i}: label name {mt.label!r} does not match {LABEL_KEY_RE.pattern}")
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


def series_sql(db: str, metric: str, matchers, limit: int) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"limit": limit}
    where = matcher_sql(matchers, params)
    if metric:
        check_metric(metric)
        params["metric"] = metric
        where.insert(0, "name = {metric:String}")
    cond = " AND ".join(where) or "1"
    sql = (
        "SELECT series_id, name, any(kind), any(unit), any(labels), "
        "toUnixTimestamp64Milli(min(first_seen)), toUnixTimestamp64Milli(max(last_seen)) "
        f"FROM {db}.series WHERE {cond} GROUP BY series_id, name "
        "ORDER BY name, series_id LIMIT {limit:UInt64}"
    )
    return sql, params


def check_range(req: query_pb2.QueryRangeRequest, limits: QueryLimits) -> str:
    check_metric(req.metric)
    agg = req.agg or "avg"
    if agg not in AGGREGATIONS:
        raise QueryError(f"aggregation {agg!r} is not one of {', '.join(AGGREGATIONS)}")
    if req.step_ms <= 0:
        raise QueryError(f"step {req.step_ms} ms must be > 0")
    if req.end_ms <= req.start_ms:
        raise QueryError(f"end {req.end_ms} must be after start {req.start_ms}")
    buckets = (req.end_ms - req.start_ms) // req.step_ms + 1
    if buckets > limits.max_buckets:
        raise QueryError(
            f"range / step = {buckets} buckets > {limits.max_buckets} allowed; use a larger step"
        )
    for label in req.group_by:
        if not LABEL_KEY_RE.fullmatch(label):
            raise QueryError(f"group-by label {label!r} does not match {LABEL_KEY_RE.pattern}")
    return agg


def range_sql(
    db: str, req: query_pb2.QueryRangeRequest, agg: str, max_rows: int
) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "metric": req.metric,
        "start": req.start_ms,
        "end": req.end_ms,
        "step": req.step_ms,
        "max_rows": max_rows + 1,
    }
    cond = " AND ".join(["name = {metric:String}", *matcher_sql(req.matchers, params)])
    partials = ", ".join(PARTIALS[agg])
    sql = (
        "SELECT series_id, intDiv(toUnixTimestamp64Milli(ts), {step:Int64}) * {step:Int64} AS t, "
        f"{partials} FROM {db}.samples "
        "WHERE name = {metric:String} "
        "AND ts >= fromUnixTimestamp64Milli({start:Int64}, 'UTC') "
        "AND ts < fromUnixTimestamp64Milli({end:Int64}, 'UTC') "
        f"AND series_id IN (SELECT series_id FROM {db}.series WHERE {cond}) "
        "GROUP BY series_id, t ORDER BY series_id, t LIMIT {max_rows:UInt64}"
    )
    return sql, params
