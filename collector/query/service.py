"""The `ferry.v1.Query` service over the store: QueryRange, ListSeries, ListLabelValues,
ListAgents, TopProcesses (ferry.collector.query.listing), and Search<Kind> for each record kind
of `ferry.records` (SearchEvents, SearchLogs; defined at the end, from the declarations).

Methods are synchronous; the grpc.aio server runs them on its thread pool (each thread has its
own Store). Bad requests answer INVALID_ARGUMENT, over-limit ones RESOURCE_EXHAUSTED, store
failures UNAVAILABLE — with a message naming the value and the limit.
"""

from __future__ import annotations

import itertools
import logging

import grpc
import numpy as np
from clickhouse_connect.driver.exceptions import ClickHouseError

from ferry.collector import selfmetrics as m
from ferry.collector.query import listing, search
from ferry.collector.query.groups import matched
from ferry.collector.query.quantiles import QUANTILES
from ferry.collector.query.ranges import (
    is_histogram,
    read_histograms,
    read_increases,
    read_quantiles,
    read_samples,
)
from ferry.collector.query.resolution import RAW, choose
from ferry.collector.query.sql import GROWTH, LimitExceeded, QueryError, QueryLimits, check_range, series_sql
from ferry.collector.storage.store import ThreadStores
from ferry.records import KINDS
from ferry.v1 import query_pb2, query_pb2_grpc
from ferry.wire.columns import KINDS_BY_NAME

log = logging.getLogger("ferry.collector.query")

# ClickHouse error codes that mean the request itself is bad (e.g. a regex that does not compile)
_BAD_REQUEST_CODES = ("Code: 427.", "Code: 36.", "Code: 62.")


class QueryService(query_pb2_grpc.QueryServicer):
    def __init__(self, stores: ThreadStores, limits: QueryLimits | None = None):
        self.stores = stores
        self.limits = limits or QueryLimits()

    def QueryRange(self, request: query_pb2.QueryRangeRequest, context) -> query_pb2.QueryRangeResponse:
        return self._answer("QueryRange", self._query_range, request, context)

    def ListSeries(self, request: query_pb2.ListSeriesRequest, context) -> query_pb2.ListSeriesResponse:
        return self._answer("ListSeries", self._list_series, request, context)

    def ListLabelValues(
        self, request: query_pb2.ListLabelValuesRequest, context
    ) -> query_pb2.ListLabelValuesResponse:
        return self._answer("ListLabelValues", self._label_values, request, context)

    def ListAgents(self, request: query_pb2.ListAgentsRequest, context) -> query_pb2.ListAgentsResponse:
        return self._answer("ListAgents", self._agents, request, context)

    def TopProcesses(self, request: query_pb2.TopProcessesRequest, context) -> query_pb2.TopProcessesResponse:
        return self._answer("TopProcesses", self._top_processes, request, context)

    def _answer(self, method: str, fn, request, context):
        try:
            response = fn(request)
        except LimitExceeded as exc:
            m.QUERIES.labels(method, "limit").inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except QueryError as exc:
            m.QUERIES.labels(method, "invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ClickHouseError as exc:
            text = str(exc)
            if any(code in text for code in _BAD_REQUEST_CODES):
                m.QUERIES.labels(method, "invalid").inc()
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, _first_line(text))
            m.QUERIES.labels(method, "error").inc()
            log.error("%s failed: %s", method, text)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"store error: {_first_line(text)}")
        m.QUERIES.labels(method, "ok").inc()
        return response

    def _settings(self) -> str:
        return f" SETTINGS max_execution_time = {int(self.limits.max_execution_s)}"

    def _list_series(self, req: query_pb2.ListSeriesRequest) -> query_pb2.ListSeriesResponse:
        limit = req.limit or self.limits.default_list_limit
        if limit > self.limits.max_list_limit:
            raise LimitExceeded(f"limit {limit} > {self.limits.max_list_limit} allowed")
        store = self.stores.get()
        sql, params = series_sql(store.db, req.metric, req.matchers, limit + 1)
        rows = store.query(sql + self._settings(), params)
        out = query_pb2.ListSeriesResponse(truncated=len(rows) > limit)
        for _sid, name, kind, unit, labels, first, last in rows[:limit]:
            out.series.add(
                metric=name,
                labels=labels,
                kind=KINDS_BY_NAME.get(kind, 0),
                unit=unit,
                first_seen_ms=first,
                last_seen_ms=last,
            )
        return out

    def _label_values(self, req: query_pb2.ListLabelValuesRequest) -> query_pb2.ListLabelValuesResponse:
        return listing.label_values(self.stores.get(), req, self._settings())

    def _agents(self, _req: query_pb2.ListAgentsRequest) -> query_pb2.ListAgentsResponse:
        return listing.agents(self.stores.get(), self._settings())

    def _top_processes(self, req: query_pb2.TopProcessesRequest) -> query_pb2.TopProcessesResponse:
        return listing.top_processes(self.stores.get(), req, self._settings())

    def _search(self, req):
        if req.limit > search.MAX_LIMIT:
            raise LimitExceeded(f"limit {req.limit} > {search.MAX_LIMIT} allowed")
        return search.search(self.stores.get(), req, self._settings())

    def _query_range(self, req: query_pb2.QueryRangeRequest) -> query_pb2.QueryRangeResponse:
        agg = check_range(req, self.limits)
        store = self.stores.get()
        by = list(req.group_by)
        series = matched(store, req.metric, req.matchers, by, self.limits.max_series, self._settings())
        if not len(series):
            return query_pb2.QueryRangeResponse()
        limits = (self.limits.max_rows, self._settings())
        histogram = is_histogram(req.metric, series.kinds)
        rollup = choose(req.resolution, agg, req.step_ms, req.start_ms, req.end_ms, histogram)
        out = query_pb2.QueryRangeResponse(resolution=rollup.name if rollup else RAW)
        if histogram:
            table = rollup.histogram_table if rollup else ""
            g, t, v = read_histograms(store, req, agg, series, *limits, table)
        elif agg in GROWTH:
            g, t, v = read_increases(store, req, agg, series, *limits)
        elif agg in QUANTILES:
            g, t, v = read_quantiles(store, req, agg, series, *limits)
        else:
            g, t, v = read_samples(store, req, agg, series, *limits, rollup.table if rollup else "")
        if g.shape[0] == 0:
            return out
        bounds = [*np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1]))).tolist(), g.shape[0]]
        for a, b in itertools.pairwise(bounds):
            sp = out.series.add(metric=req.metric, labels=series.labels[int(g[a])])
            sp.time_ms.extend(t[a:b].tolist())
            sp.value.extend(v[a:b].tolist())
        return out


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:500] if text.strip() else "unknown error"


def _search_method(rpc: str):
    def method(self: QueryService, request, context):
        return self._answer(rpc, self._search, request, context)

    method.__name__ = method.__qualname__ = rpc
    method.__doc__ = f"{rpc}: one page of the kind's stored records (ferry.collector.query.search)."
    return method


for _kind in KINDS:  # SearchEvents, SearchLogs: one method per record kind
    setattr(QueryService, _kind.rpc, _search_method(_kind.rpc))
