"""Search<Kind> requests (SearchEvents, SearchLogs: one per `ferry.records` kind) → SQL with
bound parameters → responses.

Called by `ferry.collector.query.service`. No request value becomes SQL text: `equals` keys are
looked up in a fixed list of column names (map keys such as `properties.KEY` are checked and
bound too), every value, the `contains` text, the time range and the limit are bound as
`{name:Type}` parameters. Bad requests raise QueryError naming the field and what is allowed.
What may be searched comes from the kind's declaration and its table's columns
(`ferry.collector.storage.tables`); the `ferry events` / `ferry logs` CLI takes its column
lists from TABLES here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ferry.collector.query.sql import QueryError, fits_in_page, paged_by_size
from ferry.collector.storage import tables
from ferry.limits import LABEL_KEY_RE
from ferry.records import KINDS, RecordKind
from ferry.v1 import query_pb2

if TYPE_CHECKING:  # the CLI imports the table declarations without the store driver
    from ferry.collector.storage.store import Store

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
DEFAULT_WINDOW_NS = 3_600 * 10**9


def _contains(column: str) -> str:
    return f"positionCaseInsensitiveUTF8({column}, {{contains:String}}) > 0"


@dataclass(frozen=True)
class RecordTable:
    """What may be asked of one record kind's table: equality keys, a map column, the text search."""

    name: str
    columns: tuple[str, ...]  # keys `equals` may name directly
    map_column: str  # `equals` may also name `<map_column>.KEY`
    contains_sql: str  # the condition `contains` adds, on the bound {contains:String}
    select: tuple[str, ...]  # what each returned row holds, after ts (unix ns)
    nullable: tuple[str, ...] = ()  # selected columns that may be NULL (optional numbers)

    @classmethod
    def of(cls, kind: RecordKind) -> RecordTable:
        """From the kind's declaration; the columns returned are its table's after `ts`."""
        looks = [
            f"arrayExists(v -> {_contains('v')}, mapValues({f}))" if f == kind.attributes else _contains(f)
            for f in kind.contains
        ]
        return cls(
            name=kind.name,
            columns=kind.equals,
            map_column=kind.attributes,
            contains_sql=looks[0] if len(looks) == 1 else f"({' OR '.join(looks)})",
            # the frame's epoch and seq are the dedup ledger's, not the record's
            select=tuple(
                n for n in tables.TABLES[kind.name].names[1:] if n not in (tables.EPOCH.name, tables.SEQ.name)
            ),
            nullable=kind.optional_numbers,
        )


TABLES = {k.name: RecordTable.of(k) for k in KINDS}
EVENTS, LOGS = TABLES["events"], TABLES["logs"]


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
    caller binds {limit:UInt64} (one more than it returns, to see truncation), {skip:UInt64}
    (rows at the cursor's time that earlier pages returned) and {max_bytes:UInt64}: a page
    is also cut by size (`paged_by_size`), so each row ends with three more columns (the tie
    hash, its size as text, the running size)."""
    columns = ", ".join(table.select)
    tiebreak = ", ".join(f"ifNull({c}, nan)" if c in table.nullable else c for c in table.select)
    size = " + ".join(
        f"length(ifNull(toString({c}), ''))" if c in table.nullable else f"length(toString({c}))"
        for c in table.select
    )
    sql = (
        f"SELECT toUnixTimestamp64Nano(ts) AS _ns, {columns}, cityHash64({tiebreak}) AS _tie, "
        f"{size} + 32 AS _size FROM {db}.{table.name} "
        f"WHERE {where} ORDER BY ts DESC, _tie "
        "LIMIT {limit:UInt64} OFFSET {skip:UInt64}"
    )
    return paged_by_size(sql, "_ns DESC, _tie")


def parse_page_token(token: str) -> tuple[int, int] | None:
    """`<unix ns>:<rows at that ns already returned>`, as `next_page_token` gives it."""
    if not token:
        return None
    ts, sep, skip = token.partition(":")
    # isascii: str.isdigit() also takes '¹²³' and '٣', which int() refuses (answered UNKNOWN)
    if not (sep and ts.isascii() and skip.isascii() and ts.isdigit() and skip.isdigit()):
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


def stored(kind: RecordKind, row: Sequence[Any]):
    """A result row (unix ns, then the table's columns after ts) → the kind's Stored message:
    host and agent_id beside the record; a NULL optional number is unset (`has_<field>` false)."""
    fields: dict[str, Any] = {"time_unix_ns": row[0]}
    where: dict[str, str] = {}
    for column, value in zip(TABLES[kind.name].select, row[1:], strict=True):
        if column in ("host", "agent_id"):
            where[column] = value
        elif column in kind.optional_numbers:
            fields[column], fields[f"has_{column}"] = (0.0, False) if value is None else (value, True)
        else:
            fields[column] = value
    return getattr(query_pb2, kind.stored)(**{kind.noun: kind.message(**fields)}, **where)


# request type → its kind
_KINDS = {getattr(query_pb2, f"{k.rpc}Request"): k for k in KINDS}


def search(store: Store, req, settings: str = "", now_ns: int | None = None, max_bytes: int = 32 << 20):
    """Answer a Search<Kind>Request (SearchEvents, SearchLogs) from `store`. `settings` is
    appended to each statement (e.g. " SETTINGS max_execution_time = 30"). `total` counts every
    match of the search, whatever the page. A page holds at most `limit` records and about
    `max_bytes` (at least one record); the next page token follows its last record."""
    kind = _KINDS[type(req)]
    table, response_type = TABLES[kind.name], getattr(query_pb2, f"{kind.rpc}Response")
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
        records_sql(store.db, table, page_where) + settings,
        {**params, "limit": limit + 1, "skip": skip, "max_bytes": max_bytes},
    )
    keep = min(limit, fits_in_page(rows, max_bytes))
    out = response_type(truncated=len(rows) > keep)
    getattr(out, kind.name).extend(stored(kind, row[:-3]) for row in rows[:keep])
    if out.truncated:
        out.next_page_token = next_page_token([row[0] for row in rows[:keep]], cursor)
    if out.truncated or cursor is not None:
        out.total = store.query(count_sql(store.db, table, where) + settings, params)[0][0]
    else:
        out.total = len(rows)
    return out
