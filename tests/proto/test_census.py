"""ferry.wire.census: counts what a serialized Payload holds and stops at the first cap, before
anything is parsed. Real payloads from the real encoder; bombs built byte by byte."""

from __future__ import annotations

import pytest

from ferry.limits import Limits, RecordLimits
from ferry.v1 import payload_pb2
from ferry.wire.census import CensusError, census
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
