"""ferry.encode (the agent's numpy-free encoder) against ferry.codec (the collector's decoder)."""

from __future__ import annotations

from array import array

from ferry.codec import decode_metrics, decode_payload
from ferry.encode import SeriesMessages, encode_columns, pack_payload, time_deltas
from ferry.series import COUNTER, GAUGE, SeriesDef
from ferry.v1 import payload_pb2

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
