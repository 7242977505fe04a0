"""The stream encoding's codec (ferry.wire.streamenc → ferry.wire.streamdec): every sequence of
self-contained frames comes out of the stream decoder as the self-contained decoder reads it, bit
for bit; and what does not fit a stream's state is refused naming the value and the limit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.limits import Limits, RecordLimits
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, SeriesDef
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.codec import CodecError, decode_metrics, decode_payload, encode_payload
from ferry.wire.columns import MetricBatch
from ferry.wire.frames import FrameLimits, check_frame, open_frame, pack_frame
from ferry.wire.stream import DICTIONARY_BYTES, Bounds, accepted, requested
from ferry.wire.streamdec import StreamDecoder, uvarints
from ferry.wire.streamenc import StreamEncoder
from ferry.wire.streamenc import uvarints as encode_uvarints
from tests.framegen import varint

DEFAULT = Bounds()
RESOURCE = payload_pb2.Resource(host="h1", agent_id="a", agent_version="t")
POOL = (
    [SeriesDef("system.cpu.time", COUNTER, "s", (("cpu", str(i)), ("state", "user"))) for i in range(6)]
    + [SeriesDef("system.memory.usage", GAUGE, "By", (("state", s),)) for s in ("used", "free", "cached")]
    + [SeriesDef("app.requests", DELTA, "1", (("route", f"/r{i}"),)) for i in range(4)]
    + [
        SeriesDef("app.latency", HISTOGRAM, "s", (("route", "/"),), (0.1, 0.5, 1.0)),
        SeriesDef("app.size", HISTOGRAM, "By", (), (100.0,)),
    ]
)


def decoder(bounds: Bounds = DEFAULT, check=lambda s, i: None) -> StreamDecoder:
    return StreamDecoder(
        bounds, Limits(), RecordLimits(), check, lambda key, defs, *_: (key, len(defs)), 64 << 20
    )


def spooled(seq: int, points: list[tuple[int, int, float]], counts=None, **records) -> ingest_pb2.Frame:
    """A self-contained frame as the agent spools it: points (pool index, time ms, value)."""
    used = sorted({p[0] for p in points})
    where = {s: i for i, s in enumerate(used)}
    series = [POOL[s] for s in used]
    refs = np.array([where[p[0]] for p in points], dtype=np.uint32)
    times = np.array([p[1] for p in points], dtype=np.int64)
    values = np.array([p[2] for p in points], dtype=np.float64)
    buckets = []
    for s, _, _ in points:
        if POOL[s].kind == HISTOGRAM:
            buckets.extend(counts.pop(0) if counts else [1] * (len(POOL[s].bounds) + 1))
    batch = MetricBatch(series, refs, times, values, np.array(buckets, dtype=np.uint64))
    raw = encode_payload(RESOURCE, batch, **records)
    return pack_frame("a", 7, seq, raw, len(points))


def expected(frame: ingest_pb2.Frame):
    payload = decode_payload(open_frame(frame, FrameLimits()))
    return payload, decode_metrics(payload.metrics)


def same_points(got: MetricBatch, want: MetricBatch) -> None:
    assert [got.series[i] for i in got.series_ref.tolist()] == [
        want.series[i] for i in want.series_ref.tolist()
    ]
    assert got.time_ms.tolist() == want.time_ms.tolist()
    assert got.value.view(np.uint64).tolist() == want.value.view(np.uint64).tolist()  # bit for bit
    assert got.bucket_counts.tolist() == want.bucket_counts.tolist()


def roundtrip(frames: list[ingest_pb2.Frame], bounds: Bounds = DEFAULT) -> list[ingest_pb2.Frame]:
    enc, dec, sent = StreamEncoder(bounds), decoder(bounds), []
    for f in frames:
        out = enc.encode(f)
        if out is None:  # sent self-contained: the stream state does not move
            sent.append(f)
            continue
        assert out.encoding == ingest_pb2.STREAM_ZSTD and (out.epoch, out.seq) == (f.epoch, f.seq)
        assert out.point_count == f.point_count
        check_frame(out, FrameLimits())
        got = dec.decode(out)
        payload, batch = expected(f)
        same_points(got.batch, batch)
        assert got.payload.resource == payload.resource
        assert list(got.payload.events) == list(payload.events)
        assert list(got.payload.logs) == list(payload.logs)
        sent.append(out)
    return sent


VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60).map(float),
    st.integers(-(10**9), 10**9).map(lambda n: n / 100),
    st.sampled_from([0.0, -0.0, 1.0, 0.1, 1e300, -1e-300, 2.0**53, 2.0**53 + 2, 5e-324]),
)
POINT = st.tuples(st.integers(0, len(POOL) - 1), st.integers(-(2**40), 2**45), VALUES)
FRAMES = st.lists(st.lists(POINT, min_size=0, max_size=40), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FRAMES, st.integers(1, 20))
def test_any_frames_round_trip_bit_for_bit(frames, max_series):
    """Series come and go (churn), values of every kind (NaN, infinities, -0.0, subnormals,
    integers past 2^53, decimals), several points of a series in one frame, histograms; with
    dictionary bounds small enough to force resets and self-contained frames."""
    spool = [spooled(i + 1, pts) for i, pts in enumerate(frames)]
    roundtrip(spool, Bounds(max_series=max_series))


def test_a_hosts_cycles_cost_a_fraction_of_self_contained_frames():
    """Steady state: the same series every cycle, counters moving: after the first frame a
    frame carries no definitions and its values as small decimal differences."""
    frames, cpu = [], [1000.0 + i for i in range(6)]
    for cycle in range(10):
        t = 1_700_000_000_000 + cycle * 10_000
        cpu = [round(c + 0.37 * (i + 1), 2) for i, c in enumerate(cpu)]
        pts = [(i, t, cpu[i]) for i in range(6)] + [(6 + i, t, 2.0**30 + 4096 * cycle * i) for i in range(3)]
        frames.append(spooled(cycle + 1, pts))
    sent = roundtrip(frames)
    assert all(f.encoding == ingest_pb2.STREAM_ZSTD for f in sent)
    assert sum(len(f.payload) for f in sent[1:]) < 0.4 * sum(len(f.payload) for f in frames[1:])


def test_histograms_events_and_logs_only_frames():
    counts = [[1, 2, 3, 4], [5, 6], [0, 0, 0, 9]]
    frames = [
        spooled(1, [(13, 1000, 2.5), (14, 1000, 150.0), (13, 2000, 7.25)], counts=counts),
        spooled(2, [], events=[payload_pb2.Event(time_unix_ns=5, type="click", service="web")]),
        spooled(3, [], logs=[payload_pb2.LogRecord(time_unix_ns=6, level="warn", message="m" * 3000)]),
        spooled(4, [(13, 3000, 7.25)], counts=[[0, 1, 0, 0]]),
    ]
    roundtrip(frames)


def test_nan_travels_and_is_left_to_the_validator():
    """The codec carries every double as it is (as bits); refusing NaN is the validator's job,
    with the same message as for a self-contained frame."""
    from ferry.collector.validate import ValidationError, validate_batch

    frames = [spooled(1, [(0, 1000, 1.0)]), spooled(2, [(0, 2000, math.nan)])]
    enc, dec = StreamEncoder(Bounds()), decoder()
    dec.decode(enc.encode(frames[0]))
    got = dec.decode(enc.encode(frames[1]))
    assert math.isnan(got.batch.value[0])
    with pytest.raises(ValidationError, match=r"point 0 of 'system.cpu.time' has non-finite value nan"):
        validate_batch(got.batch, 2000, Limits(max_past_ms=10**15, max_future_ms=10**15))


def test_a_frame_past_the_bounds_alone_is_sent_self_contained_and_state_stays():
    enc = StreamEncoder(Bounds(max_series=3))
    first = enc.encode(spooled(1, [(0, 1, 1.0), (1, 1, 2.0)]))
    assert first is not None and len(enc.ids) == 2
    assert enc.encode(spooled(2, [(i, 2, 1.0) for i in range(4)])) is None  # 4 series > 3
    assert len(enc.ids) == 2 and enc.last[:2] == [1.0, 2.0]
    third = enc.encode(spooled(3, [(2, 3, 5.0), (3, 3, 6.0)]))  # 2 + 2 > 3: the dictionary starts again
    dec = decoder(Bounds(max_series=3))
    dec.decode(first)
    got = dec.decode(third)
    assert chain([first, third])[1].reset
    assert len(dec) == 2 and got.batch.value.tolist() == [5.0, 6.0]


def stream_frame(msg: payload_pb2.StreamPayload, seq: int = 1, dictionary: bytes = b"") -> ingest_pb2.Frame:
    raw = msg.SerializeToString()
    params = {"write_content_size": True}
    if dictionary:
        params["dict_data"] = zstandard.ZstdCompressionDict(
            dictionary, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
    body = zstandard.ZstdCompressor(**params).compress(raw)
    return ingest_pb2.Frame(
        agent_id="a", epoch=7, seq=seq, encoding=ingest_pb2.STREAM_ZSTD, raw_size=len(raw), payload=body
    )


def series_msg(i: int) -> payload_pb2.Series:
    return payload_pb2.Series(name=f"m.{i}", kind=GAUGE, label_keys=["k"], label_values=[str(i)])


def one_point(sid: int, **over) -> payload_pb2.StreamPayload:
    fields = dict(
        resource=RESOURCE,
        point_count=1,
        id_delta=encode_uvarints([sid * 2]),  # zigzag(sid - (-1) - 1)
        time_delta=encode_uvarints([2000]),
        value_mode=bytes([0]),
        value_delta=encode_uvarints([6]),
    )
    fields.update(over)
    return payload_pb2.StreamPayload(**fields)


def refused(dec: StreamDecoder, frame: ingest_pb2.Frame) -> str:
    with pytest.raises(CodecError) as err:
        dec.decode(frame)
    return str(err.value)


def test_a_reference_to_an_unknown_series_id_is_refused():
    dec = decoder()
    dec.decode(stream_frame(one_point(0, series=[series_msg(0)])))
    assert refused(dec, stream_frame(one_point(917, first_id=1), dictionary=dec.previous)) == (
        "point 0 refers to series id 917, not defined on this stream "
        "(its dictionary holds 1 series, ids 0..0)"
    )


def test_an_oversized_dictionary_is_refused_naming_the_bound():
    dec = decoder(Bounds(max_series=3, max_bytes=10_000))
    msg = one_point(0, series=[series_msg(i) for i in range(4)])
    assert (
        refused(dec, stream_frame(msg))
        == "stream dictionary would hold 4 series > 3 allowed (stream_max_series)"
    )
    big = payload_pb2.Series(name="m", kind=GAUGE, label_keys=["k"], label_values=["v" * 6000])
    msg = one_point(0, series=[big, big])
    assert refused(decoder(Bounds(max_bytes=10_000)), stream_frame(msg)) == (
        "stream dictionary would hold 15094 bytes of series definitions > 10000 allowed (stream_max_bytes)"
    )


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"first_id": 5}, "first_id 5 != 0, the series this stream's dictionary holds"),
        ({"value_mode": bytes([99])}, "point 0: value mode 99 is not one of 0..15, 254, 255"),
        ({"value_mode": b""}, "value_mode: 0 bytes != point_count 1"),
        ({"id_delta": b"\x80"}, "id_delta: 0 varints in 1 bytes != 1 expected (the last is cut short)"),
        ({"value_delta": b""}, "value_delta: 0 varints in 0 bytes != 1 expected"),
        (
            {"value_mode": bytes([255]), "value_delta": b""},
            "value_bits: 0 bytes != 8 for each of 1 points told as bits",
        ),
        ({"point_count": 0}, "id_delta holds bytes but point_count is 0"),
    ],
)
def test_malformed_columns_are_refused(over, message):
    msg = one_point(0, series=[series_msg(0)], **over)
    assert refused(decoder(), stream_frame(msg)) == message


def test_a_frame_compressed_against_another_state_is_refused():
    """A frame read against a previous payload other than its own (its stream's) fails the
    zstd content checksum, or does not parse: never a frame of wrong numbers."""
    enc = StreamEncoder(Bounds())
    first = enc.encode(spooled(1, [(0, 1000, 1.5), (1, 1000, 2.5)]))
    second = enc.encode(spooled(2, [(0, 2000, 1.75), (1, 2000, 2.5)]))
    other = decoder()
    other.decode(StreamEncoder(Bounds()).encode(spooled(1, [(2, 1000, 9.5), (3, 1000, 8.5)])))
    assert refused(other, second).startswith("zstd frame is corrupt or not of this stream: ")
    mine = decoder()
    mine.decode(first)
    assert mine.decode(second).batch.value.tolist() == [1.75, 2.5]


def test_a_definition_the_validator_refuses_ends_there():
    def check(series, index):
        raise CodecError(f"series {index} {series.name!r}: refused")

    dec = decoder(check=check)
    assert refused(dec, stream_frame(one_point(0, series=[series_msg(0)]))) == "series 0 'm.0': refused"
    assert len(dec) == 0


def test_varints_both_ways():
    values = [0, 1, 127, 128, 300, 2**32, 2**63, 2**64 - 1]
    raw = encode_uvarints(values)
    assert raw == b"".join(varint(v) for v in values)
    assert uvarints(raw, len(values), "x").tolist() == values
    assert uvarints(bytes([5, 6]), 2, "x").tolist() == [5, 6]


def test_negotiation_headers():
    assert requested([("ferry-stream-encoding", "1")]) and requested([("ferry-stream-encoding", "2, 1")])
    assert not requested([("ferry-stream-encoding", "2")]) and not requested(None)
    bounds = Bounds(10, 20)
    assert accepted(bounds.metadata()) == bounds
    assert accepted(()) is None  # an older collector says nothing
    assert accepted([("ferry-stream-encoding", "1"), ("ferry-stream-max-series", "x")]) is None


def chain(sent: list[ingest_pb2.Frame]) -> list[payload_pb2.StreamPayload]:
    """Each stream frame's StreamPayload, each decompressed with the one before as dictionary."""
    out, prev = [], b""
    for f in sent:
        params = {"dict_data": zstandard.ZstdCompressionDict(prev, dict_type=zstandard.DICT_TYPE_RAWCONTENT)}
        raw = zstandard.ZstdDecompressor(**(params if prev else {})).decompress(f.payload)
        out.append(payload_pb2.StreamPayload.FromString(raw))
        prev = raw[-DICTIONARY_BYTES:]
    return out


def test_decimal_values_are_exact_doubles():
    """Values told as decimals come back as the very double sent (0.1 * 3 is not 0.3)."""
    vals = [round(0.1 * i, 1) for i in range(1, 200)] + [123456.78, 99999999.99, 1e-6, 3.3]
    frames = [spooled(i + 1, [(6, 1000 + i, v)]) for i, v in enumerate(vals)]
    modes = [m.value_mode[0] for m in chain(roundtrip(frames))]
    assert all(m <= 15 for m in modes)
    # 0.1 * 3 is 0.30000000000000004, no short decimal: it goes as bits, and comes back as itself
    frames = [spooled(i + 1, [(6, 1000 + i, 0.1 * i)]) for i in range(1, 50)]
    modes = [m.value_mode[0] for m in chain(roundtrip(frames))]
    assert 255 in modes and any(m <= 15 for m in modes)


def test_stream_states_share_one_bound_and_give_it_back():
    from ferry.wire.streamdec import PoolFull, StatePool

    pool = StatePool(5_000)
    first = StreamDecoder(
        Bounds(), Limits(), RecordLimits(), lambda s, i: None, lambda *a: None, 64 << 20, pool=pool
    )
    first.decode(stream_frame(one_point(0, series=[series_msg(0), series_msg(1)])))
    held = pool.used
    assert held == 2 * 1536 + series_msg(0).ByteSize() + series_msg(1).ByteSize()
    second = StreamDecoder(
        Bounds(), Limits(), RecordLimits(), lambda s, i: None, lambda *a: None, 64 << 20, pool=pool
    )
    with pytest.raises(PoolFull, match=r"stream states hold \d+ bytes \+ \d+ for this frame > 5000 allowed"):
        second.decode(stream_frame(one_point(0, series=[series_msg(i) for i in range(2, 4)])))
    first.close()
    assert pool.used == 0
    second.decode(stream_frame(one_point(0, series=[series_msg(i) for i in range(2, 4)])))


def test_large_frames_go_self_contained():
    """Past MAX_ENCODED_POINTS the encoder declines (lz4 carries identity cheaply there, and the
    per-point Python would be paid again at every resend); the state does not move."""
    from ferry.wire.stream import MAX_ENCODED_POINTS

    enc = StreamEncoder(DEFAULT)
    big = spooled(1, [(i % 4, 1000 + i, 1.0) for i in range(MAX_ENCODED_POINTS + 1)])
    assert enc.encode(big) is None and enc.ids == {} and enc.previous == b""
    assert enc.encode(spooled(2, [(i % 4, 1000 + i, 1.0) for i in range(MAX_ENCODED_POINTS)])) is not None
