"""ListLabelValues, ListAgents and TopProcesses: requests → SQL with bound parameters → responses.

Called by `ferry.collector.query.service`. No request value becomes SQL text: the label name, metric
name, matcher labels and values, time bounds and limits are bound as `{name:Type}` parameters;
TopProcesses takes its metric from a fixed list. Bad requests raise QueryError, requests over a
limit LimitExceeded, each naming the value and what is allowed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ferry.collector.query.sql import LimitExceeded, QueryError, series_where
from ferry.limits import LABEL_KEY_RE
from ferry.v1 import query_pb2

if TYPE_CHECKING:
    from ferry.collector.storage.store import Store

DEFAULT_VALUES_LIMIT = 1_000
MAX_VALUES_LIMIT = 100_000
MAX_AGENTS = 100_000
TOP_METRICS = ("process.cpu.utilization", "process.memory.usage")
DEFAULT_TOP = 10
MAX_TOP = 1_000
DEFAULT_TOP_WINDOW_MS = 5 * 60_000
MAX_TOP_WINDOW_MS = 24 * 3_600_000


def label_values(
    store: Store, req: query_pb2.ListLabelValuesRequest, settings: str = ""
) -> query_pb2.ListLabelValuesResponse:
    """The sorted distinct values of `req.label` among the matched series. The time bounds
    compare with the series' first/last seen, which the collector refreshes about hourly."""
    if not LABEL_KEY_RE.fullmatch(req.label):
        raise QueryError(f"label name {req.label[:80]!r} does not match {LABEL_KEY_RE.pattern}")
    limit = req.limit or DEFAULT_VALUES_LIMIT
    if limit > MAX_VALUES_LIMIT:
        raise LimitExceeded(f"limit {limit} > {MAX_VALUES_LIMIT} allowed")
    if req.start_ms < 0 or req.end_ms < 0:
        raise QueryError(f"time range [{req.start_ms}, {req.end_ms}) ms: times must be >= 0")
    if req.end_ms and req.end_ms <= req.start_ms:
        raise QueryError(f"end {req.end_ms} must be after start {req.start_ms}")
    params: dict[str, Any] = {"label": req.label, "limit": limit + 1}
    cond = series_where(req.metric, req.matchers, params)
    having = []
    if req.start_ms:
        params["start"] = req.start_ms
        having.append("max(last_seen) >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')")
    if req.end_ms:
        params["end"] = req.end_ms
        having.append("min(first_seen) < fromUnixTimestamp64Milli({end:Int64}, 'UTC')")
    if having:
        # a series may have a row in each unmerged part, and its first/last seen are those of
        # all its rows: the series in the time range are found by id first
        cond += (
            f" AND series_id IN (SELECT series_id FROM {store.db}.series WHERE {cond} "
            f"GROUP BY series_id HAVING {' AND '.join(having)})"
        )
    # labels are a function of the series id, so every row of a series holds its value: DISTINCT
    # over the rows is exact, and reads no labels twice (994k series, every metric: 30-90 ms,
    # where grouping by series first took 1.5-4.7 s)
    if req.label == "host":  # the label is also a column, never empty (ingest refuses an empty
        # host), in the sort key: its values come from that column, not from every labels map
        value, present = "host", "host != ''"
    else:
        value, present = "labels[{label:String}]", "mapContains(labels, {label:String})"
    sql = (
        f"SELECT DISTINCT {value} AS v FROM {store.db}.series "
        f"WHERE {cond} AND {present} ORDER BY v LIMIT {{limit:UInt64}}"
    )
    values = [row[0] for row in store.query(sql + settings, params)]
    return query_pb2.ListLabelValuesResponse(values=values[:limit], truncated=len(values) > limit)


def agents(store: Store, settings: str = "", now_ms: int | None = None) -> query_pb2.ListAgentsResponse:
    """Every agent that ever streamed here, by agent_id, with its latest host, version, address."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    sql = (
        "SELECT agent_id, argMax(host, last_seen), argMax(version, last_seen), "
        "argMax(address, last_seen), toUnixTimestamp64Milli(max(last_seen)) "
        f"FROM {store.db}.agents GROUP BY agent_id ORDER BY agent_id LIMIT {{limit:UInt64}}"
    )
    rows = store.query(sql + settings, {"limit": MAX_AGENTS + 1})
    if len(rows) > MAX_AGENTS:
        raise LimitExceeded(f"more than {MAX_AGENTS} agents recorded; the listing is limited to that")
    out = query_pb2.ListAgentsResponse()
    for agent_id, host, version, address, last in rows:
        out.agents.add(agent_id=agent_id, host=host, version=version, address=address)
        out.agents[-1].last_seen_ms, out.agents[-1].lag_ms = last, now - last
    return out


def top_processes(
    store: Store, req: query_pb2.TopProcessesRequest, settings: str = "", now_ms: int | None = None
) -> query_pb2.TopProcessesResponse:
    """The latest value of each matched process series within the window, largest first (ties by
    host, name, pid)."""
    metric = req.metric or TOP_METRICS[0]
    if metric not in TOP_METRICS:
        raise QueryError(f"metric {metric[:80]!r} is not one of {', '.join(TOP_METRICS)}")
    limit = req.limit or DEFAULT_TOP
    if limit > MAX_TOP:
        raise LimitExceeded(f"limit {limit} > {MAX_TOP} allowed")
    window = req.window_ms or DEFAULT_TOP_WINDOW_MS
    if not 0 < window <= MAX_TOP_WINDOW_MS:
        raise QueryError(f"window {window} ms must be in (0, {MAX_TOP_WINDOW_MS}]")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    params: dict[str, Any] = {"since": now - window, "limit": limit}
    cond = series_where(metric, req.matchers, params)
    sql = (
        "SELECT s.h, s.l['name'], s.l['pid'], s.l['group'], p.v, p.t, s.u FROM ("
        "SELECT series_id, argMax(value, ts) AS v, toUnixTimestamp64Milli(max(ts)) AS t "
        f"FROM {store.db}.samples "
        "WHERE name = {metric:String} AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') "
        f"AND series_id IN (SELECT series_id FROM {store.db}.series WHERE {cond}) GROUP BY series_id"
        ") AS p INNER JOIN ("
        f"SELECT series_id, any(host) AS h, any(labels) AS l, any(unit) AS u FROM {store.db}.series "
        f"WHERE {cond} "
        "GROUP BY series_id) AS s ON p.series_id = s.series_id "
        "ORDER BY p.v DESC, s.h, s.l['name'], s.l['pid'] LIMIT {limit:UInt64}"
    )
    out = query_pb2.TopProcessesResponse()
    for host, name, pid, group, value, t, unit in store.query(sql + settings, params):
        out.processes.add(host=host, name=name, pid=pid, group=group, value=value, time_ms=t, unit=unit)
    return out
