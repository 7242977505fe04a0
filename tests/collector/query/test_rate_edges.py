"""Rates that do not dip at the edges: a steady counter (and a steady DELTA series) reads the same
rate in the step its points cover only partly — the newest one, 10%, 50% or 90% elapsed, and
the one it started in — as in a whole step (issue 19, item 3). Before, a step's increase was
divided by the whole step: the newest point of a rate graph read 0.25, 1.25 and 2.25 here
instead of 2.5, and the first one 2.08.

Points are written through Ingest.Push into the real embedded store, every 10 s at 3 s past
each 10 s mark (as an agent's cycle falls), and read with QueryRange."""

from __future__ import annotations

import math
import time

import grpc
import numpy as np
import pytest

from ferry.collector.query import aggregate
from ferry.v1 import query_pb2
from ferry.wire.columns import COUNTER, DELTA, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _ok, _push, _range
from tests.collector.test_servicers import QUERY, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP = 60_000
RATE = 2.5  # per second
OTHER_RATE = 1.0


def _points(base_ms: int, until_ms: int) -> np.ndarray:
    """Times from 3 s after `base_ms` every 10 s, up to `until_ms` inclusive."""
    return np.arange(base_ms + 3000, until_ms + 1, 10_000, dtype=np.int64)


def _batch(name: str, kind: int, times: np.ndarray, base_ms: int) -> MetricBatch:
    """Two series of `name`: node a at RATE, node b at OTHER_RATE per second."""
    refs, ts, values = [], [], []
    for ref, rate in enumerate((RATE, OTHER_RATE)):
        if kind == COUNTER:  # a cumulative count since base_ms
            v = (times - base_ms) / 1000 * rate + 100.0
        else:  # each point: the increment since the previous one (10 s)
            v = np.full(times.shape[0], 10.0 * rate)
        refs.append(np.full(times.shape[0], ref, dtype=np.uint32))
        ts.append(times)
        values.append(v)
    series = [SeriesDef(name, kind, "1", (("node", node),)) for node in ("a", "b")]
    return MetricBatch(
        series=series,
        series_ref=np.concatenate(refs),
        time_ms=np.concatenate(ts),
        value=np.concatenate(values),
    )


@pytest.mark.parametrize("elapsed", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("kind", [COUNTER, DELTA])
def test_a_steady_rate_is_flat_up_to_the_newest_step(servers, kind, elapsed):
    server, _ = servers
    base = (int(time.time()) - 900) // 60 * 60_000  # a whole minute, 15 minutes ago
    newest = base + 4 * STEP  # the step the last point lies in: `elapsed` of it covered
    times = _points(base, newest + int(elapsed * STEP))
    name = f"edge.{'counter' if kind == COUNTER else 'delta'}.{int(elapsed * 100)}"
    _push(server, _batch(name, kind, times, base), seq=1)

    per_node = _ok(_range(server, name, "rate", base, newest + STEP, step=STEP))
    got = {s.labels["node"]: (list(s.time_ms), list(s.value)) for s in per_node.series}
    steps = [base + i * STEP for i in range(5)]
    for node, rate in (("a", RATE), ("b", OTHER_RATE)):
        assert got[node][0] == steps
        assert all(math.isclose(v, rate, rel_tol=1e-12) for v in got[node][1]), (node, got[node][1])

    # summed over a group: the series' rates added, still flat
    ((summed),) = _ok(
        _range(server, name, "rate", base, newest + STEP, step=STEP, by=["name_is_absent"])
    ).series
    assert list(summed.time_ms) == steps
    assert all(math.isclose(v, RATE + OTHER_RATE, rel_tol=1e-12) for v in summed.value), list(summed.value)

    # increase stays what was counted: the newest step holds only its covered part
    ((inc),) = [
        s
        for s in _ok(_range(server, name, "increase", base, newest + STEP, step=STEP)).series
        if s.labels["node"] == "a"
    ]
    newest_points = int(((times >= newest) & (times < newest + STEP)).sum())
    assert inc.value[-1] == pytest.approx(newest_points * 10 * RATE, rel=1e-12)


def test_buckets_start_at_align_ms(servers):
    """align_ms shifts the bucket grid: the range as one bucket starting at its start, and a grid
    of 30 s steps starting 7 s past a minute; an alignment after the start is refused."""
    server, _ = servers
    base = (int(time.time()) - 900) // 60 * 60_000
    times = _points(base, base + 2 * STEP)
    _push(server, _batch("edge.aligned", COUNTER, times, base), seq=1)
    start = base + 7000
    req = query_pb2.QueryRangeRequest(
        metric="edge.aligned", start_ms=start, end_ms=start + 90_000, step_ms=90_000, agg="rate",
        group_by=["node"], align_ms=start,
    )  # fmt: skip
    one = _ok(unary(server, QUERY, "QueryRange", req))
    assert [(s.labels["node"], list(s.time_ms)) for s in one.series] == [("a", [start]), ("b", [start])]
    assert [round(s.value[0], 12) for s in one.series] == [RATE, OTHER_RATE]
    req.step_ms, req.end_ms = 30_000, start + 90_000
    grid = _ok(unary(server, QUERY, "QueryRange", req))
    assert list(grid.series[0].time_ms) == [start, start + 30_000, start + 60_000]
    req.align_ms = start + 1
    _, code, details = unary(server, QUERY, "QueryRange", req)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == f"align {start + 1} ms must be >= 0 and at most start {start}"


def test_a_growth_read_split_over_series_answers_the_same(servers, monkeypatch):
    """A rate or increase over many points is read in statements over disjoint series (each
    window holds its points in the store's memory: 2,000 hosts' counters needed more than the
    1 GiB query_max_memory_bytes in one); the parts' sums are the whole's."""
    server, _ = servers
    base = (int(time.time()) - 900) // 60 * 60_000
    times = _points(base, base + 4 * STEP + 30_000)
    _push(server, _batch("edge.split", COUNTER, times, base), seq=1)
    _push(server, _batch("edge.split.d", DELTA, times, base), seq=2)

    def answer(name, agg, by):
        resp = _ok(_range(server, name, agg, base, base + 5 * STEP, step=STEP, by=by))
        return [(dict(s.labels), list(s.time_ms), list(s.value)) for s in resp.series]

    cases = [
        (n, agg, by)
        for n in ("edge.split", "edge.split.d")
        for agg in ("rate", "increase")
        for by in ((), ("x",))
    ]
    whole = [answer(*c) for c in cases]
    monkeypatch.setattr(aggregate, "GROWTH_POINTS_PER_STATEMENT", 7)  # 58 points: 9 statements
    split = [answer(*c) for c in cases]
    for (n, agg, by), a, b in zip(cases, whole, split, strict=True):
        assert [x[:2] for x in a] == [x[:2] for x in b], (n, agg, by)
        for (_, _, va), (_, _, vb) in zip(a, b, strict=True):
            assert all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(va, vb, strict=True)), (n, agg, by)
