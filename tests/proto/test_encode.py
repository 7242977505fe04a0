"""ferry.wire.encode (the agent's numpy-free encoder) against ferry.wire.codec (the collector's decoder)."""

from __future__ import annotations

from array import array

import pytest

from ferry.agent.accumulator import Accumulator
from ferry.agent.batcher import Batcher
from ferry.agent.intake import Intake
from ferry.series import COUNTER, GAUGE, HISTOGRAM, SeriesDef
from ferry.v1 import payload_pb2
from ferry.wire.codec import decode_metrics, decode_payload
from ferry.wire.encode import SeriesMessages, encode_columns, pack_payload, ref_deltas, time_deltas

A = SeriesDef("a", GAUGE, "By", (("host", "h1"),))
B = SeriesDef("b", COUNTER, "", (("cpu", "0"), ("state", "idle")))


def test_round_trip_through_the_collectors_decoder():
    times = array("q", [1_700_000_000_000, 1_700_000_001_000, 1_699_999_999_000, 5])  # any order
    cols = encode_columns([A, B], array("I", [0, 0, 1, 1]), times, array("d", [1.5, -2.0, 1e300, 0.0]))
    payload = decode_payload(pack_payload(payload_pb2.Resource(host="h1"), cols))
    batch = decode_metrics(payload.metrics)
    assert batch.series == [A, B]
    assert batch.series_ref.tolist() == [0, 0, 1, 1]
    assert batch.time_ms.tolist() == list(times)
    assert batch.value.tolist() == [1.5, -2.0, 1e300, 0.0]


def test_time_deltas():
    assert time_deltas(array("q", [10, 15, 15, 3])).tolist() == [10, 5, 0, -12]
    assert time_deltas(array("q")).tolist() == []


def test_refs_travel_as_differences():
    refs = array("I", [0, 1, 0, 1, 1, 0])
    assert ref_deltas(refs).tolist() == [0, 1, -1, 1, 0, -1]
    cols = encode_columns([A, B], refs, array("q", range(6)), array("d", [0.0] * 6))
    assert cols.series_ref == b""
    assert array("i", cols.series_ref_delta).tolist() == [0, 1, -1, 1, 0, -1]
    assert decode_metrics(cols).series_ref.tolist() == refs.tolist()


def test_series_messages_are_built_once_per_object_and_bounded():
    messages = SeriesMessages(limit=2)
    first = messages([A, B])
    assert messages([A, B])[0] is first[0]  # the same message object: not built again
    equal_but_new = SeriesDef("a", GAUGE, "By", (("host", "h1"),))
    assert messages([equal_but_new])[0] == first[0]
    messages([SeriesDef("c", GAUGE)])  # past the limit: emptied, then refilled
    assert len(messages._cache) <= 3


def test_empty_metrics_are_left_out():
    empty = encode_columns([], array("I"), array("q"), array("d"))
    assert not decode_payload(pack_payload(payload_pb2.Resource(host="h"), empty)).HasField("metrics")


H = SeriesDef("lat", HISTOGRAM, "s", (("route", "/a"),), (0.1, 1.0))


def test_histogram_points_carry_their_bucket_counts_in_column_order():
    acc = Accumulator()
    acc.histogram(H, 1_000, 4.5, (3, 2, 1))
    acc.add(A, 1_000, 7.0)
    acc.histogram(H, 2_000, 0.25, (1, 0, 0))
    cols = acc.cut()
    batch = decode_metrics(
        decode_payload(pack_payload(payload_pb2.Resource(host="h"), encode_columns(*cols))).metrics
    )
    assert batch.series == [H, A]
    assert batch.series_ref.tolist() == [0, 0, 1]  # series-major
    assert batch.time_ms.tolist() == [1_000, 2_000, 1_000]
    assert batch.value.tolist() == [4.5, 0.25, 7.0]
    assert batch.bucket_counts.tolist() == [3, 2, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="2 bucket counts != 3"):
        acc.histogram(H, 3_000, 1.0, (1, 1))


def test_batcher_frames_events_and_logs_with_the_metrics():
    frames = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda p, n: frames.append((p, n)), max_points=4)
    event = payload_pb2.Event(type="click", time_unix_ns=5)
    log = payload_pb2.LogRecord(level="info", message="hi", time_unix_ns=6)
    batcher.take(Intake(points=[(A, 1_000, 1.0)], events=[event], logs=[log]))
    assert len(batcher) == 3 and not frames
    batcher.take(Intake(events=[event]))  # the 4th record: max_points reached, cut
    ((payload, points),) = frames
    decoded = decode_payload(payload)
    assert points == 1  # the frame's point_count counts metric points only
    assert [e.type for e in decoded.events] == ["click", "click"] and decoded.logs[0].message == "hi"
    assert len(batcher) == 0


def test_batcher_cuts_at_the_record_byte_bound():
    frames = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda p, n: frames.append(p), max_bytes=1000)
    logs = [payload_pb2.LogRecord(level="info", message=str(i) * 400) for i in range(5)]
    batcher.take(Intake(logs=logs))  # ~406 bytes each: the 3rd passes 1000 bytes
    batcher.cut()
    assert [[r.message[0] for r in decode_payload(p).logs] for p in frames] == [["0", "1", "2"], ["3", "4"]]
