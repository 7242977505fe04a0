"""A thin client of the Query service for scripts, benchmarks and tests."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from ferry import transport
from ferry.collector.query.sql import CLIENT_MAX_RECEIVE_BYTES
from ferry.v1 import query_pb2, query_pb2_grpc


def query_range(
    addr: str | transport.Endpoint,
    metric: str,
    *,
    agg: str = "avg",
    window_ms: int = 3_600_000,
    step_ms: int | None = None,
    by: Sequence[str] = (),
    matchers: Sequence[query_pb2.Matcher] = (),
    timeout: float = 30.0,
) -> query_pb2.QueryRangeResponse:
    """`metric` over the last `window_ms` (and a minute ahead, for clock skew); one bucket when
    `step_ms` is None."""
    end = int(time.time() * 1000) + 60_000
    start = end - 60_000 - window_ms
    req = query_pb2.QueryRangeRequest(
        metric=metric,
        start_ms=start,
        end_ms=end,
        step_ms=step_ms or (end - start),
        agg=agg,
        group_by=list(by),
        matchers=list(matchers),
    )
    endpoint = dataclasses.replace(transport.endpoint(addr), max_receive_bytes=CLIENT_MAX_RECEIVE_BYTES)
    with transport.channel(endpoint) as channel:
        return query_pb2_grpc.QueryStub(channel).QueryRange(req, timeout=timeout)


def total(
    addr: str | transport.Endpoint, metric: str, agg: str = "count", window_ms: int = 3_600_000
) -> float:
    """`agg` (count or sum) over every series of `metric` in the window, as one number."""
    resp = query_range(addr, metric, agg=agg, window_ms=window_ms, by=["__all__"])
    return float(sum(v for s in resp.series for v in s.value))
