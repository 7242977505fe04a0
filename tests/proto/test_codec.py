"""ferry.wire.codec / ferry.wire.columns: MetricBatch <-> MetricColumns <-> Payload bytes."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.v1 import payload_pb2
from ferry.wire.codec import CodecError, decode_metrics, decode_payload, encode_metrics, encode_payload
from ferry.wire.columns import (
    COUNTER,
    DELTA,
    GAUGE,
    HISTOGRAM,
    KIND_NAMES,
    KINDS_BY_NAME,
    MetricBatch,
    SeriesDef,
    labels_key,
)

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
U64_MAX = 2**64 - 1


def bits(a: np.ndarray) -> list[int]:
    """The exact bit patterns of a float64 array (NaN payloads and -0.0 included)."""
    return np.ascontiguousarray(a, dtype=np.float64).view(np.uint64).tolist()


def float_bits(xs) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", x))[0] for x in xs]


def batch(series, refs, times, values, buckets=()) -> MetricBatch:
    return MetricBatch(
        series=list(series),
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array(times, dtype=np.int64),
        value=np.array(values, dtype=np.float64),
        bucket_counts=np.array(buckets, dtype=np.uint64),
    )


def roundtrip(b: MetricBatch) -> MetricBatch:
    """encode_metrics -> wire bytes -> decode_metrics (keeps the series table even with no points)."""
    wire = encode_metrics(b).SerializeToString()
    return decode_metrics(payload_pb2.MetricColumns.FromString(wire))


def assert_same(got: MetricBatch, want: MetricBatch) -> None:
    assert got.series == want.series
    for g, w in zip(got.series, want.series, strict=True):
        assert float_bits(g.bounds) == float_bits(w.bounds)
    assert got.series_ref.dtype == np.uint32
    assert got.time_ms.dtype == np.int64
    assert got.value.dtype == np.float64
    assert got.bucket_counts.dtype == np.uint64
    assert got.series_ref.tolist() == want.series_ref.tolist()
    assert got.time_ms.tolist() == want.time_ms.tolist()
    assert bits(got.value) == bits(want.value)
    assert got.bucket_counts.tolist() == want.bucket_counts.tolist()


CPU = SeriesDef("cpu.util", GAUGE, "1", (("cpu", "0"), ("host", "a")))
REQS = SeriesDef("http.requests", COUNTER, "{request}", (("code", "200"),))
LAT = SeriesDef("http.latency", HISTOGRAM, "ms", (("route", "/x"),), (1.0, 5.0, 25.0))
ONE_BOUND = SeriesDef("q.size", HISTOGRAM, "", (), (10.0,))
RESOURCE = payload_pb2.Resource(host="h1", agent_id="ag-1", labels={"dc": "eu"}, agent_version="0.1.0")


# ---- columns helpers ---------------------------------------------------------------------------


def test_labels_key_sorts_and_handles_empty():
    assert labels_key({"b": "2", "a": "1", "c": ""}) == (("a", "1"), ("b", "2"), ("c", ""))
    assert labels_key({}) == ()
    assert labels_key(None) == ()


def test_kind_tables_are_inverse():
    assert KIND_NAMES == {GAUGE: "gauge", COUNTER: "counter", DELTA: "delta", HISTOGRAM: "histogram"}
    assert (GAUGE, COUNTER, DELTA, HISTOGRAM) == (1, 2, 3, 4)
    assert KINDS_BY_NAME == {"gauge": 1, "counter": 2, "delta": 3, "histogram": 4}


def test_empty_batch_shapes():
    b = MetricBatch.empty()
    assert len(b) == 0
    assert b.series == []
    assert (b.series_ref.dtype, b.time_ms.dtype, b.value.dtype, b.bucket_counts.dtype) == (
        np.uint32,
        np.int64,
        np.float64,
        np.uint64,
    )


# ---- wire layout --------------------------------------------------------------------------------


def test_encode_metrics_wire_layout():
    b = batch(
        [CPU, REQS], [1, 0, 1], [1_700_000_000_000, 1_700_000_000_500, 1_699_999_999_000], [3.5, -1.0, 0.25]
    )
    msg = encode_metrics(b)
    assert msg.point_count == 3
    # refs as differences, the first from 0; the absolute uint32 field stays empty
    assert msg.series_ref_delta == struct.pack("<3i", 1, -1, 1)
    assert msg.series_ref == b""
    # first absolute, then the delta to the previous point (negative allowed)
    assert msg.time_ms == struct.pack("<3q", 1_700_000_000_000, 500, -1_500)
    assert msg.value == struct.pack("<3d", 3.5, -1.0, 0.25)
    assert msg.bucket_counts == b""
    assert [s.name for s in msg.series] == ["cpu.util", "http.requests"]
    assert list(msg.series[0].label_keys) == ["cpu", "host"]
    assert list(msg.series[0].label_values) == ["0", "a"]
    assert msg.series[1].kind == COUNTER
    assert msg.series[1].unit == "{request}"


def test_encode_metrics_rejects_column_length_mismatch():
    b = batch([CPU], [0, 0], [1, 2, 3], [1.0, 2.0])
    with pytest.raises(CodecError, match=r"series_ref 2, time_ms 3, value 2"):
        encode_metrics(b)


# ---- round trips --------------------------------------------------------------------------------


def test_roundtrip_with_histograms_through_payload():
    b = batch(
        [CPU, LAT, REQS, ONE_BOUND],
        refs=[0, 1, 2, 1, 3, 0],
        times=[1000, 1000, 1001, 2000, 1500, 999],
        values=[0.5, 31.25, 7.0, 2.5, 12.0, 0.75],
        # LAT point 1 (4 counts), LAT point 3 (4 counts), ONE_BOUND point 4 (2 counts)
        buckets=[1, 2, 3, 4, 0, 1, 0, 0, 9, U64_MAX],
    )
    raw = encode_payload(RESOURCE, b)
    payload = decode_payload(raw)
    assert payload.resource == RESOURCE
    assert payload.HasField("metrics")
    got = decode_metrics(payload.metrics)
    assert_same(got, b)
    assert got.series[1].bounds == (1.0, 5.0, 25.0)
    assert got.bucket_counts.tolist() == [1, 2, 3, 4, 0, 1, 0, 0, 9, U64_MAX]


def test_roundtrip_histogram_with_no_bounds_has_one_bucket():
    s = SeriesDef("h", HISTOGRAM)
    b = batch([s], [0, 0], [5, 6], [1.0, 2.0], [3, 4])
    assert_same(roundtrip(b), b)


def test_empty_batch_payload_has_no_metrics():
    raw = encode_payload(RESOURCE, MetricBatch.empty())
    payload = decode_payload(raw)
    assert not payload.HasField("metrics")
    assert payload.resource.host == "h1"
    got = decode_metrics(payload.metrics)
    assert len(got) == 0
    assert got.series == []
    assert got.bucket_counts.tolist() == []


def test_payload_without_batch_and_with_events_and_logs():
    ev = payload_pb2.Event(time_unix_ns=5, type="click", properties={"k": "v"})
    log = payload_pb2.LogRecord(time_unix_ns=6, level="warn", message="é ✓")
    payload = decode_payload(encode_payload(RESOURCE, None, events=[ev], logs=[log]))
    assert not payload.HasField("metrics")
    assert list(payload.events) == [ev]
    assert list(payload.logs) == [log]


def test_empty_batch_keeps_series_table_in_metric_columns():
    b = batch([LAT, CPU], [], [], [])
    got = roundtrip(b)
    assert got.series == [LAT, CPU]
    assert len(got) == 0


def test_roundtrip_non_finite_values_bit_exact():
    patterns = [
        0x7FF8000000000000,  # quiet NaN
        0xFFF8000000000000,  # negative quiet NaN
        0x7FF0000000000001,  # signalling NaN
        0x7FF4DEADBEEF0001,  # NaN with a payload
        0x7FF0000000000000,  # +inf
        0xFFF0000000000000,  # -inf
        0x8000000000000000,  # -0.0
        0x0000000000000001,  # smallest subnormal
        0x7FEFFFFFFFFFFFFF,  # max finite
    ]
    values = np.array(patterns, dtype=np.uint64).view(np.float64)
    n = len(patterns)
    b = batch([CPU], [0] * n, range(n), values)
    got = decode_metrics(decode_payload(encode_payload(RESOURCE, b)).metrics)
    assert bits(got.value) == patterns


def test_roundtrip_extreme_times():
    times = [I64_MAX, I64_MIN, 0, -1, I64_MAX, 1]
    b = batch([CPU], [0] * len(times), times, [0.0] * len(times))
    assert roundtrip(b).time_ms.tolist() == times


# ---- property tests -----------------------------------------------------------------------------

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
float_bit_patterns = st.one_of(
    st.integers(0, U64_MAX),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: float_bits([x])[0]),
    st.sampled_from([0x7FF8000000000000, 0xFFF8000000000001, 0x7FF0000000000001, 0x8000000000000000]),
)


@st.composite
def series_defs(draw) -> SeriesDef:
    kind = draw(st.sampled_from([GAUGE, COUNTER, DELTA, HISTOGRAM]))
    labels = tuple(draw(st.lists(st.tuples(text, text), max_size=4)))
    bounds = ()
    if kind == HISTOGRAM:
        # the codec carries bounds as-is (order is the validator's job); NaN would break == on SeriesDef
        bounds = tuple(draw(st.lists(st.floats(allow_nan=False), max_size=5)))
    return SeriesDef(draw(text), kind, draw(text), labels, bounds)


@st.composite
def batches(draw) -> MetricBatch:
    series = draw(st.lists(series_defs(), max_size=6))
    n = draw(st.integers(0, 30)) if series else 0
    refs = draw(st.lists(st.integers(0, len(series) - 1), min_size=n, max_size=n)) if n else []
    times = draw(
        st.lists(
            st.one_of(st.integers(I64_MIN, I64_MAX), st.integers(1_600_000_000_000, 1_800_000_000_000)),
            min_size=n,
            max_size=n,
        )
    )
    value_bits = draw(st.lists(float_bit_patterns, min_size=n, max_size=n))
    nbuckets = sum(len(series[r].bounds) + 1 for r in refs if series[r].kind == HISTOGRAM)
    buckets = draw(st.lists(st.integers(0, U64_MAX), min_size=nbuckets, max_size=nbuckets))
    values = np.array(value_bits, dtype=np.uint64).view(np.float64)
    return batch(series, refs, times, values, buckets)


PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(batches())
def test_property_roundtrip(b):
    # MetricColumns alone keeps the series table even with no points
    assert_same(roundtrip(b), b)
    # the full Payload drops an empty batch altogether
    payload = decode_payload(encode_payload(RESOURCE, b))
    assert payload.resource == RESOURCE
    got = decode_metrics(payload.metrics)
    if len(b):
        assert_same(got, b)
    else:
        assert not payload.HasField("metrics")
        assert len(got) == 0 and got.series == []


@PROPS
@given(st.lists(st.integers(I64_MIN, I64_MAX), max_size=40))
def test_property_time_column_is_delta_encoded(times):
    n = len(times)
    b = batch([CPU], [0] * n, times, [0.0] * n)
    deltas = np.frombuffer(encode_metrics(b).time_ms, dtype="<i8").tolist()
    # first absolute, then wrapping int64 differences, exactly as on the wire
    expected = times[:1] + [((a - p + 2**63) % 2**64) - 2**63 for p, a in itertools.pairwise(times)]
    assert deltas == expected
    assert roundtrip(b).time_ms.tolist() == times


# ---- structural errors --------------------------------------------------------------------------


def columns(series=(CPU,), n=2, refs=None, times=None, values=None, buckets=b"") -> payload_pb2.MetricColumns:
    msg = encode_metrics(batch(series, [0] * n, range(n), [1.0] * n))
    if refs is not None:  # absolute refs, as an encoder may still send them
        msg.ClearField("series_ref_delta")
        msg.series_ref = refs
    if times is not None:
        msg.time_ms = times
    if values is not None:
        msg.value = values
    msg.bucket_counts = buckets
    return msg


@pytest.mark.parametrize(
    ("field", "raw", "message"),
    [
        ("series_ref", b"\x00" * 7, "column series_ref: 7 bytes is not a multiple of 4"),
        ("time_ms", b"\x00" * 15, "column time_ms: 15 bytes is not a multiple of 8"),
        ("value", b"\x00" * 9, "column value: 9 bytes is not a multiple of 8"),
    ],
)
def test_column_not_multiple_of_item_size(field, raw, message):
    msg = columns(**{{"series_ref": "refs", "time_ms": "times", "value": "values"}[field]: raw})
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == message


def test_bucket_counts_not_multiple_of_item_size():
    msg = columns(series=(LAT,), buckets=b"\x00" * 12)
    with pytest.raises(CodecError, match=r"^column bucket_counts: 12 bytes is not a multiple of 8$"):
        decode_metrics(msg)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"refs": struct.pack("<3I", 0, 0, 0)}, "column series_ref: 3 values != point_count 2"),
        ({"times": struct.pack("<q", 1)}, "column time_ms: 1 values != point_count 2"),
        ({"values": struct.pack("<4d", 1, 2, 3, 4)}, "column value: 4 values != point_count 2"),
    ],
)
def test_column_length_differs_from_point_count(kw, message):
    with pytest.raises(CodecError) as exc:
        decode_metrics(columns(**kw))
    assert str(exc.value) == message


def test_point_count_larger_than_columns():
    msg = columns()
    msg.point_count = 3
    with pytest.raises(CodecError, match=r"^column series_ref_delta: 2 values != point_count 3$"):
        decode_metrics(msg)


def test_absolute_and_delta_refs_decode_alike():
    refs = [2, 0, 1, 1, 2, 0]
    mem = SeriesDef("mem.used", GAUGE, "By", (("host", "a"),))
    b = batch([CPU, REQS, mem], refs, range(6), [1.0] * 6)
    delta = encode_metrics(b)
    absolute = encode_metrics(b)
    absolute.ClearField("series_ref_delta")
    absolute.series_ref = struct.pack("<6I", *refs)
    assert decode_metrics(delta).series_ref.tolist() == decode_metrics(absolute).series_ref.tolist() == refs
    assert decode_metrics(delta).series_ref.dtype == np.uint32


def test_both_ref_columns_set():
    msg = columns(series=(CPU, REQS), refs=struct.pack("<2I", 1, 0))
    msg.series_ref_delta = struct.pack("<2i", 1, -1)
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == "series_ref and series_ref_delta are both set; an encoder sends one of them"


@pytest.mark.parametrize(
    ("deltas", "message"),
    [
        ((1, -2), "series_ref -1 out of range: the series table has 2 rows"),
        ((1, 1), "series_ref 2 out of range: the series table has 2 rows"),
        ((2**31 - 1, 2**31 - 1), f"series_ref {2**32 - 2} out of range: the series table has 2 rows"),
    ],
)
def test_series_ref_delta_out_of_range(deltas, message):
    msg = columns(series=(CPU, REQS))
    msg.series_ref_delta = struct.pack("<2i", *deltas)
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == message


def test_series_ref_delta_not_multiple_of_item_size():
    msg = columns()
    msg.series_ref_delta = b"\x01\x00\x00\x00\x00\x00"
    with pytest.raises(CodecError, match=r"^column series_ref_delta: 6 bytes is not a multiple of 4$"):
        decode_metrics(msg)


@pytest.mark.parametrize("bad_ref", [2, 2**32 - 1])
def test_series_ref_out_of_range(bad_ref):
    msg = columns(series=(CPU, REQS), refs=struct.pack("<2I", 1, bad_ref))
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == f"series_ref {bad_ref} out of range: the series table has 2 rows"


def test_series_ref_with_empty_series_table():
    msg = columns(series=(), refs=struct.pack("<2I", 0, 0))
    del msg.series[:]
    with pytest.raises(CodecError, match=r"^series_ref 0 out of range: the series table has 0 rows$"):
        decode_metrics(msg)


def test_label_keys_values_length_mismatch():
    msg = columns(series=(CPU, REQS))
    msg.series[1].label_values.append("extra")
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == "series 1 ('http.requests'): 1 label keys != 2 values"


@pytest.mark.parametrize("count", [0, 3, 5, 9])
def test_wrong_bucket_counts_count(count):
    # two LAT points need 2 * (3 bounds + 1) = 8 counts
    msg = columns(series=(LAT,), buckets=np.arange(count, dtype="<u8").tobytes())
    with pytest.raises(CodecError) as exc:
        decode_metrics(msg)
    assert str(exc.value) == f"bucket_counts: {count} values != 8 the histogram points need"


def test_bucket_counts_without_histograms():
    msg = columns(series=(CPU,), buckets=struct.pack("<Q", 1))
    with pytest.raises(CodecError, match=r"^bucket_counts: 1 values != 0 the histogram points need$"):
        decode_metrics(msg)


def test_bucket_counts_only_count_histogram_points():
    # CPU, LAT, CPU, ONE_BOUND -> 4 + 2 = 6 counts; histogram series present but unreferenced costs nothing
    b = batch(
        [CPU, LAT, ONE_BOUND, SeriesDef("unused", HISTOGRAM, bounds=(1.0, 2.0))],
        [0, 1, 0, 2],
        range(4),
        [0.0] * 4,
        [1, 1, 1, 1, 2, 2],
    )
    assert_same(roundtrip(b), b)
    msg = encode_metrics(b)
    msg.bucket_counts = msg.bucket_counts[:-8]
    with pytest.raises(CodecError, match=r"^bucket_counts: 5 values != 6 the histogram points need$"):
        decode_metrics(msg)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xff\xff\xff",  # invalid tag / varint
        b"\x0a\x05ab",  # length-delimited field longer than the buffer
        b"\x12\x80",  # truncated varint length
        b"\x0b",  # start-group wire type with no end
    ],
)
def test_decode_payload_garbage(raw):
    with pytest.raises(CodecError) as exc:
        decode_payload(raw)
    assert str(exc.value).startswith(f"payload of {len(raw)} bytes is not a ferry.v1.Payload: ")


def test_codec_error_is_value_error():
    assert issubclass(CodecError, ValueError)
