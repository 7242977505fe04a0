"""Issue 19's "done when": every aggregation grouped over 50,000 matched series answers exactly
what the per-series path answered before (tests/collector/query/oracle.py, frozen from commit
235c532).

One store on the embedded engine, filled once for the module through the collector's own path
(real Ingest frames into FramePipeline.submit, the group committer and the Writer, so the 1m and
1h rollups are filled by their feeds' views as in production), with generated data of known
shape over the first 30 minutes of an hour two hours ago:

- fleet.cpu, GAUGE: 500 hosts (h-000..h-499, the resource host) x cpu 0..9 x state a..j = 50,000
  series, plus 10 on h-000..h-009 with cpu "x" and no `state` label (a group-by label missing
  reads as ""); a point every 5, 10, 15, 20, 30, 45 or 60 s by series (uneven counts, several
  points per step at 10 s for some), phases differing by series (ties of the last time across
  series of a group too), value 50 + 40 sin(...) + noise in [0, 1); some series start late or
  end early inside the 10 s window;
- fleet.requests, COUNTER: 200 hosts x route r0..r4 x code 200/500 = 2,000 series, integer
  values (increase sums are then exact), with one or two resets in some series;
- fleet.bytes, DELTA: 100 hosts x dir in/out x iface e0..e4 = 1,000 series, float values;
- fleet.latency, HISTOGRAM: 200 hosts x route r0..r4 = 1,000 series with 8 bounds; the 10 of
  hosts h-190..h-199 route r0 switch to another bound list of 4 at minute 20 (a step holding
  both, in one group, is refused as mixed bounds: both paths must refuse it).

Each case runs the product's QueryRange in process (QueryService.query_range) and the oracle on
the same request, and compares: same groups in the same order, same bucket times, same values,
and the same resolution; a request the oracle refuses as bad must be refused by the product as
bad too (QueryError, not LimitExceeded). Values are compared exactly for min, max, count, last,
the plain quantiles (one exact order statistic of the same points, quantileExactInclusive), the
histogram quantiles (integer bucket counts added exactly, interpolated in the store with the
same float operations as the old numpy histogram_quantile, 5e38bf2) and sums of integers
(histogram count, counter increase); with math.isclose(rel_tol=1e-12) for avg and sums of
floats (gauge sum, delta increase, histogram sum and avg), whose additions run in another order
in the store than in numpy and may differ in the last bits.

`rate` is not compared: its meaning changes with issue 19 (increase over the span the points
cover, not the whole step); `increase` is.

Cases whose matched series are more than 10,000 (grouped over the whole fleet) are named
`wide-...`: against the per-series product (235c532) they fail with LimitExceeded ("more than
10000 series"), which is what issue 19 fixes (9198479); the others (`narrow-...`, counters,
deltas, histograms) pass against both.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pytest

from ferry.collector.commit import GroupCommitter
from ferry.collector.marks import Marks
from ferry.collector.pipeline import FramePipeline
from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import LimitExceeded, QueryError, QueryLimits
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2, query_pb2
from ferry.wire.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, MetricBatch, SeriesDef
from tests import framegen
from tests.collector.query import oracle
from tests.schema_template import SchemaTemplate

MINUTE, HOUR = 60_000, 3_600_000
SPAN = 30 * MINUTE  # data in [T0, T0 + SPAN)
# two hours ago, aligned to the hour: every point is in the past, and 1h can answer
T0 = (int(time.time() * 1000) // HOUR - 2) * HOUR

HOSTS = 500
CPUS = [str(c) for c in range(10)]
STATES = list("abcdefghij")
# by series index: uneven point counts, 1 in 16 series with two points per 10 s
GAUGE_PERIODS_S = (20, 30, 60, 45, 20, 30, 60, 45, 20, 30, 60, 45, 15, 30, 10, 5)
GAUGE_SERIES = HOSTS * len(CPUS) * len(STATES)  # 50,000 (+ 10 without `state`)

COUNTER_HOSTS, ROUTES, CODES = 200, ["r0", "r1", "r2", "r3", "r4"], ["200", "500"]
DELTA_HOSTS, DIRS, IFACES = 100, ["in", "out"], ["e0", "e1", "e2", "e3", "e4"]
HIST_HOSTS = 200
BOUNDS_A = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BOUNDS_B = (0.01, 0.1, 1.0, 10.0)
SWITCH_AT = T0 + 20 * MINUTE  # where h-190..h-199 route r0 change from BOUNDS_A to BOUNDS_B

# the windows each step is queried over: 18, 15, 6 and 1 buckets (rows read back per series)
WINDOWS = {
    10_000: (T0 + 10 * MINUTE, T0 + 13 * MINUTE),
    60_000: (T0 + 10 * MINUTE, T0 + 25 * MINUTE),
    300_000: (T0, T0 + SPAN),
    3_600_000: (T0, T0 + HOUR),  # aligned to the hour: automatic resolution picks 1h
}
# series starting late / ending early inside the 10 s window
LATE_START, EARLY_END = T0 + 11 * MINUTE + 5_000, T0 + 12 * MINUTE + 3_000


def _name(h: int) -> str:
    return f"h-{h:03d}"


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([19, *key])


def _times(index: int, period_ms: int) -> np.ndarray:
    """Point times of series `index`: every `period_ms` from a phase of its own, some starting
    late or ending early."""
    phase = (index * 7919) % period_ms
    if index % 2:  # on a whole second: the last times of a group's series tie (`last` decides)
        phase -= phase % 1000
    start, end = T0 + phase, T0 + SPAN
    if index % 97 == 3:
        start = LATE_START + phase % 1000
    if index % 89 == 5:
        end = EARLY_END
    return np.arange(start, end, period_ms, dtype=np.int64)


def _batch(series: list[SeriesDef], times: list[np.ndarray], values: list[np.ndarray], counts=None):
    refs = np.concatenate([np.full(t.shape[0], i, dtype=np.uint32) for i, t in enumerate(times)])
    return MetricBatch(
        series=series,
        series_ref=refs,
        time_ms=np.concatenate(times),
        value=np.concatenate(values),
        bucket_counts=np.zeros(0, dtype=np.uint64) if counts is None else np.concatenate(counts),
    )


def gauge_host(h: int) -> MetricBatch:
    series, times, values = [], [], []
    for c, cpu in enumerate(CPUS):
        for s, state in enumerate(STATES):
            index = h * 100 + c * 10 + s
            t = _times(index, GAUGE_PERIODS_S[index % len(GAUGE_PERIODS_S)] * 1000)
            noise = _rng(1, index).random(t.shape[0])
            series.append(SeriesDef("fleet.cpu", GAUGE, "1", (("cpu", cpu), ("state", state))))
            times.append(t)
            values.append(50 + 40 * np.sin(index * 0.37 + (t - T0) / 300_000) + noise)
    if h < 10:  # one series without `state`: grouped by it, it reads as ""
        t = _times(h * 100 + 7, 10_000)
        series.append(SeriesDef("fleet.cpu", GAUGE, "1", (("cpu", "x"),)))
        times.append(t)
        values.append(10 + _rng(2, h).random(t.shape[0]))
    return _batch(series, times, values)


def counter_host(h: int) -> MetricBatch:
    series, times, values = [], [], []
    for r, route in enumerate(ROUTES):
        for c, code in enumerate(CODES):
            index = h * 10 + r * 2 + c
            t = _times(index, (5_000, 10_000, 15_000)[index % 3])
            rng = _rng(3, index)
            v = rng.integers(0, 1000) + np.cumsum(rng.integers(0, 20, t.shape[0]))
            for _ in range(index % 3):  # 0, 1 or 2 resets, to a value below the one before
                at = int(rng.integers(1, t.shape[0]))
                v[at:] -= v[at] - int(rng.integers(0, 5))
            series.append(SeriesDef("fleet.requests", COUNTER, "1", (("code", code), ("route", route))))
            times.append(t)
            values.append(v.astype(np.float64))
    return _batch(series, times, values)


def delta_host(h: int) -> MetricBatch:
    series, times, values = [], [], []
    for d, direction in enumerate(DIRS):
        for i, iface in enumerate(IFACES):
            index = h * 10 + d * 5 + i
            t = _times(index, (10_000, 20_000, 7_000)[index % 3])
            series.append(SeriesDef("fleet.bytes", DELTA, "By", (("dir", direction), ("iface", iface))))
            times.append(t)
            values.append(1000 * _rng(4, index).random(t.shape[0]))
    return _batch(series, times, values)


def histogram_host(h: int, switched: bool) -> MetricBatch | None:
    """The host's histogram points before SWITCH_AT under BOUNDS_A (switched=False), or the
    points of its switching series from SWITCH_AT under BOUNDS_B (switched=True)."""
    series, times, values, counts = [], [], [], []
    for r, route in enumerate(ROUTES):
        index = h * 5 + r
        switches = h >= 190 and route == "r0"
        if switched and not switches:
            continue
        t = _times(index, (10_000, 15_000)[index % 2])
        if switches:
            t = t[t >= SWITCH_AT] if switched else t[t < SWITCH_AT]
        bounds = BOUNDS_B if switched else BOUNDS_A
        rng = _rng(5 + switched, index)
        c = rng.integers(0, 6, (t.shape[0], len(bounds) + 1)).astype(np.uint64)
        c[rng.random(t.shape[0]) < 0.1] = 0  # points holding no observation
        series.append(SeriesDef("fleet.latency", HISTOGRAM, "s", (("route", route),), bounds=bounds))
        times.append(t)
        values.append(c.sum(axis=1) * rng.random(t.shape[0]) * 0.3)
        counts.append(c.reshape(-1))
    return _batch(series, times, values, counts) if series else None


@dataclass
class Fleet:
    store: Store
    service: QueryService
    points: int
    load_s: float


@pytest.fixture(scope="module")
def fleet(chdb_dsn, schema_templates):
    fleet, stores = load(chdb_dsn, schema_templates)
    yield fleet
    fleet.store.client.command(f"DROP DATABASE IF EXISTS {fleet.store.db}")
    stores.close_all()


def load(chdb_dsn: str, schema_templates: dict) -> tuple[Fleet, ThreadStores]:
    """The fleet written into a fresh database of the store at `chdb_dsn`."""
    if chdb_dsn not in schema_templates:
        schema_templates[chdb_dsn] = SchemaTemplate.build(chdb_dsn)
    db = f"t_{uuid.uuid4().hex[:12]}"
    schema_templates[chdb_dsn].copy(db)
    stores = ThreadStores(lambda: Store.open(chdb_dsn, database=db))
    started = time.perf_counter()
    # the collector's group commit, not started: the frames join groups of 1 M rows, written
    # on this thread by write_open (one insert per table and group, the rollups through their feeds)
    committer = GroupCommitter(Writer(stores).write, Marks(), max_rows=1_000_000)
    pipeline = FramePipeline(committer)
    frames = []
    for h in range(HOSTS):
        frames.append((gauge_host(h), f"g-{h:03d}", h))
        if h < COUNTER_HOSTS:
            frames.append((counter_host(h), f"c-{h:03d}", h))
        if h < DELTA_HOSTS:
            frames.append((delta_host(h), f"d-{h:03d}", h))
        if h < HIST_HOSTS:
            frames.append((histogram_host(h, False), f"l-{h:03d}", h))
            frames.append((histogram_host(h, True), f"s-{h:03d}", h))
    futures, points = [], 0
    for batch, agent, h in frames:
        if batch is None:
            continue
        points += len(batch)
        frame = framegen.frame(batch, seq=1, agent_id=agent, epoch=1, host=_name(h))
        futures.append(pipeline.submit(frame))
    committer.write_open()
    for f in futures:
        ack = f.result(timeout=60)
        assert ack.status == ingest_pb2.OK, ack
    limits = QueryLimits(max_execution_s=120.0)
    return Fleet(stores.get(), QueryService(stores, limits), points, time.perf_counter() - started), stores


def test_the_fleet_is_what_the_cases_assume(fleet):
    store = fleet.store
    series = dict(store.query(f"SELECT name, uniqExact(series_id) FROM {store.db}.series GROUP BY name"))
    assert series == {
        "fleet.cpu": GAUGE_SERIES + 10,
        "fleet.requests": COUNTER_HOSTS * 10,
        "fleet.bytes": DELTA_HOSTS * 10,
        "fleet.latency": HIST_HOSTS * 5,
    }
    (stored,) = store.query(
        f"SELECT (SELECT count() FROM {store.db}.samples) + (SELECT count() FROM {store.db}.histograms)"
    )[0]
    assert stored == fleet.points
    # the rollups hold every point (their ledger rows aside)
    for table, raw, points in (
        ("samples_1m", "samples", "count()"),
        ("samples_1h", "samples", "count()"),
        ("histograms_1m", "histograms", "sum(count)"),
        ("histograms_1h", "histograms", "sum(count)"),
    ):
        (rolled,) = store.query(f"SELECT sum(count) FROM {store.db}.{table} WHERE name LIKE 'fleet.%'")[0]
        assert rolled == store.query(f"SELECT {points} FROM {store.db}.{raw}")[0][0], table
    print(f"\nfleet: {fleet.points} points written in {fleet.load_s:.1f} s")


# -- the cases ---------------------------------------------------------------------------------


def _matchers(*pairs: tuple[str, int, str]) -> tuple[query_pb2.Matcher, ...]:
    return tuple(query_pb2.Matcher(label=k, op=op, value=v) for k, op, v in pairs)


NARROW_CPU = _matchers(("host", query_pb2.RE, "h-0[0-4].*"))  # 50 hosts: 5,010 series
SOME_HOSTS = _matchers(("host", query_pb2.RE, "h-00.*"))  # 10 hosts


@dataclass(frozen=True)
class Case:
    id: str
    metric: str
    agg: str
    by: tuple[str, ...]
    matchers: tuple[query_pb2.Matcher, ...]
    resolution: str
    step_ms: int
    exact: bool

    def request(self) -> query_pb2.QueryRangeRequest:
        start, end = WINDOWS[self.step_ms]
        return query_pb2.QueryRangeRequest(
            metric=self.metric,
            matchers=list(self.matchers),
            start_ms=start,
            end_ms=end,
            step_ms=self.step_ms,
            agg=self.agg,
            group_by=list(self.by),
            resolution=self.resolution,
        )


# (resolution, step): raw at each step; 1m at 60 s and 300 s (and at 10 s, refused: not a
# multiple); automatic at each step, 3600 s over the hour answered by 1h where it can
FULL_GRID = [
    ("raw", 10_000),
    ("raw", 60_000),
    ("raw", 300_000),
    ("1m", 10_000),
    ("1m", 60_000),
    ("1m", 300_000),
    ("", 10_000),
    ("", 60_000),
    ("", 300_000),
    ("", 3_600_000),
]

# the whole fleet, whose each case costs more: automatic at 10 s and 60 s is raw and 1m, asked
# explicitly; the plain quantiles (raw only) once per step
WIDE_GRID = [
    ("raw", 10_000),
    ("raw", 300_000),
    ("1m", 10_000),
    ("1m", 60_000),
    ("", 300_000),
    ("", 3_600_000),
]
WIDE_QUANTILE_GRID = [("raw", 10_000), ("raw", 300_000), ("1m", 60_000), ("", 3_600_000)]

GAUGE_EXACT = {"min": True, "max": True, "count": True, "last": True, "avg": False, "sum": False}
GAUGE_EXACT |= {q: True for q in ("p50", "p90", "p95", "p99")}
HIST_EXACT = {"avg": False, "sum": False, "count": True, "p50": True, "p99": True}

# (id prefix, group-by, matchers): over the whole fleet (> 10,000 series) and over 50 hosts
GAUGE_GROUPINGS = [
    ("wide-by-host", ("host",), ()),  # 500 groups of 100 series (101 on h-000..h-009)
    ("wide-by-cpu-state", ("cpu", "state"), ()),  # 101 groups of 500 series (10 for cpu x)
    ("narrow-no-by", (), NARROW_CPU),  # 5,010 series, each its own group
]


def _cases() -> list[Case]:
    out = []
    for prefix, by, matchers in GAUGE_GROUPINGS:
        for agg, exact in GAUGE_EXACT.items():
            grid = FULL_GRID if not prefix.startswith("wide") else WIDE_GRID
            if prefix.startswith("wide") and agg.startswith("p"):
                grid = WIDE_QUANTILE_GRID
            for resolution, step in grid:
                rid = resolution or "auto"
                out.append(
                    Case(
                        f"{prefix}-cpu-{agg}-{rid}-{step // 1000}s",
                        "fleet.cpu",
                        agg,
                        by,
                        matchers,
                        resolution,
                        step,
                        exact,
                    )
                )
    others = [
        ("requests", "fleet.requests", {"increase": True}, [("host",), ("route", "code")]),
        ("bytes", "fleet.bytes", {"increase": False}, [("host",), ("dir", "iface")]),
        ("latency", "fleet.latency", HIST_EXACT, [("host",), ("host", "route")]),
    ]
    for short, metric, aggs, bys in others:
        groupings = [(f"by-{'-'.join(b)}", b, ()) for b in bys] + [("no-by", (), SOME_HOSTS)]
        for prefix, by, matchers in groupings:
            for agg, exact in aggs.items():
                for resolution, step in FULL_GRID:
                    rid = resolution or "auto"
                    out.append(
                        Case(
                            f"{prefix}-{short}-{agg}-{rid}-{step // 1000}s",
                            metric,
                            agg,
                            by,
                            matchers,
                            resolution,
                            step,
                            exact,
                        )
                    )
    return out


CASES = _cases()

# oracle answers by the request the oracle actually runs (automatic resolution resolved): an
# automatic case and the explicit one it resolves to read the same, computed once
_ORACLE: dict[bytes, oracle.OracleAnswer | oracle.QueryError] = {}


def _oracle(store: Store, req: query_pb2.QueryRangeRequest) -> oracle.OracleAnswer | oracle.QueryError:
    key = req.SerializeToString(deterministic=True)
    if key not in _ORACLE:
        try:
            _ORACLE[key] = oracle.oracle_answer(store, req)
        except oracle.QueryError as exc:
            _ORACLE[key] = exc
    return _ORACLE[key]


def _resolved(req: query_pb2.QueryRangeRequest) -> query_pb2.QueryRangeRequest:
    """`req` with its automatic resolution replaced by what the old path chose (raw, 1m, 1h) —
    except a grouped `last`, which the automatic choice now answers from raw points only (a
    rollup orders a group's series by bucket, not by their last point: issue 19's review)."""
    if req.resolution:
        return req
    histogram = req.metric == "fleet.latency"
    try:
        rollup = oracle.choose("", req.agg, req.step_ms, req.start_ms, req.end_ms, histogram)
    except oracle.QueryError:
        return req
    if req.agg == "last" and req.group_by:
        rollup = None
    out = query_pb2.QueryRangeRequest()
    out.CopyFrom(req)
    out.resolution = rollup.name if rollup else oracle.RAW
    return out


def _same(a: float, b: float, exact: bool) -> bool:
    return a == b if exact else math.isclose(a, b, rel_tol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_store_side_aggregation_answers_what_the_per_series_path_answered(fleet, case):
    req = case.request()
    try:
        resp = fleet.service.query_range(req, timeout_s=120.0)
    except LimitExceeded as exc:  # the wide cases before issue 19: more than 10,000 series
        pytest.fail(f"refused over a limit (RESOURCE_EXHAUSTED): {exc}")
    except QueryError as exc:
        want = _oracle(fleet.store, _resolved(req))
        assert isinstance(want, oracle.QueryError), f"the product refused what the oracle answered: {exc}"
        return
    want = _oracle(fleet.store, _resolved(req))
    assert not isinstance(want, oracle.QueryError), f"the oracle refused ({want}), the product answered"
    if want.series:
        # the automatic choice is the old one (the oracle ran the explicit resolution it resolved to)
        assert resp.resolution == want.resolution
    got = [(dict(s.labels), list(s.time_ms), list(s.value)) for s in resp.series]
    assert len(want.series) > 0, "a case with nothing to compare"
    got_labels = [g[0] for g in got]
    want_labels = [w[0] for w in want.series]
    assert sorted(map(_key, got_labels)) == sorted(map(_key, want_labels)), "not the same groups"
    assert got_labels == want_labels, "the same groups in another order"
    for (labels, t, v), (_, wt, wv) in zip(got, want.series, strict=True):
        assert t == wt, f"{labels}: other bucket times"
        bad = [(tt, a, b) for tt, a, b in zip(t, v, wv, strict=True) if not _same(a, b, case.exact)]
        assert not bad, f"{labels}: {len(bad)} of {len(t)} values differ, first (t, got, want): {bad[0]}"


def _key(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))
