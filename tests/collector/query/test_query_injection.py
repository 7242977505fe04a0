"""Injection attempts through every QueryRange field (metric, label names, label values, regexes,
group-by labels, aggregation, resolution) on the real embedded store: each is refused or treated
as data, the tables stay whole, and the service keeps answering."""

from __future__ import annotations

import time

import grpc
import pytest

from ferry.v1 import query_pb2
from tests import framegen
from tests.collector.test_servicers import INGEST, QUERY, count, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

EVIL = [
    "x' OR '1'='1",
    "x\\' OR 1=1 --",
    "'); DROP TABLE samples; --",
    "a} OR 1=1 --",
    "{metric:String}",
    "x` FROM system.tables --",
    "x\x00y",
    ".*') OR match('a', '.*",
]


def _request(**fields) -> query_pb2.QueryRangeRequest:
    now = int(time.time() * 1000)
    base = {"metric": "test.gauge", "start_ms": now - 3_600_000, "end_ms": now + 60_000, "step_ms": 60_000}
    return query_pb2.QueryRangeRequest(**{**base, **fields})


def _requests(evil: str) -> list[query_pb2.QueryRangeRequest]:
    m = query_pb2.Matcher
    return [
        _request(metric=evil),
        _request(matchers=[m(label=evil, op=query_pb2.EQ, value="x")]),
        *(_request(matchers=[m(label="idx", op=op, value=evil)]) for op in (0, 1, 2, 3)),
        _request(group_by=[evil]),
        _request(agg=evil),
        _request(resolution=evil),
        _request(agg="p99", group_by=["idx"], matchers=[m(label="idx", op=query_pb2.RE, value=evil)]),
        _request(agg="increase", matchers=[m(label="idx", op=query_pb2.NRE, value=evil)]),
    ]


@pytest.mark.parametrize("evil", EVIL)
def test_every_field_is_refused_or_data(servers, evil):
    server, store = servers
    _ack, code, _ = unary(server, INGEST, "Push", framegen.frame(framegen.gauge_batch(), seq=1))
    assert code == grpc.StatusCode.OK
    stored = count(store)
    tables = store.query("SELECT count() FROM system.tables WHERE database = {d:String}", {"d": store.db})
    for req in _requests(evil):
        resp, code, details = unary(server, QUERY, "QueryRange", req)
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (req, code, details)
        if code == grpc.StatusCode.OK:
            # data, not SQL: a value no series has matches nothing; negated matchers match all
            negated = any(mt.op in (query_pb2.NEQ, query_pb2.NRE) for mt in req.matchers)
            assert negated or not resp.series, (req, resp)
    assert count(store) == stored
    assert (
        store.query("SELECT count() FROM system.tables WHERE database = {d:String}", {"d": store.db})
        == tables
    )
    resp, code, _ = unary(server, QUERY, "QueryRange", _request(agg="count", group_by=["__all__"]))
    assert code == grpc.StatusCode.OK and sum(resp.series[0].value) == stored  # still answering
