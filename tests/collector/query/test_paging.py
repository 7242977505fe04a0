"""Listings paged by size, on the real engine: a ListSeries or Search<Kind> answer holds about
`max_answer_bytes` at most (at least one entry), says it is truncated, and a search's pages
still cover every match once."""

from __future__ import annotations

import grpc
import grpc_testing
import pytest

from ferry.collector.pipeline import FramePipeline
from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2, query_pb2
from tests import framegen

QUERY = query_pb2.DESCRIPTOR.services_by_name["Query"]
PAGE = 20_000  # bytes


@pytest.fixture
def stores(store, store_dsn):
    ts = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    yield ts
    ts.close_all()


@pytest.fixture
def query(stores):
    server = grpc_testing.server_from_dictionary(
        {QUERY: QueryService(stores, QueryLimits(max_answer_bytes=PAGE))}, grpc_testing.strict_real_time()
    )

    def call(method: str, request):
        rpc = server.invoke_unary_unary(QUERY.methods_by_name[method], (), request, 10)
        response, _metadata, code, details = rpc.termination()
        assert code == grpc.StatusCode.OK, details
        return response

    return call


def test_list_series_is_cut_by_size(stores, query):
    # 40 series with ~1 KB of labels each: about 40 KB, two pages' worth
    batch = framegen.gauge_batch(
        "paged.series", n_series=40, points=1, labels={"blob": "b" * 240, "c": "c" * 240}
    )
    pipeline = FramePipeline.writing(Writer(stores))
    assert pipeline.handle(framegen.frame(batch, seq=1)).status == ingest_pb2.OK
    resp = query("ListSeries", query_pb2.ListSeriesRequest(metric="paged.series", limit=1000))
    assert resp.truncated
    assert 0 < len(resp.series) < 40
    assert resp.ByteSize() <= PAGE
    everything = query("ListSeries", query_pb2.ListSeriesRequest(metric="paged.series", limit=5))
    assert len(everything.series) == 5 and everything.truncated  # the count limit still holds


def test_search_pages_are_cut_by_size_and_cover_every_match_once(stores, query):
    logs = [framegen.log_record(f"{i:03d} " + "m" * 3000) for i in range(30)]  # ~90 KB of messages
    pipeline = FramePipeline.writing(Writer(stores))
    assert pipeline.handle(framegen.records_frame(1, [], logs)).status == ingest_pb2.OK
    seen, token, pages = [], "", 0
    while True:
        resp = query("SearchLogs", query_pb2.SearchLogsRequest(limit=1000, page_token=token))
        pages += 1
        assert len(resp.logs) > 0 and resp.ByteSize() <= PAGE
        assert resp.total == 30
        seen += [r.log.message[:3] for r in resp.logs]
        if not resp.truncated:
            break
        token = resp.next_page_token
    assert pages >= 5
    assert sorted(seen) == [f"{i:03d}" for i in range(30)]
