"""Serialized payload ⇄ `ferry.v1.Frame`: lz4 compression with size caps checked before allocating.

The agent calls `pack_frame`; the collector calls `check_frame` (sizes and the lz4 header, no
decompression: before dedup and before any memory is reserved for the frame) and then
`open_frame`. lz4 frames carry a content checksum (xxh32 of the payload), which the decompressor
verifies; frames of older agents have none and are still accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import lz4.frame
import zstandard

from ferry.v1 import ingest_pb2

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024  # compressed payload on the wire
DEFAULT_MAX_RAW_BYTES = 64 * 1024 * 1024  # serialized Payload after decompression
# what a Frame adds around its payload (its name and sizes, gRPC's framing), with room to spare
FRAME_ENVELOPE_BYTES = 1024 * 1024
# The frame size both sides agree on: the agent cuts a payload at about this many serialized
# bytes (passing it by at most 64 series or one record between checks, under 1 MiB), and lz4
# grows even incompressible bytes by under 0.5%, so an agent's frame stays below
# AGENT_FRAME_BYTES, which the collector's max_frame_bytes and max_raw_bytes may not be set below.
CUT_PAYLOAD_BYTES = 8 * 1024 * 1024
AGENT_FRAME_BYTES = CUT_PAYLOAD_BYTES + FRAME_ENVELOPE_BYTES


def receive_limit(max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> int:
    """The largest gRPC message an Ingest server takes (and an agent sends): a frame of
    `max_frame_bytes` with its envelope."""
    return max_frame_bytes + FRAME_ENVELOPE_BYTES


class FrameError(ValueError):
    """A frame that can never be accepted, or not now; `code` is the gRPC status to answer."""

    def __init__(self, message: str, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT):
        super().__init__(message)
        self.code = code


def pack_frame(
    agent_id: str, epoch: int, seq: int, payload: bytes, point_count: int, compress: bool = True
) -> ingest_pb2.Frame:
    if compress:
        body = lz4.frame.compress(payload, store_size=True, content_checksum=True)
        encoding = ingest_pb2.LZ4_FRAME
    else:
        body, encoding = payload, ingest_pb2.NONE
    return ingest_pb2.Frame(
        agent_id=agent_id,
        epoch=epoch,
        seq=seq,
        encoding=encoding,
        raw_size=len(payload),
        payload=body,
        point_count=point_count,
    )


@dataclass(frozen=True)
class FrameLimits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    max_raw_bytes: int = DEFAULT_MAX_RAW_BYTES


# lz4 cannot expand a byte to more than ~255 (a match of 255+ bytes costs one byte per 255):
# a body declaring more than this is a lie, found out without decompressing it
LZ4_MAX_RATIO = 256


def check_frame(frame: ingest_pb2.Frame, limits: FrameLimits) -> None:
    """Raise FrameError unless `frame`'s sizes and encoding are within `limits`; afterwards
    frame.raw_size is a checked bound on what decompressing it allocates. Reads the lz4 header
    only (a few bytes)."""
    size = len(frame.payload)
    if size > limits.max_frame_bytes:
        raise FrameError(f"frame payload {size} bytes > {limits.max_frame_bytes} allowed")
    if frame.raw_size > limits.max_raw_bytes:
        raise FrameError(f"frame raw_size {frame.raw_size} bytes > {limits.max_raw_bytes} allowed")
    if frame.encoding == ingest_pb2.NONE:
        if size != frame.raw_size:
            raise FrameError(f"frame raw_size {frame.raw_size} != payload size {size} for encoding NONE")
        return
    if frame.encoding == ingest_pb2.STREAM_ZSTD:
        check_stream_frame(frame, limits.max_raw_bytes)
        return
    if frame.encoding != ingest_pb2.LZ4_FRAME:
        raise FrameError(
            f"unknown frame encoding {frame.encoding} (known: NONE=0, LZ4_FRAME=1, STREAM_ZSTD=2)"
        )
    raw_size, max_raw = frame.raw_size, limits.max_raw_bytes
    declared = lz4_content_size(frame.payload)
    if declared == 0 and raw_size != 0:
        raise FrameError("lz4 frame does not declare its content size (compress with store_size=True)")
    if declared > max_raw:
        raise FrameError(f"lz4 frame declares {declared} bytes > {max_raw} allowed")
    if declared != raw_size:
        raise FrameError(f"lz4 frame declares {declared} bytes but frame raw_size is {raw_size}")
    if raw_size > LZ4_MAX_RATIO * size + 64:
        raise FrameError(
            f"lz4 frame of {size} bytes cannot hold the {raw_size} bytes it declares "
            f"(lz4 expands at most {LZ4_MAX_RATIO}x)"
        )


def check_stream_frame(frame: ingest_pb2.Frame, max_raw_bytes: int) -> None:
    """The size a STREAM_ZSTD frame declares, read from its zstd header (no decompression);
    decompressing it allocates at most that (`ferry.wire.streamdec`)."""
    try:
        declared = zstandard.frame_content_size(frame.payload)
    except zstandard.ZstdError as exc:
        raise FrameError(f"payload is not a zstd frame: {exc}") from None
    if declared < 0:
        raise FrameError("zstd frame does not declare its content size (compress with write_content_size)")
    if declared > max_raw_bytes:
        raise FrameError(f"zstd frame declares {declared} bytes > {max_raw_bytes} allowed")
    if declared != frame.raw_size:
        raise FrameError(f"zstd frame declares {declared} bytes but frame raw_size is {frame.raw_size}")


_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def lz4_content_size(body: bytes) -> int:
    """The content size an lz4 frame's header declares (0 when it declares none), read from its
    first bytes (the frame format: magic, FLG, BD, then the 8-byte size when FLG bit 3 is set);
    FrameError when `body` does not start with an lz4 frame header. The header's checksum is
    checked by the decompressor, which refuses a frame whose size it finds different."""
    if len(body) < 7 or body[:4] != _LZ4_MAGIC:
        raise FrameError("payload is not an lz4 frame: no lz4 frame magic number at its start")
    flags = body[4]
    if flags >> 6 != 1:
        raise FrameError(f"payload is not an lz4 frame: header version {flags >> 6}, not 1")
    if not flags & 0x08:
        return 0
    if len(body) < 15:
        raise FrameError("payload is not an lz4 frame: its header is cut short")
    return int.from_bytes(body[6:14], "little")


def open_frame(frame: ingest_pb2.Frame, limits: FrameLimits) -> bytes | bytearray:
    """Return the serialized Payload inside `frame`, or raise FrameError."""
    check_frame(frame, limits)
    if frame.encoding == ingest_pb2.NONE:
        return frame.payload
    if frame.encoding == ingest_pb2.STREAM_ZSTD:
        raise FrameError("a STREAM_ZSTD frame is read against its stream's state (ferry.wire.streamdec)")
    return _lz4_open(frame.payload, frame.raw_size)


# a payload above this is decompressed piece by piece into one buffer of the declared size:
# lz4's one-shot call builds its result in a buffer of its own and copies it, twice the memory
LZ4_CHUNK_BYTES = 4 * 1024 * 1024


def _lz4_open(body: bytes, declared: int) -> bytes | bytearray:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        if declared <= LZ4_CHUNK_BYTES:
            # max_length bounds the allocation even if the declared size lies
            raw: bytes | bytearray = decompressor.decompress(body, max_length=declared)
        else:
            raw = _lz4_pieces(decompressor, body, declared)
    except RuntimeError as exc:
        raise FrameError(f"lz4 frame is corrupt: {exc}") from None
    if len(raw) != declared or not decompressor.eof:
        raise FrameError(f"lz4 frame holds more or less than the declared {declared} bytes")
    if decompressor.unused_data:
        raise FrameError(f"{len(decompressor.unused_data)} bytes follow the lz4 frame of {declared} bytes")
    return raw


def _lz4_pieces(decompressor, body: bytes, declared: int) -> bytearray:
    raw, pos = bytearray(declared), 0
    piece = decompressor.decompress(body, max_length=LZ4_CHUNK_BYTES)
    while piece:
        if pos + len(piece) > declared:
            raise FrameError(f"lz4 frame holds more than the declared {declared} bytes")
        raw[pos : pos + len(piece)] = piece
        pos += len(piece)
        if decompressor.eof:
            break
        piece = decompressor.decompress(b"", max_length=LZ4_CHUNK_BYTES)
    if pos != declared:
        raise FrameError(f"lz4 frame holds {pos} bytes, not the declared {declared}")
    return raw
