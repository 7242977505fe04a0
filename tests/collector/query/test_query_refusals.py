"""QueryRange refusals found by review of issue 19: a bad aggregation is INVALID_ARGUMENT before any
limit is counted, an expression's operands share query_max_points, topk with bottomk is refused
before the store is asked, and a grouped `last` is answered from raw points when the resolution
is automatic. Points go through Ingest.Push into the real embedded store."""

from __future__ import annotations

import time

import grpc
import grpc_testing
import numpy as np

from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.v1 import query_pb2
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _push
from tests.collector.test_servicers import QUERY, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP = 10_000


def _gauges(name: str, nodes: int, t0: int, steps: int) -> MetricBatch:
    """`nodes` gauges, one point per step, value = node index."""
    series = [SeriesDef(name, GAUGE, "1", (("node", f"n{i:02d}"),)) for i in range(nodes)]
    refs = np.repeat(np.arange(nodes, dtype=np.uint32), steps)
    times = np.tile(t0 + 1000 + np.arange(steps, dtype=np.int64) * STEP, nodes)
    return MetricBatch(series=series, series_ref=refs, time_ms=times, value=refs.astype(np.float64))


def _limited(store, store_dsn, **limits):
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    server = grpc_testing.server_from_dictionary(
        {QUERY: QueryService(stores, QueryLimits(**limits))}, grpc_testing.strict_real_time()
    )
    return server, stores


def _req(**kw) -> query_pb2.QueryRangeRequest:
    t0 = kw.pop("t0")
    return query_pb2.QueryRangeRequest(start_ms=t0, end_ms=t0 + 10 * STEP, step_ms=STEP, **kw)


def test_refusals_come_in_order_and_operands_share_the_points(servers, store, store_dsn):
    server, _ = servers
    t0 = (int(time.time()) - 600) // 60 * 60_000
    _push(server, _gauges("r.gauge", 20, t0, 10), seq=1)
    limited, stores = _limited(store, store_dsn, max_points=150)
    try:
        # 200 points would pass the cap, but rate of a gauge is no query at all
        _, code, details = unary(limited, QUERY, "QueryRange", _req(t0=t0, metric="r.gauge", agg="rate"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("aggregation 'rate' is not defined for gauge series (r.gauge)")
        # one operand of 100 points fits; two of them do not, together
        half = 'avg(r.gauge{node=~"n0.*"}) by (node)'
        resp, code, _ = unary(limited, QUERY, "QueryRange", _req(t0=t0, expr=half))
        assert code == grpc.StatusCode.OK and sum(len(s.value) for s in resp.series) == 100
        both = f'{half} + max(r.gauge{{node=~"n0.*"}}) by (node)'
        _, code, details = unary(limited, QUERY, "QueryRange", _req(t0=t0, expr=both))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith(
            "the expression's queries hold more than query_max_points 150 points together"
        )
        # topk with bottomk: refused as a request, whatever the data
        req = _req(t0=t0, metric="r.gauge", agg="avg", group_by=["node"], topk=1, bottomk=1)
        _, code, details = unary(limited, QUERY, "QueryRange", req)
        assert (code, details) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "topk 1 and bottomk 1: ask for one of them",
        )
    finally:
        stores.close_all()


def test_a_grouped_last_is_read_from_raw_points_unless_a_rollup_is_named(servers):
    """Node a's last point is at :59 of the minute, node b's (the higher series id or not) at :02:
    raw answers a's value; the 1m rollup orders a group's series by bucket, then id."""
    server, _ = servers
    t0 = (int(time.time()) - 900) // 60 * 60_000
    series = [SeriesDef("r.last", GAUGE, "1", (("node", n), ("zone", "z"))) for n in ("a", "b")]
    batch = MetricBatch(
        series=series,
        series_ref=np.array([0, 1], dtype=np.uint32),
        time_ms=np.array([t0 + 59_000, t0 + 2000], dtype=np.int64),
        value=np.array([1.0, 2.0]),
    )
    _push(server, batch, seq=1)
    req = query_pb2.QueryRangeRequest(
        metric="r.last", start_ms=t0, end_ms=t0 + 60_000, step_ms=60_000, agg="last", group_by=["zone"]
    )
    auto, code, details = unary(server, QUERY, "QueryRange", req)
    assert code == grpc.StatusCode.OK, details
    assert (auto.resolution, [list(s.value) for s in auto.series]) == ("raw", [[1.0]])
    per_series = query_pb2.QueryRangeRequest()
    per_series.CopyFrom(req)
    del per_series.group_by[:]
    each, _, _ = unary(server, QUERY, "QueryRange", per_series)  # each series alone: the rollup is exact
    assert each.resolution == "1m"
    assert sorted(s.value[0] for s in each.series) == [1.0, 2.0]
