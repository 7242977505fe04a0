"""A real collector: histogram and gauge points pushed over gRPC, quantiles asked with `ferry query`."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from ferry import transport
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from ferry.wire.columns import GAUGE, HISTOGRAM, MetricBatch, SeriesDef
from tests import framegen
from tests.integration.procs import diagnose, ferry_cli, start_collector

BOUNDS = (0.1, 0.5, 1.0, 5.0)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    proc = start_collector(tmp_path_factory.mktemp("quantiles"))
    t = int(time.time() * 1000) - 2000
    histograms = MetricBatch(
        series=[SeriesDef("app.latency", HISTOGRAM, "s", (("route", "/a"),), bounds=BOUNDS)],
        series_ref=np.zeros(2, dtype=np.uint32),
        time_ms=np.array([t, t], dtype=np.int64),
        value=np.array([100.0, 150.0]),
        # added: 60 390 420 125 5, cumulative 60 450 870 995 1000
        bucket_counts=np.array([20, 190, 220, 65, 5, 40, 200, 200, 60, 0], dtype=np.uint64),
    )
    gauges = MetricBatch(
        series=[SeriesDef("app.queue", GAUGE, "1", (("q", "x"),))],
        series_ref=np.zeros(6, dtype=np.uint32),
        time_ms=np.full(6, t, dtype=np.int64),
        value=np.array([4.0, 1.0, 3.0, 2.0, 10.0, 7.0]),
    )
    try:
        with diagnose(proc), transport.channel(proc.addr) as ch:
            stub = ingest_pb2_grpc.IngestStub(ch)
            for seq, batch in enumerate((histograms, gauges), start=1):
                assert stub.Push(framegen.frame(batch, seq), timeout=30).status == ingest_pb2.OK
        yield proc
    finally:
        proc.stop()


def _query(collector, metric: str, agg: str) -> list[dict]:
    # one 10-minute step, aligned to the epoch: the points a couple of seconds old fall in the last
    done = ferry_cli(
        "query", metric, "--since", "20m", "--step", "10m", "--agg", agg, "--format", "json",
        "--addr", collector.addr,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [orjson.loads(line) for line in done.stdout.splitlines()]


def test_cli_histogram_p99_and_p50(collector):
    p99 = _query(collector, "app.latency", "p99")
    assert [(d["labels"]["route"], [v for _, v in d["points"]]) for d in p99] == [
        ("/a", [1.0 + 4.0 * ((990 - 870) / 125)])
    ]
    p50 = _query(collector, "app.latency", "p50")
    assert [v for _, v in p50[0]["points"]] == [0.5 + 0.5 * ((500 - 450) / 420)]
    count = _query(collector, "app.latency", "count")
    assert [v for _, v in count[0]["points"]] == [1000.0]


def test_cli_gauge_quantile(collector):
    docs = _query(collector, "app.queue", "p50")
    # sorted 1 2 3 4 7 10: position 0.5 * 5 = 2.5, halfway between 3 and 4
    assert [v for _, v in docs[0]["points"]] == [3.5]


def test_cli_refuses_an_unknown_aggregation(collector):
    done = ferry_cli("query", "app.latency", "--agg", "p42", "--addr", collector.addr)
    assert done.returncode == 2 and "p99" in done.stderr
