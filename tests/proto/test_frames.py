"""ferry.wire.frames: pack_frame / open_frame and every way open_frame refuses a frame."""

from __future__ import annotations

import grpc
import lz4.frame
import pytest
import zstandard

from ferry.v1 import ingest_pb2
from ferry.wire.frames import (
    DEFAULT_MAX_FRAME_BYTES,
    DEFAULT_MAX_RAW_BYTES,
    FrameError,
    FrameLimits,
    check_frame,
    open_frame,
    pack_frame,
)

LIMITS = FrameLimits()
PAYLOAD = b"ferry:\x00\x01\x02 " * 100  # 1000 bytes, compressible


def frame(payload=PAYLOAD, compress=True, **overrides) -> ingest_pb2.Frame:
    f = pack_frame("agent-1", 3, 42, payload, 17, compress=compress)
    for k, v in overrides.items():
        setattr(f, k, v)
    return f


def refused(f: ingest_pb2.Frame, limits: FrameLimits = LIMITS) -> FrameError:
    with pytest.raises(FrameError) as exc:
        open_frame(f, limits)
    assert exc.value.code is grpc.StatusCode.INVALID_ARGUMENT
    return exc.value


# ---- round trips ---------------------------------------------------------------------------------


def test_defaults():
    assert DEFAULT_MAX_FRAME_BYTES == 16 * 1024 * 1024
    assert DEFAULT_MAX_RAW_BYTES == 64 * 1024 * 1024
    assert FrameLimits(DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_RAW_BYTES) == LIMITS


def test_pack_lz4_fields_and_roundtrip():
    f = frame()
    assert (f.agent_id, f.epoch, f.seq, f.point_count) == ("agent-1", 3, 42, 17)
    assert f.encoding == ingest_pb2.LZ4_FRAME
    assert f.raw_size == len(PAYLOAD) == 1000
    assert f.payload != PAYLOAD
    assert len(f.payload) < len(PAYLOAD)
    assert lz4.frame.get_frame_info(f.payload)["content_size"] == 1000
    assert open_frame(f, LIMITS) == PAYLOAD


def test_pack_none_fields_and_roundtrip():
    f = frame(compress=False)
    assert f.encoding == ingest_pb2.NONE
    assert f.payload == PAYLOAD
    assert f.raw_size == 1000
    assert open_frame(f, LIMITS) == PAYLOAD


def test_roundtrip_survives_serialization():
    for compress in (True, False):
        f = ingest_pb2.Frame.FromString(frame(compress=compress).SerializeToString())
        assert open_frame(f, LIMITS) == PAYLOAD


def test_incompressible_payload_roundtrip():
    data = bytes(range(256)) * 40 + b"\xff"
    assert open_frame(pack_frame("a", 1, 1, data, 0), LIMITS) == data


@pytest.mark.parametrize("compress", [True, False])
def test_empty_payload_roundtrip(compress):
    f = pack_frame("a", 1, 1, b"", 0, compress=compress)
    assert f.raw_size == 0
    assert open_frame(f, LIMITS) == b""


def test_exactly_at_limits_is_accepted():
    f = frame()
    limits = FrameLimits(max_frame_bytes=len(f.payload), max_raw_bytes=len(PAYLOAD))
    assert open_frame(f, limits) == PAYLOAD
    g = frame(compress=False)
    assert open_frame(g, FrameLimits(max_frame_bytes=1000, max_raw_bytes=1000)) == PAYLOAD


# ---- refusals ------------------------------------------------------------------------------------


def test_frame_error_default_code_and_override():
    assert FrameError("x").code is grpc.StatusCode.INVALID_ARGUMENT
    assert FrameError("x", grpc.StatusCode.RESOURCE_EXHAUSTED).code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert issubclass(FrameError, ValueError)


@pytest.mark.parametrize("compress", [True, False])
def test_payload_over_max_frame_bytes(compress):
    f = frame(compress=compress)
    size = len(f.payload)
    err = refused(f, FrameLimits(max_frame_bytes=size - 1))
    assert str(err) == f"frame payload {size} bytes > {size - 1} allowed"


@pytest.mark.parametrize("compress", [True, False])
def test_raw_size_over_max_raw_bytes(compress):
    err = refused(frame(compress=compress), FrameLimits(max_raw_bytes=999))
    assert str(err) == "frame raw_size 1000 bytes > 999 allowed"


def test_raw_size_lie_over_cap_checked_before_decompressing():
    err = refused(frame(raw_size=2**32 - 1))
    assert str(err) == f"frame raw_size {2**32 - 1} bytes > {DEFAULT_MAX_RAW_BYTES} allowed"


@pytest.mark.parametrize("encoding", [3, 7, 1000])
def test_unknown_encoding(encoding):
    err = refused(frame(encoding=encoding))
    assert str(err) == f"unknown frame encoding {encoding} (known: NONE=0, LZ4_FRAME=1, STREAM_ZSTD=2)"


def test_stream_frame_is_checked_by_its_zstd_header():
    """STREAM_ZSTD (2): the size its zstd header declares, read without decompressing."""
    err = refused(frame(encoding=2))  # an lz4 body
    assert str(err).startswith("payload is not a zstd frame: ")
    body = zstandard.ZstdCompressor(write_content_size=True).compress(b"x" * 1000)
    ok = ingest_pb2.Frame(agent_id="a", epoch=1, seq=1, encoding=2, raw_size=1000, payload=body)
    check_frame(ok, FrameLimits())
    ok.raw_size = 999
    assert str(refused(ok)) == "zstd frame declares 1000 bytes but frame raw_size is 999"
    ok.raw_size = 1000
    assert str(refused(ok, FrameLimits(max_raw_bytes=999))) == "frame raw_size 1000 bytes > 999 allowed"
    bare = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    unsized = bare.compress(b"x" * 1000) + bare.flush()
    err = refused(ingest_pb2.Frame(agent_id="a", epoch=1, seq=1, encoding=2, raw_size=1000, payload=unsized))
    assert str(err) == "zstd frame does not declare its content size (compress with write_content_size)"
    with pytest.raises(FrameError, match="read against its stream's state"):
        open_frame(ok, FrameLimits())


def test_none_encoding_size_mismatch():
    err = refused(frame(compress=False, raw_size=999))
    assert str(err) == "frame raw_size 999 != payload size 1000 for encoding NONE"


@pytest.mark.parametrize("garbage", [b"this is not an lz4 frame", b"", b"\x04\x22\x4d"])
def test_garbage_is_not_an_lz4_frame(garbage):
    err = refused(_with_payload(garbage, raw_size=5))
    assert str(err).startswith("payload is not an lz4 frame: ")


def _with_payload(body: bytes, raw_size: int) -> ingest_pb2.Frame:
    f = frame()
    f.payload = body
    f.raw_size = raw_size
    return f


def test_lz4_frame_without_content_size():
    body = lz4.frame.compress(PAYLOAD, store_size=False)
    assert lz4.frame.get_frame_info(body)["content_size"] == 0
    err = refused(_with_payload(body, 1000))
    assert str(err) == "lz4 frame does not declare its content size (compress with store_size=True)"


def test_lz4_declared_size_over_cap():
    # raw_size (a lie) passes the raw cap, but the frame header declares more than the cap
    body = lz4.frame.compress(b"a" * 5000, store_size=True)
    err = refused(_with_payload(body, 100), FrameLimits(max_frame_bytes=1024, max_raw_bytes=4096))
    assert str(err) == "lz4 frame declares 5000 bytes > 4096 allowed"


@pytest.mark.parametrize("raw_size", [999, 1001, 1])
def test_lz4_declared_size_differs_from_raw_size(raw_size):
    err = refused(frame(raw_size=raw_size))
    assert str(err) == f"lz4 frame declares 1000 bytes but frame raw_size is {raw_size}"


def test_truncated_lz4_frame_body():
    body = frame().payload
    for cut in (1, 4, 8):
        err = refused(_with_payload(body[:-cut], 1000))
        assert str(err) == "lz4 frame holds more or less than the declared 1000 bytes"


def test_truncated_lz4_frame_header():
    body = frame().payload
    err = refused(_with_payload(body[:6], 1000))
    assert str(err).startswith("payload is not an lz4 frame: ")


def test_corrupt_lz4_block_data():
    body = bytearray(lz4.frame.compress(bytes(range(256)) * 8, store_size=True, block_checksum=True))
    body[len(body) // 2] ^= 0xFF
    err = refused(_with_payload(bytes(body), 2048))
    assert str(err) == "lz4 frame is corrupt: LZ4F_decompress failed with code: ERROR_blockChecksum_invalid"


def test_lz4_frame_with_less_content_than_declared():
    # a frame header claiming 1000 bytes glued onto a frame that only holds 10
    header_1000 = lz4.frame.compress(PAYLOAD, store_size=True)
    small = lz4.frame.compress(b"0123456789", store_size=True)
    info = lz4.frame.get_frame_info(header_1000)
    assert info["content_size"] == 1000
    # same frame descriptor layout (flags, block descriptor, 8-byte size, header checksum) = 15 bytes
    hdr_len = 4 + 2 + 8 + 1
    err = refused(_with_payload(header_1000[:hdr_len] + small[hdr_len:], 1000))
    assert str(err) == "lz4 frame is corrupt: LZ4F_decompress failed with code: ERROR_frameSize_wrong"


@pytest.mark.parametrize("extra", [b"EXTRA", b"\x00"])
def test_lz4_frame_with_trailing_data(extra):
    f = frame()
    err = refused(_with_payload(f.payload + extra, 1000))
    assert "1000" in str(err)


def test_two_concatenated_lz4_frames():
    f = frame()
    refused(_with_payload(f.payload + lz4.frame.compress(b"smuggled", store_size=True), 1000))


def test_the_lz4_header_is_read_as_the_lz4_library_reads_it():
    import os

    import lz4.frame

    from ferry.wire.frames import lz4_content_size

    for n in (0, 1, 1000, 300_000):
        body = lz4.frame.compress(os.urandom(n), store_size=True)
        assert lz4_content_size(body) == lz4.frame.get_frame_info(body)["content_size"] == n
    assert lz4_content_size(lz4.frame.compress(b"abc", store_size=False)) == 0
    for bad, why in ((b"\x04\x22\x4d", "no lz4 frame magic"), (b"\x04\x22\x4d\x18\x00\x40\x00", "version 0")):
        with pytest.raises(FrameError, match=why):
            lz4_content_size(bad)
    with pytest.raises(FrameError, match="cut short"):
        lz4_content_size(lz4.frame.compress(b"abc", store_size=True)[:10])
