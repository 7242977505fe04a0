"""A real collector: a counter across a reset pushed over gRPC, increase and rate asked with `ferry query`."""

from __future__ import annotations

import time

import numpy as np
import orjson
import pytest

from ferry import transport
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from ferry.wire.columns import COUNTER, MetricBatch, SeriesDef
from tests import framegen
from tests.integration.procs import diagnose, ferry_cli, start_collector

STEP_MS = 600_000


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    proc = start_collector(tmp_path_factory.mktemp("increase"))
    # inside the last whole 10-minute step, so that one step holds every point
    t = (int(time.time() * 1000) // STEP_MS - 1) * STEP_MS + 1000
    counter = MetricBatch(
        series=[SeriesDef("app.requests", COUNTER, "1", (("route", "/a"),))],
        series_ref=np.zeros(5, dtype=np.uint32),
        time_ms=t + np.arange(5, dtype=np.int64) * 1000,
        value=np.array([0.0, 10.0, 20.0, 5.0, 15.0]),  # 10 + 10, a reset to 5, + 10
    )
    try:
        with diagnose(proc), transport.channel(proc.addr) as ch:
            stub = ingest_pb2_grpc.IngestStub(ch)
            assert stub.Push(framegen.frame(counter, 1), timeout=30).status == ingest_pb2.OK
        yield proc
    finally:
        proc.stop()


def _values(collector, agg: str) -> list[float]:
    done = ferry_cli(
        "query", "app.requests", "--since", "20m", "--step", "10m", "--agg", agg, "--by", "route",
        "--format", "json", "--addr", collector.addr,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [d["labels"] for d in docs] == [{"route": "/a"}]
    return [v for _, v in docs[0]["points"]]


def test_cli_increase_and_rate_across_a_counter_reset(collector):
    assert _values(collector, "increase") == [35.0]
    # over the 4 s its five points cover, not the 10-minute step they lie in
    assert _values(collector, "rate") == [35.0 / 4]
