"""QueryRange increase and rate of COUNTER and DELTA series on the real embedded store, with
points written through Ingest.Push: counter resets, steps, group-by, refusals and limits."""

from __future__ import annotations

import time

import grpc
import grpc_testing
import numpy as np
import pytest

from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.wire.columns import COUNTER, DELTA, GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _histograms, _ok, _push, _range
from tests.collector.test_servicers import QUERY
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP = 10_000
ZONE_A = (("idx", "0"), ("zone", "a"))
ZONE_A2 = (("idx", "1"), ("zone", "a"))


def _t0() -> int:
    """Three minutes ago, aligned to a minute: a 60 s step from t0 holds six STEPs."""
    return (int(time.time()) - 180) // 60 * 60_000


def _batch(name: str, kind: int, points: dict[tuple, list[tuple[int, float]]], t0: int) -> MetricBatch:
    """Series of `kind` with, per labels, (ms after t0, value) points."""
    series, refs, times, values = [], [], [], []
    for i, (labels, pts) in enumerate(points.items()):
        series.append(SeriesDef(name, kind, "1", labels))
        refs += [i] * len(pts)
        times += [t0 + dt for dt, _ in pts]
        values += [v for _, v in pts]
    return MetricBatch(
        series=series,
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array(times, dtype=np.int64),
        value=np.array(values, dtype=np.float64),
    )


def _points(resp) -> list[tuple[dict[str, str], list[int], list[float]]]:
    return [(dict(s.labels), list(s.time_ms), list(s.value)) for s in resp.series]


# A counter over three steps: 0 10 | 20 5 | 15 0 4 (| = a step edge). Per step, the pairs whose
# later point lies in it: step 0: 0->10 = 10; step 1: 10->20 = 10 and the reset 20->5 = 5;
# step 2: 5->15 = 10, the reset to 0 = 0, 0->4 = 4.
THREE_STEPS = [
    (1000, 0.0),
    (5000, 10.0),
    (11_000, 20.0),
    (15_000, 5.0),
    (21_000, 15.0),
    (25_000, 0.0),
    (27_000, 4.0),
]


def test_counter_increase_across_a_reset_in_one_step(servers):
    server, _ = servers
    t0 = _t0()
    pts = [(1000 * (i + 1), v) for i, v in enumerate([0.0, 10.0, 20.0, 5.0, 15.0])]
    _push(server, _batch("c.total", COUNTER, {ZONE_A: pts}, t0), seq=1)
    increase = _ok(_range(server, "c.total", "increase", t0, t0 + STEP))
    assert _points(increase) == [({"host": "host-test", "idx": "0", "zone": "a"}, [t0], [35.0])]
    # a rate divides by the seconds its pairs of points cover (1 s to 5 s), not by the step
    rate = _ok(_range(server, "c.total", "rate", t0, t0 + STEP))
    assert _points(rate) == [({"host": "host-test", "idx": "0", "zone": "a"}, [t0], [35.0 / 4])]


def test_counter_increase_over_several_steps_counts_pairs_across_step_edges(servers):
    server, _ = servers
    t0 = _t0()
    _push(server, _batch("c.total", COUNTER, {ZONE_A: THREE_STEPS}, t0), seq=1)
    ((_, times, values),) = _points(_ok(_range(server, "c.total", "increase", t0, t0 + 3 * STEP)))
    assert (times, values) == ([t0, t0 + STEP, t0 + 2 * STEP], [10.0, 15.0, 14.0])
    ((_, _, rates),) = _points(_ok(_range(server, "c.total", "rate", t0, t0 + 3 * STEP)))
    # each step's increase over the span its pairs cover: 1-5 s; 5-15 s; 15-27 s
    assert rates == [10.0 / 4, 15.0 / 10, 14.0 / 12]
    # one step over the same points: the steps' increases add up
    ((_, times, whole),) = _points(_ok(_range(server, "c.total", "increase", t0, t0 + 60_000, step=60_000)))
    assert (times, whole) == ([t0], [39.0])
    ((_, _, rate),) = _points(_ok(_range(server, "c.total", "rate", t0, t0 + 60_000, step=60_000)))
    assert rate == [39.0 / 26]


def test_counter_increase_by_group_adds_the_series_increases(servers):
    server, _ = servers
    t0 = _t0()
    other = [(2000, 100.0), (12_000, 130.0), (22_000, 3.0)]  # 30 in step 1, a reset to 3 in step 2
    _push(server, _batch("c.total", COUNTER, {ZONE_A: THREE_STEPS, ZONE_A2: other}, t0), seq=1)
    per_series = _points(_ok(_range(server, "c.total", "increase", t0, t0 + 3 * STEP)))
    assert [(labels["idx"], times, values) for labels, times, values in per_series] == [
        ("0", [t0, t0 + STEP, t0 + 2 * STEP], [10.0, 15.0, 14.0]),
        ("1", [t0 + STEP, t0 + 2 * STEP], [30.0, 3.0]),  # step 0 holds only its baseline
    ]
    by_zone = _points(_ok(_range(server, "c.total", "increase", t0, t0 + 3 * STEP, by=["zone"])))
    assert by_zone == [({"zone": "a"}, [t0, t0 + STEP, t0 + 2 * STEP], [10.0, 45.0, 17.0])]
    rate = _points(_ok(_range(server, "c.total", "rate", t0, t0 + 3 * STEP, by=["zone"])))
    # the series' rates added: idx 0 as above, idx 1 30 and 3 over 10 s each
    expected = [10.0 / 4, 15.0 / 10 + 3.0, 14.0 / 12 + 0.3]
    assert rate == [({"zone": "a"}, [t0, t0 + STEP, t0 + 2 * STEP], expected)]


def test_delta_increase_sums_the_increments_and_mixes_with_counters(servers):
    server, _ = servers
    t0 = _t0()
    deltas = {ZONE_A: [(1000, 1.0), (4000, 2.0), (9000, 3.0), (12_000, 4.0)], ZONE_A2: [(15_000, 0.5)]}
    _push(server, _batch("d.count", DELTA, deltas, t0), seq=1)
    per_series = _points(_ok(_range(server, "d.count", "increase", t0, t0 + 2 * STEP)))
    assert [(labels["idx"], times, values) for labels, times, values in per_series] == [
        ("0", [t0, t0 + STEP], [6.0, 4.0]),
        ("1", [t0 + STEP], [0.5]),  # one increment is a whole increase: unlike a counter's baseline
    ]
    rate = _points(_ok(_range(server, "d.count", "rate", t0, t0 + 2 * STEP, by=["zone"])))
    # a DELTA point covers the time since the previous one, the first one until the next:
    # idx 0 holds 6 over 1-9 s plus the 3 s to 4 s, then 4 over 9-12 s; idx 1's one point in
    # range covers a whole step (10 s)
    assert rate == [({"zone": "a"}, [t0, t0 + STEP], [6.0 / 11, 4.0 / 3 + 0.5 / 10])]
    # the same name with a counter series in zone a: each series by its own kind, then added
    counter = {(("idx", "2"), ("zone", "a")): [(2000, 7.0), (3000, 9.0)]}
    _push(server, _batch("d.count", COUNTER, counter, t0), seq=2)
    mixed = _points(_ok(_range(server, "d.count", "increase", t0, t0 + 2 * STEP, by=["zone"])))
    assert mixed == [({"zone": "a"}, [t0, t0 + STEP], [8.0, 4.5])]


@pytest.mark.parametrize("agg", ["rate", "increase"])
def test_gauge_and_histogram_are_refused_by_name(servers, agg):
    server, _ = servers
    t0 = _t0()
    _push(server, _batch("g.level", GAUGE, {ZONE_A: [(1000, 1.0), (2000, 2.0)]}, t0), seq=1)
    _, code, details = _range(server, "g.level", agg, t0, t0 + STEP)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == (
        f"aggregation '{agg}' is not defined for gauge series (g.level); only for counter and delta; "
        "a gauge is a level, not a count: use max, last or avg"
    )
    _push(server, _histograms("h.lat", [({"route": "/a"}, (1.0,), t0 + 1000, 1.0, [1, 0])]), seq=2)
    _, code, details = _range(server, "h.lat", agg, t0, t0 + STEP)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"aggregation '{agg}' is not defined for histogram h.lat" in details


def test_counter_edge_cases(servers):
    server, _ = servers
    t0 = _t0()
    points = {
        (("case", "single"),): [(1000, 42.0)],
        (("case", "reset-to-zero"),): [(1000, 10.0), (2000, 0.0), (3000, 0.0), (4000, 3.0)],
        # the point before the range is not read: 5 is a baseline, not a reset from 100
        (("case", "first-in-range"),): [(-1000, 100.0), (1000, 5.0), (2000, 7.0)],
        (("case", "equal-times"),): [(1000, 1.0), (2000, 4.0), (2000, 4.0), (3000, 6.0)],
        (("case", "flat"),): [(1000, 8.0), (2000, 8.0)],
    }
    _push(server, _batch("c.edge", COUNTER, points, t0), seq=1)
    got = {
        labels["case"]: (times, values)
        for labels, times, values in _points(_ok(_range(server, "c.edge", "increase", t0, t0 + STEP)))
    }
    assert got == {
        # single: one point has no pair, so no growth is known and there is no point
        "reset-to-zero": ([t0], [3.0]),
        "first-in-range": ([t0], [2.0]),
        "equal-times": ([t0], [5.0]),
        "flat": ([t0], [0.0]),
    }


def test_empty_window_gives_no_series(servers):
    server, _ = servers
    t0 = _t0()
    _push(server, _batch("c.total", COUNTER, {ZONE_A: THREE_STEPS}, t0), seq=1)
    for agg in ("rate", "increase"):
        for by in ((), ("zone",)):
            assert not _ok(_range(server, "c.total", agg, t0 - 5 * STEP, t0, by=by)).series
    assert not _ok(_range(server, "no.such", "rate", t0, t0 + STEP)).series


def test_injection_through_group_by_is_data_or_refused(servers):
    server, store = servers
    t0 = _t0()
    evil = "x'), 1) OR 1=1 --"
    _push(server, _batch("c.total", COUNTER, {(("zone", evil),): [(1000, 1.0), (2000, 3.0)]}, t0), seq=1)
    resp = _ok(_range(server, "c.total", "increase", t0, t0 + STEP, by=["zone"]))
    assert _points(resp) == [({"zone": evil}, [t0], [2.0])]
    _, code, details = _range(server, "c.total", "rate", t0, t0 + STEP, by=[evil])
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "group-by label" in details
    assert store.query(f"SELECT count() FROM {store.db}.samples")[0][0] == 2


def test_row_limit_applies(servers, store, store_dsn):
    server, _ = servers
    t0 = _t0()
    _push(server, _batch("c.total", COUNTER, {ZONE_A: THREE_STEPS}, t0), seq=1)
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    limited = grpc_testing.server_from_dictionary(
        {QUERY: QueryService(stores, QueryLimits(max_points=1))}, grpc_testing.strict_real_time()
    )
    try:
        _, code, details = _range(limited, "c.total", "rate", t0, t0 + 3 * STEP)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "answer of more than query_max_points 1 points" in details
        assert _points(_ok(_range(limited, "c.total", "increase", t0, t0 + STEP))) == [
            ({"host": "host-test", "idx": "0", "zone": "a"}, [t0], [10.0])
        ]
    finally:
        stores.close_all()
