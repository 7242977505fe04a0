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


# ---- the same through an expression (QueryRangeRequest.expr) --------------------------------------


def _quoted(value: str, quote: str = '"') -> str:
    """`value` as a selector string literal: matched as exactly these characters."""
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _expr_request(expr: str) -> query_pb2.QueryRangeRequest:
    req = _request(expr=expr)
    req.ClearField("metric")
    return req


def _expressions(evil: str) -> list[tuple[str, str]]:
    """(expression, what a literal reading answers: "none", "all" or "any") with `evil` as a
    label value (quoted, both quote styles, and unquoted), a label name, a by label, a metric,
    an aggregation, and bare text between operands."""
    by_idx = "by (idx)"
    out = []
    for quote in ('"', "'"):
        v = _quoted(evil, quote)
        out += [
            (f"avg(test.gauge{{idx={v}}}) {by_idx}", "none"),
            (f"avg(test.gauge{{idx=~{v}}}) {by_idx}", "none"),
            (f"avg(test.gauge{{idx!={v}}}) {by_idx}", "all"),
            (f"avg(test.gauge{{idx!~{v}}}) {by_idx}", "all"),
            (f"max(test.gauge{{idx!={v}}}) {by_idx} / min(test.gauge{{idx={v}}}) {by_idx} * 2", "none"),
            (f"topk(1, p99(test.gauge{{idx=~{v}}}) {by_idx} - 1)", "none"),
        ]
    out += [
        (f'avg(test.gauge{{idx="{evil}"}}) {by_idx}', "any"),  # unescaped: refused, or a value
        (f"avg(test.gauge{{idx='{evil}'}}) {by_idx}", "any"),
        (f'avg(test.gauge{{{evil}="x"}}) {by_idx}', "none"),
        (f"avg(test.gauge) by ({evil})", "any"),
        (f"avg(test.gauge) by (idx, {evil})", "any"),
        (f"avg({evil}) {by_idx}", "none"),
        (f"avg({evil}{{idx='0'}}) {by_idx}", "none"),
        (f"{evil}(test.gauge) {by_idx}", "any"),
        (f"avg(test.gauge) {by_idx} / {evil}", "any"),
        (f"{evil} + avg(test.gauge) {by_idx}", "any"),
        (f"avg(test.gauge) {by_idx} {evil}", "any"),
    ]
    return out


def _series(resp) -> dict[str, list[float]]:
    return {s.labels["idx"]: list(s.value) for s in resp.series}


@pytest.mark.parametrize("evil", EVIL)
def test_every_expression_part_is_refused_or_data(servers, evil):
    server, store = servers
    _ack, code, _ = unary(server, INGEST, "Push", framegen.frame(framegen.gauge_batch(), seq=1))
    assert code == grpc.StatusCode.OK
    stored = count(store)
    tables = store.query("SELECT count() FROM system.tables WHERE database = {d:String}", {"d": store.db})
    everything, code, details = unary(server, QUERY, "QueryRange", _expr_request("avg(test.gauge) by (idx)"))
    assert code == grpc.StatusCode.OK, details
    assert sorted(_series(everything)) == ["0", "1", "2"]
    for expr, literal in _expressions(evil):
        resp, code, details = unary(server, QUERY, "QueryRange", _expr_request(expr))
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (expr, code, details)
        if code == grpc.StatusCode.OK:
            assert all(s.metric == expr for s in resp.series)
            if literal == "none":
                assert not resp.series, (expr, resp)
            elif literal == "all":
                assert _series(resp) == _series(everything), expr
            else:  # no series has the value: nothing, or (a negation) every series
                assert _series(resp) in ({}, _series(everything)), (expr, resp)
    assert count(store) == stored
    assert (
        store.query("SELECT count() FROM system.tables WHERE database = {d:String}", {"d": store.db})
        == tables
    )
    resp, code, _ = unary(server, QUERY, "QueryRange", _expr_request("count(test.gauge) by (__all__)"))
    assert code == grpc.StatusCode.OK and sum(resp.series[0].value) == stored  # still answering


@pytest.mark.parametrize("evil", [e for e in EVIL if "\x00" not in e])
def test_a_stored_hostile_label_value_is_matched_literally_in_an_expression(servers, evil):
    server, store = servers
    batch = framegen.gauge_batch(n_series=1, labels={"zone": evil})
    _ack, code, details = unary(server, INGEST, "Push", framegen.frame(batch, seq=1))
    assert code == grpc.StatusCode.OK, details
    for quote in ('"', "'"):
        v = _quoted(evil, quote)
        # the 5 points, however they fall into steps
        expr = f"count(test.gauge{{zone={v}}}) by (zone) + 0 * max(test.gauge{{zone={v}}}) by (zone)"
        resp, code, details = unary(server, QUERY, "QueryRange", _expr_request(expr))
        assert code == grpc.StatusCode.OK, (expr, details)
        assert [(dict(s.labels), sum(s.value)) for s in resp.series] == [({"zone": evil}, 5.0)], expr
    assert count(store) == 5
