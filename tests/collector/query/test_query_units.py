"""QueryRange and TopProcesses say what their values are in (SeriesPoints.unit, ProcessRow.unit),
from the series table, on the real embedded store: the series' unit through avg/max/increase and
quantiles, `/s` appended by rate, "" for count and for series of different units, and an
expression's unit through + - only."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ferry.collector.query import resultunit
from ferry.v1 import query_pb2
from ferry.wire.columns import COUNTER, GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import BOUNDS, _histograms, _ok, _push, _range
from tests.collector.test_servicers import QUERY, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

STEP = 10_000


def _batch(t0: int) -> MetricBatch:
    """Two points each of: mem (By gauge, two states), net (By counter), cpu (s counter),
    util (1 gauge), mixed (a By series and a {thread} series of one name), and
    process.memory.usage of one process."""
    series = [
        SeriesDef("u.mem", GAUGE, "By", (("state", "used"),)),
        SeriesDef("u.mem", GAUGE, "By", (("state", "free"),)),
        SeriesDef("u.net", COUNTER, "By", ()),
        SeriesDef("u.cpu", COUNTER, "s", ()),
        SeriesDef("u.util", GAUGE, "1", ()),
        SeriesDef("u.mixed", GAUGE, "By", (("which", "bytes"),)),
        SeriesDef("u.mixed", GAUGE, "{thread}", (("which", "threads"),)),
        SeriesDef("process.memory.usage", GAUGE, "By", (("group", "top"), ("name", "db"), ("pid", "7"))),
    ]
    refs, times, values = [], [], []
    for i in range(len(series)):
        for j in range(2):
            refs.append(i)
            times.append(t0 + 1000 + j * 2000)
            values.append(float(1000 * (i + 1) * (j + 1)))
    return MetricBatch(
        series=series,
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array(times, dtype=np.int64),
        value=np.array(values, dtype=np.float64),
    )


@pytest.fixture
def loaded(servers):
    server, _ = servers
    t0 = (int(time.time()) - 60) // 10 * 10_000
    _push(server, _batch(t0), seq=1)
    return server, t0


def _units(resp) -> list[str]:
    assert resp.series, "no series answered"
    return [s.unit for s in resp.series]


def _expr(server, t0: int, expr: str, topk: int = 0):
    req = query_pb2.QueryRangeRequest(expr=expr, start_ms=t0, end_ms=t0 + STEP, step_ms=STEP, topk=topk)
    return _ok(unary(server, QUERY, "QueryRange", req))


def test_aggregations_carry_the_series_unit(loaded):
    server, t0 = loaded
    end = t0 + STEP
    assert _units(_ok(_range(server, "u.mem", "avg", t0, end))) == ["By", "By"]
    assert _units(_ok(_range(server, "u.mem", "max", t0, end, by=["host"]))) == ["By"]
    assert _units(_ok(_range(server, "u.mem", "p50", t0, end))) == ["By", "By"]
    assert _units(_ok(_range(server, "u.util", "last", t0, end))) == ["1"]
    assert _units(_ok(_range(server, "u.net", "increase", t0, end))) == ["By"]
    # a rate is per second; a count counts points
    assert _units(_ok(_range(server, "u.net", "rate", t0, end))) == ["By/s"]
    assert _units(_ok(_range(server, "u.cpu", "rate", t0, end))) == ["s/s"]
    assert _units(_ok(_range(server, "u.mem", "count", t0, end))) == ["", ""]


def test_series_of_different_units_answer_no_unit(loaded):
    server, t0 = loaded
    end = t0 + STEP
    assert _units(_ok(_range(server, "u.mixed", "avg", t0, end))) == ["", ""]
    assert _units(_ok(_range(server, "u.mixed", "sum", t0, end, by=["host"]))) == [""]
    bytes_only = [query_pb2.Matcher(label="which", value="bytes")]
    assert _units(_ok(_range(server, "u.mixed", "avg", t0, end, matchers=bytes_only))) == ["By"]


def test_histogram_quantiles_carry_its_unit(servers):
    server, _ = servers
    t0 = (int(time.time()) - 60) // 10 * 10_000
    _push(
        server, _histograms("u.latency", [({"route": "/a"}, BOUNDS, t0 + 1000, 2.5, [1, 2, 3, 4, 0])]), seq=1
    )
    assert _units(_ok(_range(server, "u.latency", "p99", t0, t0 + STEP))) == ["s"]
    assert _units(_ok(_range(server, "u.latency", "count", t0, t0 + STEP))) == [""]


def test_expressions_keep_a_shared_unit_through_plus_and_minus(loaded):
    server, t0 = loaded
    assert _units(_expr(server, t0, "sum(u.mem) + sum(u.mem)")) == ["By"]
    assert _units(_expr(server, t0, "sum(u.mem) by (state) - 100")) == ["By", "By"]
    assert _units(_expr(server, t0, "-max(u.mem)")) == ["By"]
    assert _units(_expr(server, t0, "rate(u.net) + rate(u.net)")) == ["By/s"]
    # scaled, divided or mixed: plain numbers
    assert _units(_expr(server, t0, "sum(u.mem) * 2")) == [""]
    assert _units(_expr(server, t0, "sum(u.mem) / sum(u.mem)")) == [""]
    assert _units(_expr(server, t0, "sum(u.mem) + sum(u.util)")) == [""]
    assert _units(_expr(server, t0, "topk(1, sum(u.mem) by (state))")) == ["By"]
    assert _units(_expr(server, t0, "sum(u.mem) by (state)", topk=1)) == ["By"]


def test_top_processes_rows_carry_the_unit(loaded):
    server, _ = loaded
    req = query_pb2.TopProcessesRequest(metric="process.memory.usage", window_ms=3_600_000)
    resp = _ok(unary(server, QUERY, "TopProcesses", req))
    assert [(p.name, p.unit) for p in resp.processes] == [("db", "By")]


def test_result_unit_rules():
    assert resultunit.aggregated(["By"], "rate") == "By/s"
    assert resultunit.aggregated([""], "rate") == "/s"
    assert resultunit.aggregated(["ms"], "p99") == "ms"
    assert resultunit.aggregated(["By"], "count") == ""
    assert resultunit.aggregated(["By", "s"], "avg") == ""
    assert resultunit.aggregated([], "avg") == ""
    assert resultunit.combined("+", "By", None) == "By"
    assert resultunit.combined("-", None, "s") == "s"
    assert resultunit.combined("+", "By", "s") == ""
    assert resultunit.combined("*", "By", None) == ""
    assert resultunit.combined("/", "By", "By") == ""
    assert resultunit.combined("+", None, None) is None
