"""`ferry query` table output: a sparkline and the range per series, then the points, in the
series' unit (json and csv raw); `ferry series`' unit names."""

from __future__ import annotations

import math

from ferry.collector.cli import output
from ferry.v1 import query_pb2


def test_sparkline_scales_lowest_to_highest():
    assert output.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert output.sparkline([5, 5, 5]) == "▄▄▄"
    assert output.sparkline([1, math.nan, 3]) == "▁ █"
    assert output.sparkline([math.nan]) == " "
    assert output.sparkline(list(range(600)), width=60) == output.sparkline(list(range(60)))
    assert len(output.sparkline(list(range(1000)))) == 60


def test_table_has_a_sparkline_per_series_and_every_point():
    resp = query_pb2.QueryRangeResponse()
    s = resp.series.add(metric="cpu", labels={"host": "a"})
    s.time_ms.extend([0, 60_000, 120_000])
    s.value.extend([1.0, 4.0, 2.5])
    text = output.range_result(resp, "table")
    assert text.splitlines() == [
        'cpu{host="a"}  ▁█▅  1 … 4',
        "  1970-01-01T00:00:00.000Z               1",
        "  1970-01-01T00:01:00.000Z               4",
        "  1970-01-01T00:02:00.000Z             2.5",
    ]


def _memory() -> query_pb2.QueryRangeResponse:
    resp = query_pb2.QueryRangeResponse()
    s = resp.series.add(metric="system.memory.usage", labels={"state": "used"}, unit="By")
    s.time_ms.extend([0, 60_000])
    s.value.extend([20_856_800.0, 1.5 * (1 << 30)])
    return resp


def test_table_renders_the_series_unit_in_the_header_and_every_point():
    assert output.range_result(_memory(), "table").splitlines() == [
        'system.memory.usage{state="used"}  ▁█  19.9 MiB … 1.5 GiB',
        "  1970-01-01T00:00:00.000Z        19.9 MiB",
        "  1970-01-01T00:01:00.000Z         1.5 GiB",
    ]
    resp = query_pb2.QueryRangeResponse()
    s = resp.series.add(metric="process.cpu.time", unit="s/s")
    s.time_ms.append(0)
    s.value.append(0.425)
    assert output.range_result(resp, "table").splitlines()[1] == "  1970-01-01T00:00:00.000Z           42.5%"


def test_json_and_csv_keep_the_raw_numbers():
    resp = _memory()
    assert output.range_result(resp, "json") == (
        '{"metric":"system.memory.usage","labels":{"state":"used"},'
        '"points":[[0,20856800.0],[60000,1610612736.0]]}\n'
    )
    assert output.range_result(resp, "csv") == (
        "series,time_ms,value\n"
        '"system.memory.usage{state=""used""}",0,20856800.0\n'
        '"system.memory.usage{state=""used""}",60000,1610612736.0\n'
    )


def test_series_table_names_units_and_csv_keeps_their_codes():
    resp = query_pb2.ListSeriesResponse()
    resp.series.add(metric="system.memory.usage", labels={"state": "used"}, kind=1, unit="By")
    resp.series.add(metric="process.threads", kind=1, unit="{thread}")
    table = output.series_list(resp, "table").splitlines()
    assert [line.split()[2] for line in table[1:]] == ["bytes", "thread"]
    rows = output.series_list(resp, "csv").splitlines()
    assert [r.split(",")[-2] for r in rows[1:]] == ["By", "{thread}"]
