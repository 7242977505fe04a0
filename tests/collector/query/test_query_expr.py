"""QueryRange with an expression (QueryRangeRequest.expr) on the real embedded store, with points
written through Ingest.Push: a ratio of rates matched on their group labels, the {} group that
matches every group, division by zero, one-sided groups, topk, and refusals."""

from __future__ import annotations

import grpc
import pytest

from ferry.v1 import query_pb2
from ferry.wire.columns import COUNTER, GAUGE
from tests.collector.query.test_query_increase import _batch, _points, _t0
from tests.collector.query.test_query_quantiles import _ok, _push
from tests.collector.test_servicers import QUERY, count, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP = 10_000
RATIO = 'rate(http.errors{code=~"5.."}) by (service) / rate(http.requests) by (service) * 100'

# Counters over two steps; per series its increase in step 0 and step 1 (a pair's later point
# lies in the step). A series' rate is its increase over the seconds its pairs cover in the step:
# 8 s in step 0 (1 s to 9 s), 10 s in step 1.
ERRORS = {
    (("code", "500"), ("service", "a")): [(1000, 0.0), (9000, 30.0), (19_000, 50.0)],  # 30, 20
    (("code", "503"), ("service", "a")): [(1000, 0.0), (9000, 10.0), (19_000, 10.0)],  # 10, 0
    (("code", "404"), ("service", "a")): [(1000, 0.0), (9000, 1e3), (19_000, 2e3)],  # not 5..
    (("code", "500"), ("service", "b")): [(1000, 0.0), (9000, 20.0), (19_000, 30.0)],  # 20, 10
}
REQUESTS = {
    (("service", "a"),): [(1000, 0.0), (9000, 160.0), (19_000, 200.0)],  # 160, 40
    (("service", "b"),): [(1000, 0.0), (9000, 80.0), (19_000, 80.0)],  # 80, 0
    (("service", "c"),): [(1000, 0.0), (9000, 10.0), (19_000, 20.0)],  # 10, 10: no errors series
}
A, B, C = {"service": "a"}, {"service": "b"}, {"service": "c"}


def _expr(server, expr: str, t0: int, steps: int = 2, **fields):
    req = query_pb2.QueryRangeRequest(
        expr=expr, start_ms=t0, end_ms=t0 + steps * STEP, step_ms=STEP, **fields
    )
    return unary(server, QUERY, "QueryRange", req)


def _load(server) -> int:
    t0 = _t0()
    _push(server, _batch("http.errors", COUNTER, ERRORS, t0), seq=1)
    _push(server, _batch("http.requests", COUNTER, REQUESTS, t0), seq=2)
    return t0


def test_ratio_of_rates_by_service(servers):
    server, _ = servers
    t0 = _load(server)
    resp = _ok(_expr(server, RATIO, t0))
    assert [s.metric for s in resp.series] == [RATIO, RATIO]
    assert resp.resolution == "raw"
    assert _points(resp) == [
        (A, [t0, t0 + STEP], [(30 / 8 + 10 / 8) / (160 / 8) * 100, (20 / 10 + 0 / 10) / (40 / 10) * 100]),
        # step 1: b had no request (rate 0): a division by zero, no point; c: no errors series
        (B, [t0], [(20 / 8) / (80 / 8) * 100]),
    ]
    assert [v for _, _, values in _points(resp) for v in values] == [25.0, 50.0, 25.0]


def test_one_group_labelled_nothing_matches_every_group(servers):
    server, _ = servers
    t0 = _load(server)
    share = "increase(http.requests) by (service) / increase(http.requests) * 100"
    assert _points(_ok(_expr(server, share, t0))) == [
        (A, [t0, t0 + STEP], [160 / 250 * 100, 40 / 50 * 100]),
        (B, [t0, t0 + STEP], [80 / 250 * 100, 0 / 50 * 100]),
        (C, [t0, t0 + STEP], [10 / 250 * 100, 10 / 50 * 100]),
    ]
    # `by ()` is the same one group; numbers apply to every point
    total = _points(_ok(_expr(server, "2 * increase(http.requests) by () - 1", t0)))
    assert total == [({}, [t0, t0 + STEP], [499.0, 99.0])]


def test_group_on_one_side_only_gives_no_point(servers):
    server, _ = servers
    t0 = _load(server)
    # errors have a and b; requests a, b and c; by code the label sets never match requests'
    got = _points(
        _ok(_expr(server, "increase(http.errors) by (service) + increase(http.requests) by (service)", t0))
    )
    assert got == [(A, [t0, t0 + STEP], [1040.0 + 160, 1020.0 + 40]), (B, [t0, t0 + STEP], [100.0, 10.0])]
    assert not _ok(
        _expr(server, "increase(http.errors) by (code) + increase(http.requests) by (service)", t0)
    ).series
    # a series of another metric matched by its own label: `node` (frames pin host to host-test)
    _push(
        server,
        _batch("mem.used", GAUGE, {(("node", "a"),): [(2000, 8.0)], (("node", "z"),): [(2000, 1.0)]}, t0),
        3,
    )
    assert _points(_ok(_expr(server, "max(mem.used) by (node) / max(mem.used{node='a'}) by (node)", t0))) == [
        ({"node": "a"}, [t0], [1.0])
    ]


def test_division_by_zero_gives_no_point(servers):
    server, _ = servers
    t0 = _load(server)
    assert _points(_ok(_expr(server, 'rate(http.requests{service="b"}) by (service) / 0', t0))) == []
    got = _points(_ok(_expr(server, '1 / rate(http.requests{service="b"}) by (service)', t0)))
    assert got == [(B, [t0], [1 / (80 / 8)])]  # step 1: rate 0


def test_topk_in_the_expression_and_in_the_request(servers):
    server, _ = servers
    t0 = _load(server)
    per_service = "rate(http.requests) by (service)"  # a: 20, 4; b: 10, 0; c: 1.25, 1
    assert _points(_ok(_expr(server, f"bottomk(1, {per_service})", t0))) == [
        (B, [t0 + STEP], [0.0]),
        (C, [t0], [1.25]),
    ]
    two = _ok(_expr(server, per_service, t0, topk=2))
    assert _points(two) == [(A, [t0, t0 + STEP], [20.0, 4.0]), (B, [t0], [10.0]), (C, [t0 + STEP], [1.0])]
    assert _points(_ok(_expr(server, f"topk(1, {per_service} * -1)", t0))) == [
        (B, [t0 + STEP], [-0.0]),
        (C, [t0], [-1.25]),
    ]
    _, code, details = _expr(server, f"topk(1, {per_service})", t0, bottomk=1)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details


@pytest.mark.parametrize(
    "fields",
    [
        {"metric": "http.requests"},
        {"agg": "rate"},
        {"group_by": ["service"]},
        {"matchers": [query_pb2.Matcher(label="service", op=query_pb2.EQ, value="a")]},
    ],
)
def test_expr_with_a_single_query_field_is_refused(servers, fields):
    server, _ = servers
    t0 = _load(server)
    _, code, details = _expr(server, RATIO, t0, **fields)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "expr is a whole query: leave metric, matchers, agg and group_by empty with it"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("rate(http.requests", "expression: column 19: expected ')' closing rate(, got the end"),
        ("rate(http.requests) by (service) +", "expression: column 35: expected AGG(SELECTOR), a number"),
        ("median(http.requests)", "expression: column 1: unknown aggregation 'median'; one of avg, min, max"),
        (
            "http.requests / 2",
            "expression: column 1: expected AGG(SELECTOR) or a number, got 'http.requests'",
        ),
        ("rate(x) by (a-b)", "expression: column 13: by label 'a-b' does not match"),
        ("1 + 2", "expression has no query"),
        ("+".join(["sum(x)"] * 17), "expression: column 113: 17 queries > 16 allowed"),
        ("(" * 40 + "sum(x)" + ")" * 40, "expression: column 32: nesting depth 33 > 32 allowed"),
        ("sum(x)" + " " * 5000, "expression of 5006 chars > 4096 allowed"),
    ],
)
def test_bad_expressions_are_invalid_argument_with_the_column(servers, expr, message):
    server, store = servers
    t0 = _load(server)
    stored = count(store)
    _, code, details = _expr(server, expr, t0)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message), details
    assert count(store) == stored


def test_gauge_rate_in_an_expression_is_refused_as_without_one(servers):
    server, _ = servers
    t0 = _load(server)
    _push(server, _batch("mem.used", GAUGE, {(("node", "a"),): [(2000, 8.0)]}, t0), seq=3)
    _, code, details = _expr(server, "rate(mem.used) by (node) / 2", t0)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "aggregation 'rate' is not defined for gauge series (mem.used)" in details
