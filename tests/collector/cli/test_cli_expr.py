"""`ferry query EXPR` with an expression of aggregated queries, and --topk / --bottomk, against
the real Query service on a gRPC server over loopback (points pushed through Ingest.Push into
the embedded store): what it prints, and its exit status (0 ok, 1 refused, 2 usage error)."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from ferry import transport
from ferry.collector.cli.main import main
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.v1 import query_pb2_grpc
from ferry.wire.columns import GAUGE
from tests.collector.query.test_query_expr import RATIO, _load
from tests.collector.query.test_query_increase import _batch
from tests.collector.query.test_query_quantiles import _push
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP_S = 10


@pytest.fixture
def served(servers, store_dsn):
    """(the grpc_testing Ingest server to push with, the address of a real Query server)."""
    ingest, store = servers
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    server = grpc.server(ThreadPoolExecutor(2))
    query_pb2_grpc.add_QueryServicer_to_server(QueryService(stores), server)
    port = transport.bind(server, "127.0.0.1:0")  # the one module that binds ports
    server.start()
    yield ingest, f"127.0.0.1:{port}"
    server.stop(None).wait(10)
    stores.close_all()


def ferry(capsys, addr: str, t0: int, *argv: str) -> tuple[int, str, str]:
    """`ferry query ...` over the two steps from t0 (ms), 10 s each."""
    capsys.readouterr()
    span = ["--until", str(t0 // 1000 + 2 * STEP_S), "--since", f"{2 * STEP_S}s", "--step", f"{STEP_S}s"]
    rc = main(["query", *argv, *span, "--addr", addr])
    out, err = capsys.readouterr()
    return rc, out, err


def lines(out: str) -> list[tuple[str, dict, list]]:
    return [(d["metric"], d["labels"], d["points"]) for d in map(json.loads, out.splitlines())]


def test_expression_prints_like_a_query_with_the_expression_as_metric(served, capsys):
    ingest, addr = served
    t0 = _load(ingest)
    rc, out, err = ferry(capsys, addr, t0, RATIO, "--format", "json")
    assert (rc, err) == (0, "")
    assert lines(out) == [
        (RATIO, {"service": "a"}, [[t0, 25.0], [t0 + 10_000, 50.0]]),
        (RATIO, {"service": "b"}, [[t0, 25.0]]),  # b's requests rate is 0 in step 1: no point
    ]
    rc, out, _ = ferry(capsys, addr, t0, RATIO, "--format", "csv")
    assert rc == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["series", "time_ms", "value"]
    assert rows[1:] == [
        [f'{RATIO}{{service="a"}}', str(t0), "25.0"],
        [f'{RATIO}{{service="a"}}', str(t0 + 10_000), "50.0"],
        [f'{RATIO}{{service="b"}}', str(t0), "25.0"],
    ]
    rc, out, _ = ferry(capsys, addr, t0, RATIO)
    assert rc == 0
    assert out.splitlines()[0] == f'{RATIO}{{service="a"}}  ▁█  25 … 50'
    assert out.splitlines()[3] == f'{RATIO}{{service="b"}}  ▄  25 … 25'


def test_topk_and_bottomk_flags_with_both_forms(served, capsys):
    ingest, addr = served
    t0 = _load(ingest)
    per_service = "rate(http.requests) by (service)"  # a: 20, 4; b: 10, 0; c: 1.25, 1
    rc, out, err = ferry(capsys, addr, t0, per_service, "--topk", "1", "--format", "json")
    assert (rc, err) == (0, "")
    assert lines(out) == [(per_service, {"service": "a"}, [[t0, 20.0], [t0 + 10_000, 4.0]])]
    rc, out, err = ferry(
        capsys,
        addr,
        t0,
        "http.requests",
        "--agg",
        "rate",
        "--by",
        "service",
        "--bottomk",
        "1",
        "--format",
        "json",
    )
    assert (rc, err) == (0, "")
    assert lines(out) == [
        ("http.requests", {"service": "b"}, [[t0 + 10_000, 0.0]]),
        ("http.requests", {"service": "c"}, [[t0, 1.25]]),
    ]
    rc, out, _ = ferry(capsys, addr, t0, f"bottomk(1, {per_service})", "--format", "json")
    assert rc == 0 and [labels for _, labels, _ in lines(out)] == [{"service": "b"}, {"service": "c"}]


def test_a_bare_selector_keeps_working(served, capsys):
    ingest, addr = served
    t0 = _load(ingest)
    gauges = {
        (("node", "a"), ("tier", "x-1")): [(2000, 8.0)],
        (("node", "b"), ("tier", "x-1")): [(3000, 2.0)],
    }
    _push(ingest, _batch("my-app.mem_used:bytes", GAUGE, gauges, t0), seq=3)
    rc, out, err = ferry(
        capsys,
        addr,
        t0,
        'my-app.mem_used:bytes{tier="x-1"}',
        "--agg",
        "max",
        "--by",
        "node",
        "--format",
        "json",
    )
    assert (rc, err) == (0, "")
    assert lines(out) == [
        ("my-app.mem_used:bytes", {"node": "a"}, [[t0, 8.0]]),
        ("my-app.mem_used:bytes", {"node": "b"}, [[t0, 2.0]]),
    ]
    rc, out, _ = ferry(
        capsys, addr, t0, "my-app.mem_used:bytes", "--agg", "sum", "--by", "tier", "--format", "json"
    )
    assert rc == 0 and lines(out) == [("my-app.mem_used:bytes", {"tier": "x-1"}, [[t0, 10.0]])]
    # the same as an expression: max(...) by (node) over the sum
    expr = "max(my-app.mem_used:bytes) by (node) / sum(my-app.mem_used:bytes) by (node) * 10"
    rc, out, _ = ferry(capsys, addr, t0, expr, "--format", "json")
    assert rc == 0 and [points for _, _, points in lines(out)] == [[[t0, 10.0]], [[t0, 10.0]]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            [RATIO, "--agg", "sum"],
            "--agg apply to a selector, not to an expression: write AGG(SELECTOR) by (L1, L2) in it",
        ),
        (["rate(x) / 2", "--by", "host"], "--by apply to a selector"),
        (["rate(x) / 2", "--agg", "avg", "--by", ""], "--agg and --by apply to a selector"),
        (["topk(2, rate(x))", "--topk", "1"], "--topk and topk(...) in the expression: give one"),
        (["topk(2, rate(x))", "--bottomk", "3"], "--bottomk and topk(...) in the expression: give one"),
        (["rate(x)", "--topk", "1", "--bottomk", "1"], "--topk and --bottomk: give one of them"),
        (["up", "--topk", "-1"], "--topk -1 must be between 1 and 4294967295"),
        (["up", "--bottomk", "0"], "--bottomk 0 must be between 1 and 4294967295"),
        (["up", "--topk", str(2**32)], f"--topk {2**32} must be between 1 and 4294967295"),
        (
            ["rate(x) by (service) / ", "--step", "1m"],
            "bad expression at column 24:\n  rate(x) by (service) / \n",
        ),
        (
            ["rate(x", "--format", "json"],
            "bad expression at column 7:\n  rate(x\n        ^ expected ')' closing rate(, got the end",
        ),
        (
            ["http.requests / 2"],
            "bad expression at column 1:\n  http.requests / 2\n  ^ expected AGG(SELECTOR) or a number",
        ),
        (["sum by (s) (x)"], "^ write sum(SELECTOR) by (L1, L2): the by clause comes after the selector"),
        (["1 + 2"], "ferry query: expression has no query"),
        (["up x"], "bad expression at column 4:\n  up x\n     ^ unexpected 'x'"),
        (['{a="1"}'], "^ expected a metric name"),
        (["rate(x) by (a, a)"], "^ by label 'a' is given twice"),
    ],
)
def test_usage_errors_exit_2(served, capsys, argv, message):
    _, addr = served
    capsys.readouterr()
    rc = main(["query", *argv, "--addr", addr])
    out, err = capsys.readouterr()
    assert (rc, out) == (2, "")
    assert err.startswith("ferry query: ") and message in err, err


def test_a_refused_expression_exits_1(served, capsys):
    ingest, addr = served
    t0 = _load(ingest)
    _push(ingest, _batch("mem.used", GAUGE, {(("node", "a"),): [(2000, 8.0)]}, t0), seq=3)
    rc, out, err = ferry(capsys, addr, t0, "rate(mem.used) by (node) / 2")
    assert (rc, out) == (1, "")
    assert err.startswith(
        "ferry query: INVALID_ARGUMENT: aggregation 'rate' is not defined for gauge series (mem.used)"
    )
