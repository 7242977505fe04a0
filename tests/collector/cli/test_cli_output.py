"""`ferry query` table output: a sparkline and the range per series, then the points."""

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
