"""The query service's shared vocabulary: aggregations, limits, request checks, the matcher and
series conditions over the `series` table, and ListSeries' SQL (QueryRange's statements are in
ferry.collector.query.grouped and .lookup).

No request value ever becomes SQL text: metric names, label keys and values and regexes are
bound as `{name:Type}` parameters. Validation errors raise QueryError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry.collector.query.answer import Operand, Window
from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.validate import LABEL_KEY_RE, Limits, ValidationError, check_name
from ferry.v1 import query_pb2

# Growth of COUNTER and DELTA series per step: `increase`, and `rate` = the growth per second of
# the time the points cover (ferry.collector.query.grouped.growth_sql).
GROWTH = ("increase", "rate")

AGGREGATIONS = ("avg", "min", "max", "sum", "count", "last", *GROWTH, *QUANTILES)


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
    need not start the same way), or a `)` that closes the group it is wrapped in (`zz)?web(`
    is `^(?:zz)?web()$`, which matches `web`)."""
    if "|" in pattern or not _balanced(pattern):
        return ""
    n = 0
    while n < len(pattern) and pattern[n] in _LITERAL:
        n += 1
    if n < len(pattern) and pattern[n] in "*?{":
        n -= 1
    return pattern[: max(n, 0)]


def _balanced(pattern: str) -> bool:
    """Whether no `)` of `pattern` (outside escapes and character classes) closes a group it did
    not open."""
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":  # a class: `]` right after `[` or `[^` is a literal
            i += 2 if pattern.startswith("[^", i) else 1
            i += 1 if i < n and pattern[i] == "]" else 0
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return False
        i += 1
    return True


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
    if req.align_ms and not 0 < req.align_ms <= req.start_ms:
        raise QueryError(f"align {req.align_ms} ms must be >= 0 and at most start {req.start_ms}")
    return Window(req.start_ms, req.end_ms, req.step_ms, req.align_ms)


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
