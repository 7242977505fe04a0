"""The evaluator over the real query service and embedded store: each aggregation over the window
ending now, groups, ratios, absence and anomalies, with points written through Ingest.Push and
the evaluation time chosen by the test."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ferry.collector.alerting.evaluate import Evaluator, NoData
from ferry.collector.alerting.rules import Anomaly, Condition, Ratio, Rule
from ferry.collector.cli.expr import parse
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.wire.columns import COUNTER, DELTA, GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _push
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

MIN = 60_000


def batch(name: str, kind: int, points: dict[tuple, list[tuple[int, float]]]) -> MetricBatch:
    series, refs, times, values = [], [], [], []
    for i, (labels, pts) in enumerate(points.items()):
        series.append(SeriesDef(name, kind, "1", labels))
        refs += [i] * len(pts)
        times += [t for t, _ in pts]
        values += [v for _, v in pts]
    return MetricBatch(
        series=series,
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array(times, dtype=np.int64),
        value=np.array(values, dtype=np.float64),
    )


@pytest.fixture
def evaluator(servers, store_dsn):
    server, store = servers
    service = QueryService(ThreadStores(lambda: Store.open(store_dsn, database=store.db)))
    return server, Evaluator(service.query_range)


def now_ms() -> int:
    return (int(time.time()) - 600) // 60 * 60_000  # ten minutes ago, on a minute


def test_window_aggregations_by_group(evaluator):
    server, ev = evaluator
    now = now_ms()
    # one point every 10 s for 3 minutes; node a: 1..18, node b: 100 + that (not `host`: the
    # frame's resource host is every series' host label)
    pts = [(now - 180_000 + i * 10_000, float(i + 1)) for i in range(18)]
    _push(
        server,
        batch("cpu", GAUGE, {(("node", "a"),): pts, (("node", "b"),): [(t, v + 100) for t, v in pts]}),
        1,
    )
    sel = parse("cpu")
    # the last minute: points at now-60 s .. now-10 s are 13..18 (the window is read as 15 s
    # buckets from the one holding now - 60 s, so exactly those six)
    got = ev.window(sel, "avg", ("node",), 60, now)
    assert got == {(("node", "a"),): pytest.approx(15.5), (("node", "b"),): pytest.approx(115.5)}
    assert ev.window(sel, "max", ("node",), 60, now)[(("node", "a"),)] == 18
    assert ev.window(sel, "min", ("node",), 60, now)[(("node", "a"),)] == 13
    assert ev.window(sel, "count", (), 60, now) == {(): 12}
    assert ev.window(sel, "last", ("node",), 60, now)[(("node", "b"),)] == 118
    assert ev.window(sel, "sum", (), 60, now) == {(): pytest.approx(sum(range(13, 19)) * 2 + 600)}
    # a window with no points: no groups
    assert ev.window(sel, "avg", ("node",), 60, now + 10 * MIN) == {}


def test_condition_ratio_absent(evaluator):
    server, ev = evaluator
    now = now_ms()
    times = [now - 120_000 + i * 10_000 for i in range(12)]
    # requests grow by 10 per 10 s, errors by 1 (web) and 0 (api): 10% and 0%
    requests = {(("service", s),): [(t, 10.0 * i) for i, t in enumerate(times)] for s in ("web", "api")}
    errors = {
        (("service", "web"),): [(t, 1.0 * i) for i, t in enumerate(times)],
        (("service", "api"),): [(t, 0.0) for t in times],
    }
    _push(server, batch("http.requests", COUNTER, requests), 1)
    _push(server, batch("http.errors", COUNTER, errors), 2)
    r = Rule(
        "ErrorRate", "ratio", None, "increase", ("service",), 60.0,
        condition=Condition(">", 0.05, "> 5%"),
        ratio=Ratio(parse("http.errors"), parse("http.requests"), "e / r"),
    )  # fmt: skip
    got = ev.evaluate(r, now)
    assert got.values == {(("service", "web"),): pytest.approx(0.1), (("service", "api"),): 0.0}
    assert got.holding == {(("service", "web"),)}
    # absent: node c sent until 2 minutes before `now`, node d until now
    seen = {
        (("node", "c"),): [(now - 300_000, 1.0), (now - 120_000, 1.0)],
        (("node", "d"),): [(now - 5_000, 1.0)],
    }
    _push(server, batch("up", GAUGE, seen), 3)
    gone = Rule("Gone", "absent", parse("up"), "avg", ("node",), 30.0)
    assert ev.evaluate(gone, now).holding == {(("node", "c"),)}
    # a group of an instance the lookback no longer shows stays judged (and absent)
    known = {(("node", "z"),)}
    assert ev.evaluate(gone, now, known).holding == {(("node", "c"),), (("node", "z"),)}


def test_anomaly_needs_its_baseline_then_finds_the_spike(evaluator):
    server, ev = evaluator
    now = (int(time.time()) - 3600) // 3600 * 3_600_000
    rule = Rule(
        "Spike", "anomaly", parse("lat"), "avg", (), 600.0, anomaly=Anomaly(7 * 86400.0, 3.0)
    )  # fmt: skip
    # two days of history only: not judged
    rng = np.random.default_rng(1)
    recent = [(now - 2 * 86_400_000 + i * 600_000, 100 + float(rng.normal(0, 2))) for i in range(288)]
    _push(server, batch("lat", GAUGE, {(): recent}), 1)
    with pytest.raises(NoData, match=r"baseline holds 1\.9\d of 7 days"):
        ev.evaluate(rule, now)
    # seven days: judged; the last window normal, then a spike
    older = [(now - 7 * 86_400_000 + i * 600_000, 100 + float(rng.normal(0, 2))) for i in range(720)]
    _push(server, batch("lat", GAUGE, {(): older}), 2)
    calm = ev.evaluate(rule, now)
    assert calm.holding == set() and len(calm.values) == 1
    _push(server, batch("lat", GAUGE, {(): [(now + 60_000, 160.0)]}), 3)
    spike = ev.evaluate(rule, now + 120_000)
    assert spike.holding == {()}


def test_counts_and_sums_are_scaled_to_the_window_wherever_now_falls(evaluator):
    """The window is read as quarter buckets from the one holding now - window: 60 s to 75 s of
    data. A steady 1/s series counts 60 over a 60 s window at any phase of the buckets (74 before
    the scaling, 14 s past a bucket's start)."""
    server, ev = evaluator
    base = now_ms()
    pts = [(base - 240_000 + i * 1000, 2.0) for i in range(240)]
    _push(server, batch("tick", GAUGE, {(): pts}), 1)
    sel = parse("tick")
    for offset in (0, 7_000, 14_000):
        now = base - 30_000 + offset
        assert ev.window(sel, "count", (), 60, now)[()] == pytest.approx(60, abs=1.5), offset
        assert ev.window(sel, "sum", (), 60, now)[()] == pytest.approx(120, abs=3), offset
        assert ev.window(sel, "avg", (), 60, now)[()] == 2.0


@pytest.mark.parametrize("phase_s", [0, 3, 7, 11, 14])
def test_a_rate_reads_a_steady_counter_exactly_wherever_now_falls(evaluator, phase_s):
    """2.5/s sampled every 10 s: the rate over a 60 s window ending at any phase of the sampling
    (and of the quarter-window buckets) is 2.5, as QueryRange's rate; dividing the growth by the
    span read (the window from its first bucket's start) read 1.98-2.24 here."""
    server, ev = evaluator
    now = now_ms() + phase_s * 1000
    times = [now - 170_000 + 3000 + i * 10_000 for i in range(18)]
    name = f"steady.count.{phase_s}"
    counter = {(("node", "a"),): [(t, 100.0 + 2.5 * (t - times[0]) / 1000) for t in times if t <= now]}
    _push(server, batch(name, COUNTER, counter), 1)
    got = ev.window(parse(name), "rate", ("node",), 60, now)
    assert got == {(("node", "a"),): pytest.approx(2.5, rel=1e-12)}
    rule = Rule(
        "Fast", "condition", parse(name), "rate", ("node",), 60.0, condition=Condition(">=", 2.5, ">= 2.5")
    )
    assert ev.evaluate(rule, now).holding == {(("node", "a"),)}


def test_a_rate_of_sparse_delta_points_is_per_window(evaluator):
    """A DELTA series with a point only when something happened: one increment of 7 in a 60 s
    window reads 7/60 per second (review: it read nothing, the point covering no time)."""
    server, ev = evaluator
    now = now_ms()
    _push(server, batch("sparse.errors", DELTA, {(("node", "a"),): [(now - 20_000, 7.0)]}), 1)
    got = ev.window(parse("sparse.errors"), "rate", ("node",), 60, now)
    assert got == {(("node", "a"),): pytest.approx(7 / 60, rel=1e-12)}
