"""ferry.agent.local.records: what the Local service accepts, and DELTA summing."""

from __future__ import annotations

import pytest

from ferry.agent.local.records import DeltaSums, KnownSeries, RecordError, convert
from ferry.limits import Limits
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, SeriesDef
from ferry.v1 import local_pb2, payload_pb2

NOW = 1_700_000_000_000
NOW_NS = NOW * 1_000_000


def records(*metrics: local_pb2.MetricRecord, **kw) -> local_pb2.Records:
    return local_pb2.Records(metrics=list(metrics), **kw)


def test_times_kinds_and_labels():
    intake = convert(
        records(
            local_pb2.MetricRecord(name="g", kind=GAUGE, value=1.5, labels={"b": "2", "a": "1"}, unit="By"),
            local_pb2.MetricRecord(name="c", kind=COUNTER, value=7, time_unix_ms=NOW - 5000),
            local_pb2.MetricRecord(name="d", kind=DELTA, value=2),
        ),
        NOW_NS,
        Limits(),
    )
    assert intake.points == [
        (SeriesDef("g", GAUGE, "By", (("a", "1"), ("b", "2"))), NOW, 1.5),  # stamped on receipt
        (SeriesDef("c", COUNTER), NOW - 5000, 7.0),  # its own time
    ]
    assert intake.deltas == [(SeriesDef("d", DELTA), NOW, 2.0)]


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
        convert(records(record), NOW_NS, Limits())
    assert err.value.code == "INVALID_ARGUMENT"


def test_histograms_keep_their_time_bounds_and_counts():
    h = local_pb2.HistogramRecord(
        name="lat", labels={"route": "/a"}, bounds=[0.1, 1], counts=[3, 2, 1], sum=4.5, unit="s"
    )
    stamped = local_pb2.HistogramRecord(name="lat", bounds=[1], counts=[0, 1], sum=2, time_unix_ms=NOW - 10)
    intake = convert(records(histograms=[h, stamped]), NOW_NS, Limits())
    assert intake.histograms == [
        (SeriesDef("lat", HISTOGRAM, "s", (("route", "/a"),), (0.1, 1.0)), NOW, 4.5, (3, 2, 1)),
        (SeriesDef("lat", HISTOGRAM, "", (), (1.0,)), NOW - 10, 2.0, (0, 1)),
    ]
    assert not intake.points and not intake.deltas


@pytest.mark.parametrize(
    "record,message",
    [
        (local_pb2.HistogramRecord(name="h", bounds=[1, 1], counts=[0, 0, 0]), "strictly ascending"),
        (local_pb2.HistogramRecord(name="h", bounds=[1, float("inf")], counts=[0, 0, 0]), "finite"),
        (local_pb2.HistogramRecord(name="h", bounds=[1, 2], counts=[1, 1]), "2 counts != 3"),
        (
            local_pb2.HistogramRecord(name="h", bounds=list(range(300)), counts=[0] * 301),
            "300 bucket bounds > 256",
        ),
        (
            local_pb2.HistogramRecord(name="h", bounds=[1], counts=[0, 1], sum=float("nan")),
            "sum nan is not finite",
        ),
        (local_pb2.HistogramRecord(name="", bounds=[1], counts=[0, 1]), "histogram record 0: name is empty"),
    ],
)
def test_bad_histograms_are_refused(record, message):
    with pytest.raises(RecordError, match=message):
        convert(records(histograms=[record]), NOW_NS, Limits())


def test_events_and_logs_are_stamped_on_receipt_unless_timed():
    intake = convert(
        records(
            events=[
                payload_pb2.Event(type="signup", category="web", action="submit", properties={"plan": "pro"}),
                payload_pb2.Event(type="click", time_unix_ns=NOW_NS - 5, value=2.5, has_value=True),
            ],
            logs=[payload_pb2.LogRecord(level="error", message="disk full", attributes={"dev": "sda"})],
        ),
        NOW_NS,
        Limits(),
    )
    assert [(e.type, e.time_unix_ns) for e in intake.events] == [("signup", NOW_NS), ("click", NOW_NS - 5)]
    assert [(r.message, r.time_unix_ns, dict(r.attributes)) for r in intake.logs] == [
        ("disk full", NOW_NS, {"dev": "sda"})
    ]
    assert len(intake) == 3


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"events": [payload_pb2.Event(category="x")]}, "event 0: type is empty"),
        ({"events": [payload_pb2.Event(type="t", label="x" * 300)]}, "event 0: label is 300 bytes > 256"),
        ({"events": [payload_pb2.Event(type="t", value=float("nan"), has_value=True)]}, "not finite"),
        (
            {"events": [payload_pb2.Event(type="t", properties={f"k{i}": "v" for i in range(65)})]},
            "65 properties > 64",
        ),
        ({"events": [payload_pb2.Event(type="t", properties={"bad key": "v"})]}, "properties key 'bad key'"),
        ({"logs": [payload_pb2.LogRecord(message="m")]}, "log 0: level is empty"),
        (
            {"logs": [payload_pb2.LogRecord(level="info", message="x" * 70_000)]},
            "message is 70000 bytes > 65536",
        ),
        ({"logs": [payload_pb2.LogRecord(level="info", trace_id="f" * 65)]}, "trace_id is 65 chars > 64"),
        ({"logs": [payload_pb2.LogRecord(level="info", time_unix_ns=1)]}, "log 0: time 1 ns is outside"),
    ],
)
def test_bad_events_and_logs_are_refused(kw, message):
    with pytest.raises(RecordError, match=message):
        convert(records(**kw), NOW_NS, Limits())


def test_delta_sums_flush_one_point_per_series():
    sums = DeltaSums(clock=lambda: NOW / 1000)
    a, b = SeriesDef("d", DELTA, "", (("k", "a"),)), SeriesDef("d", DELTA, "", (("k", "b"),))
    sums.add([(a, 1, 1.0), (b, 1, 2.0), (a, 2, 0.25)])
    sums.add([(SeriesDef("d", DELTA, "", (("k", "a"),)), 3, 1.0)])  # an equal series, another object
    assert sorted(sums.flush(), key=lambda p: p[0].labels) == [(a, NOW, 2.25), (b, NOW, 2.0)]
    assert sums.flush() == [] and len(sums) == 0


def test_records_of_one_series_share_one_series_object():
    known = KnownSeries()
    first = convert(
        records(local_pb2.MetricRecord(name="g", kind=GAUGE, value=1, labels={"a": "1"})),
        NOW_NS,
        Limits(),
        known=known,
    )
    again = convert(
        records(
            *(local_pb2.MetricRecord(name="g", kind=GAUGE, value=v, labels={"a": "1"}) for v in range(3))
        ),
        NOW_NS,
        Limits(),
        known=known,
    )
    objects = {id(p[0]) for p in first.points + again.points}
    assert len(objects) == 1  # one row in the frame's series table, however many records
    other = convert(
        records(local_pb2.MetricRecord(name="g", kind=COUNTER, value=1, labels={"a": "1"})),
        NOW_NS,
        Limits(),
        known=known,
    )
    assert other.points[0][0] is not first.points[0][0]  # another kind: another series
