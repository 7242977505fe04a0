"""The Ingest.Push and Query servicers under grpcio-testing, on the real embedded store."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc_testing
import pytest

from ferry.collector.ingest import IngestService
from ferry.collector.pipeline import FramePipeline
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2, query_pb2
from tests import framegen

INGEST = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"]
QUERY = query_pb2.DESCRIPTOR.services_by_name["Query"]


@pytest.fixture
def servers(store, store_dsn):
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    pipeline = FramePipeline.writing(Writer(stores))
    executor = ThreadPoolExecutor(2)
    server = grpc_testing.server_from_dictionary(
        {INGEST: IngestService(pipeline, executor), QUERY: QueryService(stores)},
        grpc_testing.strict_real_time(),
    )
    yield server, store
    executor.shutdown()
    stores.close_all()


def unary(server, service, method, request):
    rpc = server.invoke_unary_unary(service.methods_by_name[method], (), request, 10)
    response, _metadata, code, details = rpc.termination()
    return response, code, details


def count(store: Store, table: str = "samples") -> int:
    return store.query(f"SELECT count() FROM {store.db}.{table}")[0][0]


def test_push_stores_and_acks_ok(servers):
    server, store = servers
    ack, code, _ = unary(server, INGEST, "Push", framegen.frame(framegen.gauge_batch(), seq=1))
    assert code == grpc.StatusCode.OK
    assert (ack.status, ack.seq, ack.epoch) == (ingest_pb2.OK, 1, 42)
    assert count(store) == 15
    assert store.query(f"SELECT sum(value) FROM {store.db}.samples")[0][0] == sum(
        1 + i * 100 + j for i in range(3) for j in range(5)
    )


def test_push_same_frame_twice_is_duplicate_and_stored_once(servers):
    server, store = servers
    f = framegen.frame(framegen.gauge_batch(), seq=7)
    first, _, _ = unary(server, INGEST, "Push", f)
    second, code, _ = unary(server, INGEST, "Push", f)
    assert first.status == ingest_pb2.OK
    assert (second.status, code) == (ingest_pb2.DUPLICATE, grpc.StatusCode.OK)
    assert count(store) == 15


def test_push_rejects_bad_frame_with_invalid_argument(servers):
    server, store = servers
    bad = framegen.frame(framegen.gauge_batch(), seq=1)
    bad.encoding = 9
    _, code, details = unary(server, INGEST, "Push", bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown frame encoding 9" in details
    assert count(store) == 0
    # and the next good frame from the same agent is still accepted
    ack, code, _ = unary(server, INGEST, "Push", framegen.frame(framegen.gauge_batch(), seq=2))
    assert (ack.status, code) == (ingest_pb2.OK, grpc.StatusCode.OK)


def test_push_histograms(servers):
    server, store = servers
    ack, _, _ = unary(server, INGEST, "Push", framegen.frame(framegen.histogram_batch(), seq=1))
    assert ack.status == ingest_pb2.OK
    rows = store.query(f"SELECT sum, count, bounds, counts FROM {store.db}.histograms ORDER BY ts")
    assert rows == [(12.5, 6, [1.0, 5.0, 10.0], [1, 2, 3, 0]), (30.0, 7, [1.0, 5.0, 10.0], [0, 1, 4, 2])]


def _load(server, now_s: int) -> int:
    t0 = (now_s - 30) // 10 * 10 * 1000  # aligned to every step used below
    unary(
        server,
        INGEST,
        "Push",
        framegen.frame(framegen.gauge_batch("q.m", n_series=3, points=10, t0_ms=t0), 1),
    )
    unary(
        server,
        INGEST,
        "Push",
        framegen.frame(
            framegen.gauge_batch("q.m", n_series=1, points=10, t0_ms=t0, value0=5000, labels={"zone": "b"}), 2
        ),
    )
    return t0


def _range(server, t0, agg, step_ms=5000, matchers=(), by=()):
    req = query_pb2.QueryRangeRequest(
        metric="q.m",
        start_ms=t0,
        end_ms=t0 + 10_000,
        step_ms=step_ms,
        agg=agg,
        matchers=list(matchers),
        group_by=list(by),
    )
    return unary(server, QUERY, "QueryRange", req)


def test_query_range_aggregations(servers):
    server, _ = servers
    t0 = _load(server, int(time.time()))
    idx1 = [
        query_pb2.Matcher(label="idx", op=query_pb2.EQ, value="1"),
        query_pb2.Matcher(label="zone", op=query_pb2.EQ, value=""),
    ]
    # series idx=1 has values 101..110 over ten seconds; step 5s → buckets [101..105], [106..110]
    expected = {
        "avg": [103, 108],
        "sum": [515, 540],
        "count": [5, 5],
        "min": [101, 106],
        "max": [105, 110],
        "last": [105, 110],
    }
    for agg, values in expected.items():
        resp, code, details = _range(server, t0, agg, matchers=idx1)
        assert code == grpc.StatusCode.OK, details
        assert len(resp.series) == 1
        s = resp.series[0]
        assert dict(s.labels) == {"host": "host-test", "idx": "1"}
        assert list(s.value) == values, agg
        assert list(s.time_ms) == [t0, t0 + 5000]


def test_query_range_matchers_and_group_by(servers):
    server, _ = servers
    t0 = _load(server, int(time.time()))
    resp, code, _ = _range(server, t0, "sum", step_ms=10_000, by=["zone"])
    assert code == grpc.StatusCode.OK
    by_zone = {s.labels["zone"]: list(s.value) for s in resp.series}
    # zone "" holds idx 0,1,2 (values 1..10, 101..110, 201..210); zone b holds 5000..5009
    assert by_zone == {
        "": [sum(range(1, 11)) + sum(range(101, 111)) + sum(range(201, 211))],
        "b": [sum(range(5000, 5010))],
    }
    re = [query_pb2.Matcher(label="idx", op=query_pb2.RE, value="0|2")]
    resp, _, _ = _range(server, t0, "count", step_ms=10_000, matchers=re)
    assert sorted((s.labels["idx"], s.labels.get("zone", "")) for s in resp.series) == [
        ("0", ""),
        ("0", "b"),
        ("2", ""),
    ]
    nre = [
        query_pb2.Matcher(label="idx", op=query_pb2.NRE, value="0|2"),
        query_pb2.Matcher(label="zone", op=query_pb2.NEQ, value="b"),
    ]
    resp, _, _ = _range(server, t0, "max", step_ms=10_000, matchers=nre)
    assert [(s.labels["idx"], list(s.value)) for s in resp.series] == [("1", [110.0])]


def test_list_series(servers):
    server, _ = servers
    _load(server, int(time.time()))
    resp, code, _ = unary(server, QUERY, "ListSeries", query_pb2.ListSeriesRequest(metric="q.m"))
    assert code == grpc.StatusCode.OK
    assert len(resp.series) == 4 and not resp.truncated
    assert {s.kind for s in resp.series} == {1}
    resp, _, _ = unary(server, QUERY, "ListSeries", query_pb2.ListSeriesRequest(metric="q.m", limit=2))
    assert len(resp.series) == 2 and resp.truncated


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"agg": "median"}, "aggregation 'median'"),
        ({"step_ms": 0}, "step 0 ms"),
        ({"step_ms": 1}, "buckets > 11000 allowed"),
        ({"metric": "bad name;DROP"}, "does not match"),
        ({"group_by": ["x') OR 1=1 --"]}, "group-by label"),
    ],
)
def test_query_range_bad_requests(servers, change, fragment):
    server, _ = servers
    now = int(time.time() * 1000)
    req = query_pb2.QueryRangeRequest(
        metric="q.m", start_ms=now - 60_000, end_ms=now, step_ms=1000, agg="avg"
    )
    for key, value in change.items():
        if isinstance(value, list):
            getattr(req, key).extend(value)
        else:
            setattr(req, key, value)
    _, code, details = unary(server, QUERY, "QueryRange", req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in details


def test_injection_through_label_values_is_data(servers):
    server, store = servers
    t0 = _load(server, int(time.time()))
    evil = ["1' OR '1'='1", "x\\' OR 1=1 --", "'); DROP TABLE samples; --"]
    for value in evil:
        for op in (query_pb2.EQ, query_pb2.RE):
            resp, code, details = _range(
                server, t0, "sum", matchers=[query_pb2.Matcher(label="idx", op=op, value=value)]
            )
            assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), details
            assert len(resp.series) == 0 if resp is not None else True
    assert count(store) == 40
