"""SearchEvents / SearchLogs requests → SQL with bound parameters → responses.

Called by `ferry.collector.query.service`. No request value becomes SQL text: `equals` keys are
looked up in a fixed list of column names (map keys such as `properties.KEY` are checked and
bound too), every value, the `contains` text, the time range and the limit are bound as
`{name:Type}` parameters. Bad requests raise QueryError naming the field and what is allowed.
The `ferry events` / `ferry logs` CLI takes its column lists from EVENTS and LOGS here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.collector.query.sql import QueryError
from ferry.limits import LABEL_KEY_RE
from ferry.v1 import payload_pb2, query_pb2

if TYPE_CHECKING:  # the CLI imports the table declarations without the store driver
    from ferry.collector.storage.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_WINDOW_NS = 3_600 * 10**9


def _contains(column: str) -> str:
    return f"positionCaseInsensitiveUTF8({column}, {{contains:String}}) > 0"


@dataclass(frozen=True)
class RecordTable:
    """What may be asked of one records table: equality keys, a map column, the text search."""

    name: str
    columns: tuple[str, ...]  # keys `equals` may name directly
    map_column: str  # `equals` may also name `<map_column>.KEY`
    contains_sql: str  # the condition `contains` adds, on the bound {contains:String}
    select: tuple[str, ...]  # what each returned row holds, after ts (unix ns)


EVENTS = RecordTable(
    name="events",
    columns=("type", "category", "action", "label", "user_id", "session_id", "service", "host", "agent_id"),
    map_column="properties",
    contains_sql=(
        f"({_contains('label')} OR {_contains('action')} OR "
        f"arrayExists(v -> {_contains('v')}, mapValues(properties)))"
    ),
    select=(
        "host",
        "agent_id",
        "service",
        "type",
        "category",
        "action",
        "label",
        "value",
        "user_id",
        "session_id",
        "properties",
    ),
)

LOGS = RecordTable(
    name="logs",
    columns=("level", "service", "host", "agent_id", "trace_id", "span_id"),
    map_column="attributes",
    contains_sql=_contains("message"),
    select=("host", "agent_id", "service", "level", "message", "attributes", "trace_id", "span_id"),
)


def time_range(start_ns: int, end_ns: int, now_ns: int) -> tuple[int, int]:
    """[start, end) with the defaults filled in: end 0 is now, start 0 is an hour before end."""
    end = end_ns or now_ns
    start = start_ns or end - DEFAULT_WINDOW_NS
    if start < 0 or end < 0:
        raise QueryError(f"time range [{start_ns}, {end_ns}) ns: times must be >= 0")
    if end <= start:
        raise QueryError(f"end {end} ns must be after start {start} ns")
    return start, end


def resolve_limit(limit: int) -> int:
    """The requested limit, or the default for 0. Callers refuse more than MAX_LIMIT first."""
    return limit or DEFAULT_LIMIT


def where_sql(table: RecordTable, req, now_ns: int, params: dict[str, Any]) -> str:
    """The WHERE condition of a search request; fills `params` with every value it binds."""
    params["start"], params["end"] = time_range(req.start_unix_ns, req.end_unix_ns, now_ns)
    clauses = [
        "ts >= fromUnixTimestamp64Nano({start:Int64}, 'UTC')",
        "ts < fromUnixTimestamp64Nano({end:Int64}, 'UTC')",
    ]
    prefix = table.map_column + "."
    for i, (key, value) in enumerate(sorted(req.equals.items())):
        params[f"v{i}"] = value
        if key in table.columns:
            column = table.columns[table.columns.index(key)]  # the whitelisted name, not the request's
            clauses.append(f"{column} = {{v{i}:String}}")
        elif key.startswith(prefix) and LABEL_KEY_RE.fullmatch(key[len(prefix) :]):
            params[f"k{i}"] = key[len(prefix) :]
            clauses.append(f"{table.map_column}[{{k{i}:String}}] = {{v{i}:String}}")
        else:
            raise QueryError(
                f"equals key {key[:80]!r} is not one of {', '.join(table.columns)} "
                f"or {prefix}KEY (KEY matching {LABEL_KEY_RE.pattern})"
            )
    if req.contains:
        params["contains"] = req.contains
        clauses.append(table.contains_sql)
    return " AND ".join(clauses)


def records_sql(db: str, table: RecordTable, where: str) -> str:
    """Newest first, ties in a fixed order (a hash of the row), so pages never overlap; the
    caller binds {limit:UInt64} (one more than it returns, to see truncation) and {skip:UInt64}
    (rows at the cursor's time that earlier pages returned)."""
    columns = ", ".join(table.select)
    tiebreak = ", ".join("ifNull(value, nan)" if c == "value" else c for c in table.select)
    return (
        f"SELECT toUnixTimestamp64Nano(ts), {columns} FROM {db}.{table.name} "
        f"WHERE {where} ORDER BY ts DESC, cityHash64({tiebreak}) "
        "LIMIT {limit:UInt64} OFFSET {skip:UInt64}"
    )


def parse_page_token(token: str) -> tuple[int, int] | None:
    """`<unix ns>:<rows at that ns already returned>`, as `next_page_token` gives it."""
    if not token:
        return None
    ts, sep, skip = token.partition(":")
    if not (sep and ts.isdigit() and skip.isdigit()):
        raise QueryError(f"page_token {token[:80]!r} is not one this server gave (want <unix ns>:<count>)")
    return int(ts), int(skip)


def next_page_token(times: list[int], cursor: tuple[int, int] | None) -> str:
    """The token after a page whose rows have `times` (newest first)."""
    last = times[-1]
    at_last = sum(1 for t in times if t == last)
    if cursor is not None and cursor[0] == last:
        at_last += cursor[1]  # the page began inside the same instant
    return f"{last}:{at_last}"


def count_sql(db: str, table: RecordTable, where: str) -> str:
    return f"SELECT count() FROM {db}.{table.name} WHERE {where}"


def _event(row) -> query_pb2.StoredEvent:
    t, host, agent_id, service, type_, category, action, label, value, user_id, session_id, props = row
    event = payload_pb2.Event(
        time_unix_ns=t,
        type=type_,
        category=category,
        action=action,
        label=label,
        value=0.0 if value is None else value,
        has_value=value is not None,
        user_id=user_id,
        session_id=session_id,
        properties=props,
        service=service,
    )
    return query_pb2.StoredEvent(event=event, host=host, agent_id=agent_id)


def _log(row) -> query_pb2.StoredLog:
    t, host, agent_id, service, level, message, attributes, trace_id, span_id = row
    record = payload_pb2.LogRecord(
        time_unix_ns=t,
        level=level,
        message=message,
        service=service,
        attributes=attributes,
        trace_id=trace_id,
        span_id=span_id,
    )
    return query_pb2.StoredLog(log=record, host=host, agent_id=agent_id)


# request type → (table, response type, the response's repeated field, row → message)
_KINDS = {
    query_pb2.SearchEventsRequest: (EVENTS, query_pb2.SearchEventsResponse, "events", _event),
    query_pb2.SearchLogsRequest: (LOGS, query_pb2.SearchLogsResponse, "logs", _log),
}


def search(store: Store, req, settings: str = "", now_ns: int | None = None):
    """Answer a SearchEventsRequest or SearchLogsRequest from `store`. `settings` is appended
    to each statement (e.g. " SETTINGS max_execution_time = 30"). `total` counts every match
    of the search, whatever the page."""
    table, response_type, field, to_message = _KINDS[type(req)]
    params: dict[str, Any] = {}
    where = where_sql(table, req, time.time_ns() if now_ns is None else now_ns, params)
    if req.count_only:
        return response_type(total=store.query(count_sql(store.db, table, where) + settings, params)[0][0])
    limit = resolve_limit(req.limit)
    cursor = parse_page_token(req.page_token)
    page_where, skip = where, 0
    if cursor is not None:
        page_where = where + " AND ts <= fromUnixTimestamp64Nano({cursor:Int64}, 'UTC')"
        params["cursor"], skip = cursor
    rows = store.query(
        records_sql(store.db, table, page_where) + settings, {**params, "limit": limit + 1, "skip": skip}
    )
    out = response_type(truncated=len(rows) > limit)
    getattr(out, field).extend(to_message(row) for row in rows[:limit])
    if out.truncated:
        out.next_page_token = next_page_token([row[0] for row in rows[:limit]], cursor)
    if out.truncated or cursor is not None:
        out.total = store.query(count_sql(store.db, table, where) + settings, params)[0][0]
    else:
        out.total = len(rows)
    return out
