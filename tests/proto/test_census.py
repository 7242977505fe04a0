"""ferry.wire.census: counts what a serialized Payload holds and stops at the first cap, before
anything is parsed. Real payloads from the real encoder; bombs built byte by byte."""

from __future__ import annotations

import pytest

from ferry.limits import Limits, RecordLimits
from ferry.v1 import payload_pb2
from ferry.wire.census import CensusError, census, series_census, series_span
from ferry.wire.codec import encode_payload
from tests import framegen
from tests.framegen import varint


def _series_table(n: int, **fields) -> bytes:
    series = payload_pb2.Series(name="a", kind=payload_pb2.GAUGE, **fields).SerializeToString()
    columns = (b"\x0a" + varint(len(series)) + series) * n
    return b"\x12" + varint(len(columns)) + columns


def test_counts_a_real_payload():
    batch = framegen.gauge_batch(n_series=7, points=3, labels={"dc": "x"})
    raw = encode_payload(
        payload_pb2.Resource(host="h", labels={"a": "b"}),
        batch,
        events=[framegen.event(properties={"k": "v"})] * 2,
        logs=[framegen.log_record("m")],
    )
    c = census(raw, Limits(), RecordLimits())
    assert (c.series, c.series_labels, c.records) == (7, 14, 3)  # idx and dc on each series
    assert 0 < c.fields < 200


def test_a_series_bomb_stops_at_the_series_cap():
    raw = _series_table(1_000)
    with pytest.raises(CensusError, match=r"more than 999 series in one frame \(999 allowed\)"):
        census(raw, Limits(max_series=999), RecordLimits())
    assert census(raw, Limits(max_series=1_000), RecordLimits()).series == 1_000


def test_label_keys_are_counted_over_the_whole_table():
    raw = _series_table(10, label_keys=["k"] * 5, label_values=["v"] * 5)
    with pytest.raises(CensusError, match="more than 49 series label keys in one frame"):
        census(raw, Limits(max_series_labels=49), RecordLimits())


def test_records_of_every_kind_count_together():
    raw = encode_payload(
        payload_pb2.Resource(host="h"),
        None,
        events=[framegen.event()] * 3,
        logs=[framegen.log_record("m")] * 3,
    )
    with pytest.raises(CensusError, match=r"more than 5 records in one frame \(5 allowed\)"):
        census(raw, Limits(), RecordLimits(max_records=5))


def test_fields_at_every_level_are_capped():
    # one series repeating its name: a field the other caps do not count
    series = b"\x0a\x01a" * 1_000
    raw = b"\x12" + varint(len(series) + 3) + b"\x0a" + varint(len(series)) + series
    with pytest.raises(CensusError, match=r"more than 500 protobuf fields \(500 allowed\)"):
        census(raw, Limits(max_fields=500), RecordLimits())


@pytest.mark.parametrize(
    "raw",
    [b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05\x0a", b"\x0b", b"\x09\x00", b"\xff"],
    ids=["length past the end", "nested past the end", "group", "short fixed64", "truncated tag"],
)
def test_bytes_that_are_not_protobuf(raw):
    with pytest.raises(CensusError, match=r"is not a ferry\.v1\.Payload"):
        census(raw, Limits(), RecordLimits())


# ---- the series table's span, and a census that takes a counted span as counted ----------------


def _payload(batch, **records) -> bytes:
    return encode_payload(framegen.resource(), batch, **records)


def test_series_span_is_the_run_of_series_entries():
    batch = framegen.gauge_batch("span.g", n_series=4)
    raw = _payload(batch, events=[framegen.event()])
    start, end = series_span(raw)
    table = payload_pb2.MetricColumns(series=payload_pb2.MetricColumns.FromString(raw[start:end]).series)
    assert [s.name for s in table.series] == ["span.g"] * 4
    parsed = payload_pb2.Payload.FromString(raw).metrics
    assert table.SerializeToString() == payload_pb2.MetricColumns(series=parsed.series).SerializeToString()
    # hosts with the same series table carry the same bytes there
    other = encode_payload(
        framegen.resource("b", "host-b"), framegen.gauge_batch("span.g", n_series=4, value0=9)
    )
    s2 = series_span(other)
    assert other[s2[0] : s2[1]] == raw[start:end]


def test_series_span_is_none_where_the_table_is_not_one_run():
    batch = framegen.gauge_batch("span.g", n_series=2)
    metrics = payload_pb2.Payload.FromString(_payload(batch)).metrics
    s0, s1 = (s.SerializeToString() for s in metrics.series)
    split = b"\x0a" + framegen.varint(len(s0)) + s0 + b"\x10\x05" + b"\x0a" + framegen.varint(len(s1)) + s1
    assert series_span(b"\x12" + framegen.varint(len(split)) + split) is None  # a field between them
    one = metrics.SerializeToString()
    twice = (b"\x12" + framegen.varint(len(one)) + one) * 2  # two metrics fields: the parser merges
    assert series_span(twice) is None
    assert series_span(_payload(None, events=[framegen.event()])) is None  # no metrics at all
    assert series_span(b"\xff\xff\xff") is None  # not protobuf: census says why
    # a metrics field longer than the payload (found by review: these raised IndexError)
    for cut in (b"\x12\x05\x0a\x01", b"\x12\x7f\x0a\x05abcde", b"\x12\x03\x0a\x05"):
        assert series_span(cut) is None
        with pytest.raises(CensusError):
            census(cut, Limits(), RecordLimits())


def test_a_counted_span_counts_as_walking_it_would():
    batch = framegen.gauge_batch("span.g", n_series=50, labels={"a": "1", "b": "2"})
    raw = _payload(batch, logs=[framegen.log_record("x")])
    span = series_span(raw)
    counted = series_census(raw, span, Limits())
    assert census(raw, Limits(), RecordLimits(), (*span, counted)) == census(raw, Limits(), RecordLimits())
    # the caps hold for the counted span too
    with pytest.raises(CensusError, match="more than 49 series"):
        census(raw, Limits(max_series=49), RecordLimits(), (*span, counted))
    with pytest.raises(CensusError, match="series label keys"):
        census(raw, Limits(max_series_labels=99), RecordLimits(), (*span, counted))
    with pytest.raises(CensusError, match="protobuf fields"):
        census(raw, Limits(max_fields=counted.fields), RecordLimits(), (*span, counted))


def test_series_span_stops_at_its_step_bound():
    batch = framegen.gauge_batch("span.g", n_series=50)
    raw = _payload(batch)
    assert series_span(raw, 60) is not None
    assert series_span(raw, 40) is None  # more entries than allowed: the census refuses the frame
