"""QueryRange p50 p90 p95 p99 (and avg sum count of histograms) on the real embedded store,
with points written through Ingest.Push."""

from __future__ import annotations

import time

import grpc
import grpc_testing
import numpy as np
import pytest

from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.v1 import query_pb2
from ferry.wire.columns import GAUGE, HISTOGRAM, MetricBatch, SeriesDef
from tests import framegen
from tests.collector.test_servicers import INGEST, QUERY, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

BOUNDS = (0.1, 0.5, 1.0, 5.0)
STEP = 10_000


def _t0() -> int:
    return (int(time.time()) - 60) // 10 * 10_000  # a minute ago, aligned to STEP


def _push(server, batch: MetricBatch, seq: int) -> None:
    _ack, code, details = unary(server, INGEST, "Push", framegen.frame(batch, seq))
    assert code == grpc.StatusCode.OK, details


def _histograms(name: str, points: list[tuple[dict[str, str], tuple[float, ...], int, float, list[int]]]):
    """A batch of HISTOGRAM points, each (labels, bounds, time ms, sum, bucket counts)."""
    defs: dict[tuple, int] = {}
    series, refs = [], []
    for labels, bounds, *_ in points:
        key = (tuple(sorted(labels.items())), bounds)
        if key not in defs:
            defs[key] = len(series)
            series.append(SeriesDef(name, HISTOGRAM, "s", key[0], bounds=bounds))
        refs.append(defs[key])
    return MetricBatch(
        series=series,
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array([p[2] for p in points], dtype=np.int64),
        value=np.array([p[3] for p in points], dtype=np.float64),
        bucket_counts=np.concatenate([np.asarray(p[4], dtype=np.uint64) for p in points]),
    )


def _range(server, metric, agg, start, end, step=STEP, by=(), matchers=()):
    req = query_pb2.QueryRangeRequest(
        metric=metric,
        start_ms=start,
        end_ms=end,
        step_ms=step,
        agg=agg,
        group_by=list(by),
        matchers=list(matchers),
    )
    return unary(server, QUERY, "QueryRange", req)


def _ok(result):
    resp, code, details = result
    assert code == grpc.StatusCode.OK, details
    return resp


def _observations(rng) -> np.ndarray:
    """1000 observations: 60, 390, 420, 125 and 5 in the buckets of BOUNDS (+Inf up to 20)."""
    edges = [(0.0, 0.1, 60), (0.1, 0.5, 390), (0.5, 1.0, 420), (1.0, 5.0, 125), (5.0, 20.0, 5)]
    # lo + width * (0, 1]: inside (lo, hi], as a `le` bucket holds
    obs = np.concatenate([lo + (hi - lo) * (1.0 - rng.random(n)) for lo, hi, n in edges])
    return rng.permutation(obs)


@pytest.fixture
def latency(servers):
    """app.latency{route="/a"}: 1000 observations in four delta points (one step from t0),
    and a point with no observation in the next step."""
    server, _ = servers
    t0 = _t0()
    obs = _observations(np.random.default_rng(11))
    chunks = np.split(obs, 4)
    points = [
        ({"route": "/a"}, BOUNDS, t0 + 1000 * (i + 1), float(c.sum()), _bucket_counts(c))
        for i, c in enumerate(chunks)
    ]
    points.append(({"route": "/a"}, BOUNDS, t0 + STEP + 5000, 0.0, [0, 0, 0, 0, 0]))
    _push(server, _histograms("app.latency", points), seq=1)
    return server, t0, obs, chunks


def _bucket_counts(values: np.ndarray) -> list[int]:
    return np.bincount(np.searchsorted(BOUNDS, values, side="left"), minlength=len(BOUNDS) + 1).tolist()


def test_histogram_quantiles_interpolate_inside_the_true_bucket(latency):
    server, t0, obs, _ = latency
    assert _bucket_counts(obs) == [60, 390, 420, 125, 5]  # cumulative 60, 450, 870, 995, 1000
    by_hand = {
        "p50": 0.5 + (1.0 - 0.5) * ((500 - 450) / 420),
        "p90": 1.0 + (5.0 - 1.0) * ((900 - 870) / 125),
        "p95": 1.0 + (5.0 - 1.0) * ((950 - 870) / 125),
        "p99": 1.0 + (5.0 - 1.0) * ((990 - 870) / 125),
    }
    for agg, want in by_hand.items():
        resp = _ok(_range(server, "app.latency", agg, t0, t0 + 2 * STEP))
        assert len(resp.series) == 1
        s = resp.series[0]
        assert dict(s.labels) == {"host": "host-test", "route": "/a"}
        # the second step's point holds no observation: no point there
        assert (list(s.time_ms), list(s.value)) == ([t0], [want]), agg
        true = np.quantile(obs, float(agg[1:]) / 100)
        bucket = np.searchsorted(BOUNDS, true, side="left")
        assert np.searchsorted(BOUNDS, want, side="left") == bucket, (agg, true, want)


def test_histogram_count_sum_avg(latency):
    server, t0, obs, chunks = latency
    count = _ok(_range(server, "app.latency", "count", t0, t0 + 2 * STEP)).series[0]
    assert (list(count.time_ms), list(count.value)) == ([t0, t0 + STEP], [1000.0, 0.0])
    total = _ok(_range(server, "app.latency", "sum", t0, t0 + 2 * STEP)).series[0]
    assert list(total.value) == pytest.approx([obs.sum(), 0.0], rel=1e-12)
    avg = _ok(_range(server, "app.latency", "avg", t0, t0 + 2 * STEP)).series[0]
    assert list(avg.time_ms) == [t0]  # no observations in the second step: no average
    assert avg.value[0] == pytest.approx(obs.mean(), rel=1e-12)
    # steps of 2 s: the first point alone, the next two added, the last alone
    per_step = _ok(_range(server, "app.latency", "count", t0, t0 + 6000, step=2000)).series[0]
    assert list(per_step.time_ms) == [t0, t0 + 2000, t0 + 4000]
    assert list(per_step.value) == [250.0, 500.0, 250.0]
    p50 = _ok(_range(server, "app.latency", "p50", t0 + 2000, t0 + 4000, step=2000)).series[0]
    counts = np.add(_bucket_counts(chunks[1]), _bucket_counts(chunks[2]))
    cum = np.cumsum(counts)
    b = int(np.searchsorted(cum, 250, side="left"))
    lower = 0.0 if b == 0 else BOUNDS[b - 1]
    below = 0 if b == 0 else int(cum[b - 1])
    assert list(p50.value) == [lower + (BOUNDS[b] - lower) * ((250 - below) / int(counts[b]))]


@pytest.mark.parametrize("agg", ["min", "max", "last"])
def test_histogram_min_max_last_are_refused(latency, agg):
    server, t0, _, _ = latency
    _, code, details = _range(server, "app.latency", agg, t0, t0 + STEP)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"aggregation '{agg}' is not defined for histogram app.latency" in details


def test_empty_window_returns_no_series(latency):
    server, t0, _, _ = latency
    for agg in ("p50", "p99", "count", "avg"):
        resp = _ok(_range(server, "app.latency", agg, t0 - 10 * STEP, t0 - 5 * STEP))
        assert len(resp.series) == 0, agg


def test_histogram_group_by_adds_counts_of_series_with_the_same_bounds(servers):
    server, _ = servers
    t0 = _t0()
    a, b = [10, 30, 20, 35, 5], [40, 10, 30, 15, 5]  # summed: 50 40 50 50 10, cumulative 50 90 140 190 200
    _push(
        server,
        _histograms(
            "rpc.duration",
            [({"route": "/a"}, BOUNDS, t0 + 1000, 1.0, a), ({"route": "/b"}, BOUNDS, t0 + 2000, 1.0, b)],
        ),
        seq=1,
    )
    end = t0 + STEP
    grouped = {
        agg: _ok(_range(server, "rpc.duration", agg, t0, end, by=["host"])).series
        for agg in ("p50", "p90", "p99")
    }
    assert {agg: [(dict(s.labels), list(s.value)) for s in v] for agg, v in grouped.items()} == {
        "p50": [({"host": "host-test"}, [0.5 + 0.5 * ((100 - 90) / 50)])],
        "p90": [({"host": "host-test"}, [1.0 + 4.0 * ((180 - 140) / 50)])],
        "p99": [({"host": "host-test"}, [5.0])],  # rank 198 lies in the +Inf bucket
    }
    # without --by each series answers from its own counts
    apart = _ok(_range(server, "rpc.duration", "p50", t0, end)).series
    assert [(s.labels["route"], list(s.value)) for s in apart] == [
        ("/a", [0.5 + 0.5 * ((50 - 40) / 20)]),  # cumulative 10 40 60
        ("/b", [0.1 + 0.4 * ((50 - 40) / 10)]),  # cumulative 40 50
    ]


def test_histogram_group_with_different_bounds_is_refused(servers):
    server, _ = servers
    t0 = _t0()
    points = [
        ({"route": "/a"}, BOUNDS, t0 + 1000, 1.0, [1, 2, 3, 4, 0]),
        ({"route": "/c"}, (1.0, 2.0), t0 + 2000, 1.0, [5, 5, 0]),
    ]
    _push(server, _histograms("rpc.duration", points), seq=1)
    _, code, details = _range(server, "rpc.duration", "p90", t0, t0 + STEP, by=["host"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "rpc.duration" in details
    assert "[0.1, 0.5, 1.0, 5.0]" in details and "[1.0, 2.0]" in details
    # apart, each is fine; and counts need no common bounds
    apart = _ok(_range(server, "rpc.duration", "p50", t0, t0 + STEP)).series
    assert [list(s.value) for s in apart] == [[0.5 + 0.5 * ((5 - 3) / 3)], [1.0 * (5 / 5)]]
    count = _ok(_range(server, "rpc.duration", "count", t0, t0 + STEP, by=["host"])).series
    assert [list(s.value) for s in count] == [[20.0]]


def _gauges(name: str, values: dict[tuple[tuple[str, str], ...], list[np.ndarray]], t0: int) -> MetricBatch:
    """GAUGE series with, per step k from t0, the values of values[labels][k] spread over the step."""
    series, refs, times, vals = [], [], [], []
    for i, (labels, steps) in enumerate(values.items()):
        series.append(SeriesDef(name, GAUGE, "1", labels))
        for k, v in enumerate(steps):
            refs.append(np.full(v.shape[0], i, dtype=np.uint32))
            times.append(t0 + k * STEP + np.arange(v.shape[0], dtype=np.int64) * (STEP // v.shape[0]))
            vals.append(v.astype(np.float64))
    return MetricBatch(
        series=series,
        series_ref=np.concatenate(refs),
        time_ms=np.concatenate(times),
        value=np.concatenate(vals),
    )


LEVELS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def test_gauge_quantiles_per_series_equal_numpy_linear_exactly(servers):
    """quantileExactInclusive interpolates like numpy's default method. With integer values
    and n - 1 a multiple of 25, every level's position is a multiple of 1/4, so both compute
    the interpolation without rounding and must agree to the last bit."""
    server, _ = servers
    t0 = _t0()
    rng = np.random.default_rng(5)
    sizes = {"0": (26, 101), "1": (51, 26), "2": (76, 1)}
    values = {
        (("idx", i),): [rng.integers(-10_000, 10_000, n).astype(np.float64) for n in ns]
        for i, ns in sizes.items()
    }
    _push(server, _gauges("q.g", values, t0), seq=1)
    for agg, q in LEVELS.items():
        resp = _ok(_range(server, "q.g", agg, t0, t0 + 2 * STEP))
        got = {s.labels["idx"]: (list(s.time_ms), list(s.value)) for s in resp.series}
        want = {
            labels[0][1]: ([t0, t0 + STEP], [float(np.quantile(v, q)) for v in steps])
            for labels, steps in values.items()
        }
        assert got == want, agg


def test_gauge_quantiles_group_by_in_sql(servers):
    server, _ = servers
    t0 = _t0()
    rng = np.random.default_rng(6)
    # zone a: 20 + 31 = 51 values, zone b: 76, zone "" (no zone label): 26
    sizes = {("0", "a"): 20, ("1", "a"): 31, ("2", "b"): 76, ("3", ""): 26}
    values = {
        tuple(sorted({"idx": i, **({"zone": z} if z else {})}.items())): [
            rng.integers(-10_000, 10_000, n).astype(np.float64)
        ]
        for (i, z), n in sizes.items()
    }
    _push(server, _gauges("q.g", values, t0), seq=1)
    zone_of = {labels: dict(labels).get("zone", "") for labels in values}
    for agg, q in LEVELS.items():
        resp = _ok(_range(server, "q.g", agg, t0, t0 + STEP, by=["zone"]))
        got = {s.labels["zone"]: list(s.value) for s in resp.series}
        want = {
            z: [float(np.quantile(np.concatenate([v[0] for k, v in values.items() if zone_of[k] == z]), q))]
            for z in ("a", "b", "")
        }
        assert got == want, agg
    # matchers still narrow the series before grouping
    only_a = [query_pb2.Matcher(label="zone", op=query_pb2.EQ, value="a")]
    resp = _ok(_range(server, "q.g", "p50", t0, t0 + STEP, by=["zone"], matchers=only_a))
    assert [dict(s.labels) for s in resp.series] == [{"zone": "a"}]


def test_gauge_quantiles_of_arbitrary_floats(servers):
    """Any values: equal to numpy's linear method up to the rounding of the interpolation
    (ClickHouse computes a + t(b - a), numpy b - (1 - t)(b - a) when t >= 1/2)."""
    server, _ = servers
    t0 = _t0()
    rng = np.random.default_rng(7)
    values = {(("idx", str(i)),): [rng.normal(size=n) * 1000] for i, n in enumerate((7, 38, 113))}
    _push(server, _gauges("q.f", values, t0), seq=1)
    for agg, q in LEVELS.items():
        resp = _ok(_range(server, "q.f", agg, t0, t0 + STEP))
        got = [list(s.value) for s in resp.series]
        want = [[float(np.quantile(v[0], q))] for v in values.values()]
        assert [g[0] for g in got] == pytest.approx([w[0] for w in want], rel=1e-13, abs=1e-12), agg


def test_gauge_quantile_empty_window_returns_no_series(servers):
    server, _ = servers
    t0 = _t0()
    _push(server, _gauges("q.g", {(("idx", "0"),): [np.arange(5.0)]}, t0), seq=1)
    assert len(_ok(_range(server, "q.g", "p99", t0 - 5 * STEP, t0 - STEP)).series) == 0
    assert len(_ok(_range(server, "q.g", "p99", t0 - 5 * STEP, t0 - STEP, by=["idx"])).series) == 0


def test_quantile_injection_through_group_by_values_is_data(servers):
    server, _ = servers
    t0 = _t0()
    evil = "x'), 1) OR 1=1 --"
    _push(server, _gauges("q.g", {(("idx", "0"), ("zone", evil)): [np.arange(5.0)]}, t0), seq=1)
    resp = _ok(_range(server, "q.g", "p50", t0, t0 + STEP, by=["zone"]))
    assert [(dict(s.labels), list(s.value)) for s in resp.series] == [({"zone": evil}, [2.0])]


def test_a_metric_mixing_histogram_and_gauge_series_is_refused(servers):
    server, _ = servers
    t0 = _t0()
    _push(server, _histograms("mixed.m", [({"route": "/a"}, BOUNDS, t0 + 1000, 1.0, [1, 0, 0, 0, 0])]), 1)
    _push(server, _gauges("mixed.m", {(("idx", "0"),): [np.arange(3.0)]}, t0), seq=2)
    _, code, details = _range(server, "mixed.m", "p50", t0, t0 + STEP)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "mixed.m: the matched series mix kinds gauge, histogram" in details
    route = [query_pb2.Matcher(label="route", op=query_pb2.EQ, value="/a")]
    only_histograms = _ok(_range(server, "mixed.m", "p50", t0, t0 + STEP, matchers=route))
    assert list(only_histograms.series[0].value) == [0.1 * (0.5 / 1)]


@pytest.mark.parametrize(("metric", "by"), [("app.latency", ()), ("q.g", ()), ("q.g", ("zone",))])
def test_row_limit_applies(latency, store, store_dsn, metric, by):
    server, t0, _, _ = latency
    _push(server, _gauges("q.g", {(("idx", "0"),): [np.arange(3.0), np.arange(3.0)]}, t0), seq=2)
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    limited = grpc_testing.server_from_dictionary(
        {QUERY: QueryService(stores, QueryLimits(max_points=1))}, grpc_testing.strict_real_time()
    )
    try:
        _, code, details = _range(limited, metric, "p99", t0, t0 + 2 * STEP, by=by)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "answer of more than query_max_points 1 points" in details
        assert _ok(_range(limited, metric, "p99", t0, t0 + STEP, by=by)).series
    finally:
        stores.close_all()
