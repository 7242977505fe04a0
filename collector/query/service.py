"""The `ferry.v1.Query` service over the store: QueryRange, ListSeries, ListLabelValues,
ListAgents, TopProcesses (ferry.collector.query.listing), and Search<Kind> for each record kind
of `ferry.records` (SearchEvents, SearchLogs; defined at the end, from the declarations).

Methods are synchronous and take a QueryCall (ferry.collector.query.calls, which serves them on
the grpc.aio server's query pool, each thread with its own Store): every statement carries the
call's time and memory limits, and stops when the call is over. Bad requests answer
INVALID_ARGUMENT; over-limit ones RESOURCE_EXHAUSTED (more series, rows or answer bytes than
allowed, or more memory in the store than `query_max_memory_bytes`), with the limit checked
before the answer is built; a call whose client's deadline passed DEADLINE_EXCEEDED; store
failures UNAVAILABLE — with a message naming the value and the limit.
"""

from __future__ import annotations

import itertools
import logging

import grpc
import numpy as np
from clickhouse_connect.driver.exceptions import ClickHouseError

from ferry.collector import selfmetrics as m
from ferry.collector.query import arith, listing, search
from ferry.collector.query.aggregate import aggregate
from ferry.collector.query.answer import Answer, Operand, Window
from ferry.collector.query.calls import CallContext, Cancelled, QueryCall
from ferry.collector.query.sql import (
    LimitExceeded,
    QueryError,
    QueryLimits,
    check_agg,
    check_operand,
    check_window,
    fits_in_page,
    series_sql,
)
from ferry.collector.query.topk import top
from ferry.collector.storage.store import ThreadStores
from ferry.records import KINDS
from ferry.v1 import query_pb2, query_pb2_grpc
from ferry.wire.columns import KINDS_BY_NAME

log = logging.getLogger("ferry.collector.query")

# ClickHouse error codes that mean the request itself is bad (e.g. a regex that does not compile)
_BAD_REQUEST_CODES = ("Code: 427.", "Code: 36.", "Code: 62.")
_MEMORY_LIMIT = "Code: 241."  # MEMORY_LIMIT_EXCEEDED: the call's max_memory_usage
_TIMEOUT = "Code: 159."  # TIMEOUT_EXCEEDED: the call's max_execution_time
_KILLED = "Code: 394."  # QUERY_WAS_CANCELLED: KILL QUERY, the call was cancelled
_TOO_MANY_ROWS = "Code: 158."  # TOO_MANY_ROWS: the call's max_rows_to_read

# Upper bound of one point's bytes in a QueryRangeResponse: a time_ms varint (7 bytes up to
# 2^49 ms, year 19800) and a double; a series adds its labels (`_series_bytes`).
ANSWER_POINT_BYTES = 15

# A status message travels in a header, and gRPC clients refuse headers over 8 KiB with
# RESOURCE_EXHAUSTED of their own ("received metadata size exceeds soft limit"): a request's
# value echoed whole (a 10 KB aggregation, a store error quoting a 1 MB regex) lost the status.
MAX_DETAILS_CHARS = 2000


def details(message: str) -> str:
    """`message` cut to MAX_DETAILS_CHARS, saying so."""
    if len(message) <= MAX_DETAILS_CHARS:
        return message
    return message[:MAX_DETAILS_CHARS] + f"... ({len(message)} chars)"


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

    def query_range(
        self, request: query_pb2.QueryRangeRequest, timeout_s: float = 10.0
    ) -> query_pb2.QueryRangeResponse:
        """QueryRange in process (the alert evaluator), within the same limits, bounded by
        `timeout_s`; raises what the RPC would answer as an error (LimitExceeded, QueryError,
        the store's errors)."""
        lim = self.limits
        call = QueryCall(min(timeout_s, lim.max_execution_s), lim.max_memory_bytes, lim.max_rows_read)
        return self._query_range(request, call)

    def _answer(self, method: str, fn, request, context):
        call = context.call if isinstance(context, CallContext) else self.new_call(context)
        try:
            response = fn(request, call)
        except Cancelled as exc:
            m.QUERIES.labels(method, "cancelled").inc()
            context.abort(exc.code, details(str(exc)))
        except LimitExceeded as exc:
            m.QUERIES.labels(method, "limit").inc()
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, details(str(exc)))
        except QueryError as exc:
            m.QUERIES.labels(method, "invalid").inc()
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, details(str(exc)))
        except ClickHouseError as exc:
            outcome, code, message = self._store_error(str(exc), call)
            m.QUERIES.labels(method, outcome).inc()
            if outcome == "error":
                log.error("%s failed: %s", method, exc)
            context.abort(code, details(message))
        m.QUERIES.labels(method, "ok").inc()
        return response

    def _store_error(self, text: str, call: QueryCall) -> tuple[str, grpc.StatusCode, str]:
        """(outcome label, status, message) for a store error `text` of `call`."""
        if _KILLED in text or (_TIMEOUT in text and call.cancelled):
            return "cancelled", grpc.StatusCode.CANCELLED, "query cancelled: the client went away"
        if _TIMEOUT in text and call.deadline is not None and call.remaining() <= 0.05:
            return (
                "cancelled",
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "query stopped: the client's deadline passed",
            )
        hint = "; narrow the range or the matchers, or use a larger step"
        if _TIMEOUT in text:
            limit = (
                f"query ran longer than {call.max_execution_s:g} s in the store "
                f"(query_max_execution_s {self.limits.max_execution_s:g} s)"
            )
            return "limit", grpc.StatusCode.RESOURCE_EXHAUSTED, limit + hint
        if _TOO_MANY_ROWS in text:
            limit = f"query reads more than query_max_rows_read {self.limits.max_rows_read} rows in the store"
            return "limit", grpc.StatusCode.RESOURCE_EXHAUSTED, limit + hint
        if _MEMORY_LIMIT in text:
            limit = (
                f"query needs more than query_max_memory_bytes {self.limits.max_memory_bytes} bytes "
                "in the store"
            )
            return "limit", grpc.StatusCode.RESOURCE_EXHAUSTED, limit + hint
        if any(code in text for code in _BAD_REQUEST_CODES):
            return "invalid", grpc.StatusCode.INVALID_ARGUMENT, _first_line(text)
        return "error", grpc.StatusCode.UNAVAILABLE, f"store error: {_first_line(text)}"

    def new_call(self, context) -> QueryCall:
        """A QueryCall with this service's limits and `context`'s deadline."""
        lim = self.limits
        return QueryCall.of(context, lim.max_execution_s, lim.max_memory_bytes, lim.max_rows_read)

    def _list_series(self, req: query_pb2.ListSeriesRequest, call: QueryCall) -> query_pb2.ListSeriesResponse:
        limit = req.limit or self.limits.default_list_limit
        if limit > self.limits.max_list_limit:
            raise LimitExceeded(f"limit {limit} > {self.limits.max_list_limit} allowed")
        store = self.stores.get()
        sql, params = series_sql(store.db, req.metric, req.matchers, limit + 1, self.limits.max_answer_bytes)
        rows = store.query(sql + call.settings(), params)
        keep = min(limit, fits_in_page(rows, self.limits.max_answer_bytes))
        out = query_pb2.ListSeriesResponse(truncated=len(rows) > keep)
        for _sid, name, kind, unit, labels, first, last, _size, _upto in rows[:keep]:
            out.series.add(
                metric=name,
                labels=labels,
                kind=KINDS_BY_NAME.get(kind, 0),
                unit=unit,
                first_seen_ms=first,
                last_seen_ms=last,
            )
        return out

    def _label_values(
        self, req: query_pb2.ListLabelValuesRequest, call: QueryCall
    ) -> query_pb2.ListLabelValuesResponse:
        return listing.label_values(self.stores.get(), req, call.settings())

    def _agents(self, _req: query_pb2.ListAgentsRequest, call: QueryCall) -> query_pb2.ListAgentsResponse:
        return listing.agents(self.stores.get(), call.settings())

    def _top_processes(
        self, req: query_pb2.TopProcessesRequest, call: QueryCall
    ) -> query_pb2.TopProcessesResponse:
        return listing.top_processes(self.stores.get(), req, call.settings())

    def _search(self, req, call: QueryCall):
        if req.limit > search.MAX_LIMIT:
            raise LimitExceeded(f"limit {req.limit} > {search.MAX_LIMIT} allowed")
        return search.search(self.stores.get(), req, call.settings(), max_bytes=self.limits.max_answer_bytes)

    def _query_range(self, req: query_pb2.QueryRangeRequest, call: QueryCall) -> query_pb2.QueryRangeResponse:
        w = check_window(req, self.limits)
        store = self.stores.get()
        topk, bottomk = req.topk, req.bottomk
        if topk and bottomk:
            raise QueryError(f"topk {topk} and bottomk {bottomk}: ask for one of them")
        if req.expr:
            if req.metric or req.matchers or req.agg or req.group_by:
                raise QueryError(
                    "expr is a whole query: leave metric, matchers, agg and group_by empty with it"
                )
            expr = arith.parse(req.expr)
            if expr.top is not None:
                if topk or bottomk:
                    raise QueryError("topk/bottomk given twice: in the expression and in the request")
                k, which = expr.top
                topk, bottomk = (k, 0) if which == "top" else (0, k)

            budget = [self.limits.max_points]  # the points all operands may hold together

            def run(op: Operand) -> Answer:
                check_operand(op)
                try:
                    answer = self._aggregate(store, op, w, req.resolution, call, budget[0])
                except LimitExceeded:
                    if budget[0] < self.limits.max_points:
                        raise self._too_many_together() from None
                    raise
                budget[0] -= len(answer)
                return answer

            answer = arith.evaluate(expr, run)
            metric = req.expr
        else:
            op = Operand(req.metric, tuple(req.matchers), check_agg(req.agg), tuple(req.group_by) or None)
            check_operand(op)
            answer = self._aggregate(store, op, w, req.resolution, call)
            metric = req.metric
        if topk or bottomk:
            answer = top(answer, topk or bottomk, highest=bool(topk))
        return self._respond(metric, answer, call)

    def _aggregate(
        self, store, op: Operand, w: Window, resolution: str, call: QueryCall, max_points: int = 0
    ) -> Answer:
        """`op` over `w`, within max_points (an expression's operands share query_max_points)."""
        lim = self.limits
        points = max_points if max_points else lim.max_points
        if points <= 0:
            raise self._too_many_together()
        return aggregate(store, op, w, resolution, lim.max_groups, points, call.settings())

    def _too_many_together(self) -> LimitExceeded:
        return LimitExceeded(
            f"the expression's queries hold more than query_max_points {self.limits.max_points} "
            "points together; use a larger step, a shorter range or fewer groups"
        )

    def _respond(self, metric: str, answer: Answer, call: QueryCall) -> query_pb2.QueryRangeResponse:
        out = query_pb2.QueryRangeResponse(resolution=answer.resolution)
        g = answer.group
        if g.shape[0] == 0:
            return out
        call.check()
        groups = np.unique(g).tolist()
        size = ANSWER_POINT_BYTES * g.shape[0] + sum(
            _series_bytes(metric, answer.labels[i], answer.unit) for i in groups
        )
        if size > self.limits.max_answer_bytes:
            raise self._too_big(f"{g.shape[0]} points in {len(groups)} series, about {size} bytes")
        bounds = [*np.flatnonzero(np.concatenate(([True], g[1:] != g[:-1]))).tolist(), g.shape[0]]
        for a, b in itertools.pairwise(bounds):
            sp = out.series.add(metric=metric, labels=answer.labels[int(g[a])], unit=answer.unit)
            sp.time_ms.extend(answer.t[a:b].tolist())
            sp.value.extend(answer.v[a:b].tolist())
        return out

    def _too_big(self, what: str) -> LimitExceeded:
        return LimitExceeded(
            f"answer of {what} > query_max_answer_bytes {self.limits.max_answer_bytes} allowed; "
            "use a larger step, fewer series (matchers) or a group-by"
        )


def _series_bytes(metric: str, labels: dict[str, str], unit: str = "") -> int:
    """Upper bound of a SeriesPoints' bytes besides its points: metric, labels, unit, field
    headers."""
    return len(metric) + len(unit.encode()) + sum(len(k) + len(v) + 8 for k, v in labels.items()) + 32


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
