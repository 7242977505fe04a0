"""QueryRange over raw samples and the 1m / 1h rollups on the real embedded store, with points
written through Ingest.Push: the same sums, counts, min, max and last at every resolution,
the automatic choice, and clear refusals."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest

from ferry.collector.query.resolution import choose
from ferry.collector.query.sql import QueryError
from ferry.v1 import query_pb2
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _histograms, _ok, _push
from tests.collector.test_servicers import QUERY, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

HOUR = 3_600_000


def _query(server, agg: str, start: int, end: int, step: int, resolution: str = "", by=("zone",)):
    req = query_pb2.QueryRangeRequest(
        metric="cpu.load",
        start_ms=start,
        end_ms=end,
        step_ms=step,
        agg=agg,
        group_by=list(by),
        resolution=resolution,
    )
    return unary(server, QUERY, "QueryRange", req)


@pytest.fixture
def two_hours(servers):
    """cpu.load in zones a and b (two series each), a point every 10 s for two whole hours."""
    server, _ = servers
    start = (int(time.time() * 1000) // HOUR - 3) * HOUR
    rng = np.random.default_rng(3)
    times = start + np.arange(0, 2 * HOUR, 10_000)
    series = [SeriesDef("cpu.load", GAUGE, "1", (("cpu", str(i)), ("zone", z))) for i, z in enumerate("aabb")]
    for seq, i in enumerate(range(len(series)), start=1):
        batch = MetricBatch(
            series=[series[i]],
            series_ref=np.zeros(times.shape[0], dtype=np.uint32),
            time_ms=times.astype(np.int64),
            value=np.round(rng.uniform(0, 100, times.shape[0]), 2),
        )
        _push(server, batch, seq)
    return server, start


@pytest.mark.parametrize("agg", ["sum", "count", "min", "max", "avg", "last"])
def test_every_resolution_answers_the_same(two_hours, agg):
    server, start = two_hours
    answers = {}
    for resolution in ("raw", "1m", "1h"):
        resp = _ok(_query(server, agg, start, start + 2 * HOUR, HOUR, resolution))
        assert resp.resolution == resolution
        answers[resolution] = {s.labels["zone"]: (list(s.time_ms), list(s.value)) for s in resp.series}
    raw = answers["raw"]
    assert sorted(raw) == ["a", "b"] and all(len(t) == 2 for t, _ in raw.values())
    for resolution in ("1m", "1h"):
        assert sorted(answers[resolution]) == ["a", "b"], resolution
        for zone, (times, values) in answers[resolution].items():
            assert times == raw[zone][0]
            assert values == pytest.approx(raw[zone][1], rel=1e-12), (resolution, zone)
    if agg == "count":
        assert raw["a"][1] == [720.0, 720.0]  # two series, 360 points an hour each


def test_automatic_choice_is_the_coarsest_that_fits(two_hours):
    server, start = two_hours
    assert _ok(_query(server, "sum", start, start + 2 * HOUR, HOUR)).resolution == "1h"
    assert _ok(_query(server, "sum", start, start + 2 * HOUR, 600_000)).resolution == "1m"
    assert _ok(_query(server, "sum", start, start + 2 * HOUR, 30_000)).resolution == "raw"
    assert _ok(_query(server, "sum", start + 1000, start + 2 * HOUR, HOUR)).resolution == "raw"  # unaligned
    assert _ok(_query(server, "p99", start, start + 2 * HOUR, HOUR)).resolution == "raw"  # exact from raw


def test_refusals_name_the_resolution_and_the_reason(two_hours):
    server, start = two_hours
    _, code, details = _query(server, "sum", start, start + 2 * HOUR, 90_000, "1m")
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT and "step 90000 ms is not a multiple of 60000 ms" in details
    )
    _, code, details = _query(server, "p99", start, start + 2 * HOUR, HOUR, "1h")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "answered from raw samples only" in details
    _, code, details = _query(server, "sum", start, start + 2 * HOUR, HOUR, "5m")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "resolution '5m' is not one of raw, 1m, 1h" in details


def test_choose_unit():
    assert choose("", "sum", HOUR, 0, 2 * HOUR, histogram=False).name == "1h"
    assert choose("", "sum", HOUR, 0, 2 * HOUR, histogram=True).name == "1h"
    assert choose("", "p99", 60_000, 0, 2 * HOUR, histogram=True).name == "1m"
    assert choose("", "p99", HOUR, 0, 2 * HOUR, histogram=False) is None
    assert choose("", "increase", HOUR, 0, 2 * HOUR, histogram=False) is None
    assert choose("raw", "sum", HOUR, 0, 2 * HOUR, histogram=False) is None
    with pytest.raises(QueryError, match="aggregation 'max' of histogram series is answered from raw"):
        choose("1m", "max", HOUR, 0, HOUR, histogram=True)
    with pytest.raises(QueryError, match="aggregation 'p50' of plain series is answered from raw"):
        choose("1h", "p50", HOUR, 0, HOUR, histogram=False)


@pytest.fixture
def two_hours_of_histograms(servers):
    """app.latency in zones a and b (two series each), a histogram point every 15 s for two
    whole hours; one series of zone b changes its bounds after 90 minutes."""
    server, _ = servers
    start = (int(time.time() * 1000) // HOUR - 3) * HOUR
    rng = np.random.default_rng(5)
    points = []
    for i, zone in enumerate("aabb"):
        for t in range(start, start + 2 * HOUR, 15_000):
            bounds = (0.2, 1.0) if i == 3 and t >= start + 90 * 60_000 else (0.1, 0.5, 1.0, 5.0)
            counts = rng.integers(0, 30, len(bounds) + 1).tolist()
            total = round(float(rng.uniform(0, 40)), 3)
            points.append(({"cpu": str(i), "zone": zone}, bounds, t, total, counts))
    for seq, chunk in enumerate(range(0, len(points), 500), start=1):
        _push(server, _histograms("app.latency", points[chunk : chunk + 500]), seq)
    return server, start


@pytest.mark.parametrize("agg", ["count", "sum", "avg", "p50", "p90", "p99"])
def test_histograms_answer_the_same_at_every_resolution(two_hours_of_histograms, agg):
    server, start = two_hours_of_histograms
    quantile = agg.startswith("p")
    # quantiles need one bound list per group and step: per cpu, without the one that changed
    by = ("cpu",) if quantile else ("zone",)
    matchers = [query_pb2.Matcher(label="cpu", op=query_pb2.NEQ, value="3")] if quantile else []
    answers = {}
    for resolution in ("raw", "1m", "1h"):
        req = query_pb2.QueryRangeRequest(
            metric="app.latency",
            start_ms=start,
            end_ms=start + 2 * HOUR,
            step_ms=HOUR,
            agg=agg,
            group_by=list(by),
            matchers=matchers,
            resolution=resolution,
        )
        resp = _ok(unary(server, QUERY, "QueryRange", req))
        answers[resolution] = {s.labels[by[0]]: (list(s.time_ms), list(s.value)) for s in resp.series}
    raw = answers["raw"]
    assert len(raw) == (3 if quantile else 2) and all(len(t) == 2 for t, _ in raw.values())
    for resolution in ("1m", "1h"):
        assert answers[resolution].keys() == raw.keys()
        for key, (times, values) in answers[resolution].items():
            assert times == raw[key][0]
            assert values == pytest.approx(raw[key][1], rel=1e-12), (resolution, key)


def test_histogram_rollups_are_chosen_automatically(two_hours_of_histograms):
    server, start = two_hours_of_histograms
    req = query_pb2.QueryRangeRequest(
        metric="app.latency",
        start_ms=start,
        end_ms=start + 2 * HOUR,
        step_ms=HOUR,
        agg="p99",
        group_by=["cpu"],
        matchers=[query_pb2.Matcher(label="cpu", op=query_pb2.NEQ, value="3")],
    )
    assert _ok(unary(server, QUERY, "QueryRange", req)).resolution == "1h"
    req.step_ms = 60_000
    assert _ok(unary(server, QUERY, "QueryRange", req)).resolution == "1m"
