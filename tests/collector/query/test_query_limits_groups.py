"""QueryRange's limits of issue 19 on a small store: groups per answer (query_max_groups),
points per answer (query_max_points), rows one statement may read in the store
(query_max_rows_read) and time in the store (query_max_execution_s). Each over-limit request is
answered RESOURCE_EXHAUSTED with a message naming the limit and its value; a grouped query over
more than 10,000 series but fewer groups than query_max_groups is answered.

The store (one per module, on the embedded engine) is written through the collector's pipeline:
`lim.cpu`, 10,050 gauges {idx, zone (5 values), rack (10 values)} of 6 points 10 s apart, and
`lim.small`, 10 gauges {zone, n}.
"""

from __future__ import annotations

import time
import uuid

import grpc
import numpy as np
import pytest

from ferry.collector.pipeline import FramePipeline
from ferry.collector.query.calls import Aborted, CallContext
from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import LimitExceeded, QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2, query_pb2
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests import framegen
from tests.collector.query.oracle import oracle_query
from tests.schema_template import SchemaTemplate

STEP = 10_000
POINTS = 6
WIDE = 10_050  # series of lim.cpu: more than the default query_max_groups
ZONES, RACKS = 5, 10
T0 = (int(time.time()) - 300) // 60 * 60_000  # five minutes ago, aligned to a minute


def _batch(name: str, labels: list[tuple[tuple[str, str], ...]]) -> MetricBatch:
    """Gauges `name` with `labels`, POINTS points each from T0, STEP apart: series i's point j
    is i + j / 10."""
    n = len(labels)
    refs = np.repeat(np.arange(n, dtype=np.uint32), POINTS)
    j = np.tile(np.arange(POINTS, dtype=np.int64), n)
    return MetricBatch(
        series=[SeriesDef(name, GAUGE, "1", ls) for ls in labels],
        series_ref=refs,
        time_ms=T0 + j * STEP,
        value=refs.astype(np.float64) + j / 10,
    )


@pytest.fixture(scope="module")
def limits_store(chdb_dsn, schema_templates):
    if chdb_dsn not in schema_templates:
        schema_templates[chdb_dsn] = SchemaTemplate.build(chdb_dsn)
    db = f"t_{uuid.uuid4().hex[:12]}"
    schema_templates[chdb_dsn].copy(db)
    stores = ThreadStores(lambda: Store.open(chdb_dsn, database=db))
    pipeline = FramePipeline.writing(Writer(stores))
    wide = [(("idx", str(i)), ("rack", f"r{i % RACKS}"), ("zone", f"z{i % ZONES}")) for i in range(WIDE)]
    small = [(("n", str(i)), ("zone", f"z{i % ZONES}")) for i in range(10)]
    for seq, batch in enumerate((_batch("lim.cpu", wide), _batch("lim.small", small)), start=1):
        ack = pipeline.handle(framegen.frame(batch, seq=seq, host="h-lim"))
        assert ack.status == ingest_pb2.OK, ack
    yield stores
    stores.get().client.command(f"DROP DATABASE IF EXISTS {db}")
    stores.close_all()


def _req(metric: str, agg: str = "avg", by=(), matchers=(), step: int = STEP, end: int | None = None):
    return query_pb2.QueryRangeRequest(
        metric=metric,
        start_ms=T0,
        end_ms=end if end is not None else T0 + POINTS * STEP,
        step_ms=step,
        agg=agg,
        group_by=list(by),
        matchers=[query_pb2.Matcher(label=k, op=query_pb2.EQ, value=v) for k, v in matchers],
    )


def _rpc(stores: ThreadStores, limits: QueryLimits, req: query_pb2.QueryRangeRequest):
    """QueryRange as the RPC answers it: (StatusCode.OK, response) or (code, details)."""
    service = QueryService(stores, limits)
    try:
        return grpc.StatusCode.OK, service.QueryRange(req, CallContext(service.new_call(None)))
    except Aborted as exc:
        return exc.code, exc.details


def _ok(result) -> query_pb2.QueryRangeResponse:
    code, resp = result
    assert code == grpc.StatusCode.OK, resp
    return resp


def _refused(result, limit: str) -> str:
    code, details = result
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, details)
    assert limit in details, details
    return details


def test_the_new_limits_and_their_defaults():
    lim = QueryLimits()
    assert (lim.max_groups, lim.max_points, lim.max_rows_read) == (10_000, 1_000_000, 1_000_000_000)
    assert lim.max_execution_s > 0


def test_more_groups_than_max_groups_is_refused(limits_store):
    five = QueryLimits(max_groups=5)
    resp = _ok(_rpc(limits_store, five, _req("lim.cpu", by=["zone"])))  # 5 groups: at the limit
    assert [dict(s.labels) for s in resp.series] == [{"zone": f"z{z}"} for z in range(ZONES)]
    _refused(_rpc(limits_store, five, _req("lim.cpu", by=["rack"])), "query_max_groups 5")
    _refused(_rpc(limits_store, five, _req("lim.cpu", by=["zone", "rack"])), "query_max_groups 5")
    # without a group-by every series is a group: 10 > 5; 2 of them under a matcher are not
    _refused(_rpc(limits_store, five, _req("lim.small")), "query_max_groups 5")
    resp = _ok(_rpc(limits_store, five, _req("lim.small", matchers=[("zone", "z0")])))
    assert len(resp.series) == 2


def test_the_default_max_groups_is_10000(limits_store):
    # 10,050 series, each its own group
    details = _refused(_rpc(limits_store, QueryLimits(), _req("lim.cpu")), "query_max_groups 10000")
    assert "groups" in details
    _refused(_rpc(limits_store, QueryLimits(), _req("lim.cpu", agg="p99")), "query_max_groups 10000")
    # the same in process (the alert evaluator's way): LimitExceeded
    with pytest.raises(LimitExceeded, match="query_max_groups 10000"):
        QueryService(limits_store, QueryLimits()).query_range(_req("lim.cpu", agg="last"))


def test_grouped_over_more_series_than_10000_in_fewer_groups_is_answered(limits_store):
    for agg in ("avg", "count", "max", "p50"):
        req = _req("lim.cpu", agg=agg, by=["zone"])
        resp = _ok(_rpc(limits_store, QueryLimits(), req))
        got = [(dict(s.labels), list(s.time_ms), list(s.value)) for s in resp.series]
        want = oracle_query(limits_store.get(), req)
        assert [g[0] for g in got] == [w[0] for w in want] == [{"zone": f"z{z}"} for z in range(ZONES)]
        for (labels, t, v), (_, wt, wv) in zip(got, want, strict=True):
            assert t == wt == [T0 + j * STEP for j in range(POINTS)], labels
            if agg == "avg":  # sums of floats in another order: the last bits may differ
                assert v == pytest.approx(wv, rel=1e-12), labels
            else:
                assert v == wv, labels
        if agg == "count":
            assert {v for _, _, vs in got for v in vs} == {WIDE / ZONES}


def test_more_points_than_max_points_is_refused(limits_store):
    twenty = QueryLimits(max_points=20)
    # 10 racks x 6 steps = 60 points
    _refused(_rpc(limits_store, twenty, _req("lim.cpu", by=["rack"])), "query_max_points")
    # 10 racks x 2 steps of 30 s = 20 points: at the limit
    resp = _ok(_rpc(limits_store, twenty, _req("lim.cpu", by=["rack"], step=30_000)))
    assert sum(len(s.time_ms) for s in resp.series) == 20
    # 10 series (no group-by) x 6 steps = 60 points
    _refused(_rpc(limits_store, twenty, _req("lim.small")), "query_max_points")
    _refused(_rpc(limits_store, twenty, _req("lim.small", agg="p90")), "query_max_points")


def test_more_rows_read_than_max_rows_read_is_refused(limits_store):
    # 60,300 points of lim.cpu (and 10,060 series rows) to read, 1,000 allowed
    thousand = QueryLimits(max_rows_read=1_000)
    _refused(_rpc(limits_store, thousand, _req("lim.cpu", by=["zone"])), "query_max_rows_read 1000")
    _refused(_rpc(limits_store, thousand, _req("lim.cpu", agg="p99", by=["zone"])), "query_max_rows_read")
    _ok(_rpc(limits_store, QueryLimits(max_rows_read=10_000_000), _req("lim.cpu", by=["zone"])))


def test_longer_than_max_execution_s_in_the_store_is_refused(limits_store):
    # exact quantiles per series of 10,050 series within 5 ms in the store
    quick = QueryLimits(max_execution_s=0.005, max_groups=100_000, max_points=10_000_000)
    for _ in range(3):  # a statement the engine finished within 5 ms would not stop: retried
        code, details = _rpc(limits_store, quick, _req("lim.cpu", agg="p99", by=["idx"]))
        if code != grpc.StatusCode.OK:
            break
    _refused((code, details), "query_max_execution_s")
