"""agent.local.records: what the Local service accepts, and DELTA summing."""

from __future__ import annotations

import pytest

from agent.local.records import DeltaSums, RecordError, convert
from ferry.limits import Limits
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, SeriesDef
from ferry.v1 import local_pb2

NOW = 1_700_000_000_000


def records(*metrics: local_pb2.MetricRecord, **kw) -> local_pb2.Records:
    return local_pb2.Records(metrics=list(metrics), **kw)


def test_times_kinds_and_labels():
    points, deltas = convert(
        records(
            local_pb2.MetricRecord(name="g", kind=GAUGE, value=1.5, labels={"b": "2", "a": "1"}, unit="By"),
            local_pb2.MetricRecord(name="c", kind=COUNTER, value=7, time_unix_ms=NOW - 5000),
            local_pb2.MetricRecord(name="d", kind=DELTA, value=2),
        ),
        NOW,
        Limits(),
    )
    assert points == [
        (SeriesDef("g", GAUGE, "By", (("a", "1"), ("b", "2"))), NOW, 1.5),  # stamped on receipt
        (SeriesDef("c", COUNTER), NOW - 5000, 7.0),  # its own time
    ]
    assert deltas == [(SeriesDef("d", DELTA), NOW, 2.0)]


@pytest.mark.parametrize(
    "record,message",
    [
        (local_pb2.MetricRecord(name="h", kind=HISTOGRAM, value=1), "kind histogram is not one of gauge"),
        (local_pb2.MetricRecord(name="k", value=1), "kind unspecified is not one of gauge"),
        (
            local_pb2.MetricRecord(name="old", kind=GAUGE, value=1, time_unix_ms=NOW - 16 * 86_400_000),
            "outside",
        ),
        (local_pb2.MetricRecord(name="soon", kind=GAUGE, value=1, time_unix_ms=NOW + 3_600_000), "outside"),
        (local_pb2.MetricRecord(name="bad name", value=1), "metric record 0: name 'bad name' does not match"),
        (local_pb2.MetricRecord(name="x", value=1, labels={"1a": "v"}), "label key '1a' does not match"),
    ],
)
def test_refusals_name_the_record_and_the_limit(record, message):
    with pytest.raises(RecordError, match=message) as err:
        convert(records(record), NOW, Limits())
    assert err.value.code == "INVALID_ARGUMENT"


def test_histograms_events_and_logs_are_refused_for_now():
    with pytest.raises(RecordError, match="metric records only"):
        convert(records(histograms=[local_pb2.HistogramRecord(name="h")]), NOW, Limits())


def test_delta_sums_flush_one_point_per_series():
    sums = DeltaSums(clock=lambda: NOW / 1000)
    a, b = SeriesDef("d", DELTA, "", (("k", "a"),)), SeriesDef("d", DELTA, "", (("k", "b"),))
    sums.add([(a, 1, 1.0), (b, 1, 2.0), (a, 2, 0.25)])
    sums.add([(SeriesDef("d", DELTA, "", (("k", "a"),)), 3, 1.0)])  # an equal series, another object
    assert sorted(sums.flush(), key=lambda p: p[0].labels) == [(a, NOW, 2.25), (b, NOW, 2.0)]
    assert sums.flush() == [] and len(sums) == 0
