"""Where the wire bytes of a host-metrics frame go, and what stateful stream encodings would save
(issue 7: `wire_bytes_per_point` <= 3.0 at the agent's defaults, one 10 s cycle per frame).

Uses the real SystemCollector on this host and the agent's own encoding path, as bench/wire.py
does: points go through `Batcher` (Accumulator → `encode_columns` → `pack_payload`) and
`pack_frame` (lz4 frame); bytes on the wire are `Frame.ByteSize()` (the gRPC 5-byte message
prefix and HTTP/2 framing are not counted, as in bench/wire.py). Collection cycles are recorded
once, `--sleep` seconds of real time apart (default 10, the agent's pace: fewer seconds make
values move less and processes churn less between cycles, and every encoding looks better than it
is, most of all the stateful ones; bench/wire.py collects back to back), stamped 10 s apart, and
replayed into every candidate so all see the same consecutive frames.

It reports:
  1. the compressed bytes of a default frame (one cycle) by part: series identity (names, label
     keys and values, units, kinds), the resource, series refs, timestamps, values, protobuf
     tags and lengths, the Frame envelope and the lz4 frame format's own bytes: each part lz4'd
     alone, the bytes saved by zeroing only that part, and a waterfall zeroing parts in turn;
  2. B/pt of candidate encodings on the recorded consecutive frames, simulated (the protocol is
     not changed): (a) more cycles per frame; payload transforms (b) a per-stream series
     dictionary, (c) values XOR'd or delta'd against the series' previous value, their
     combination (e), optionally byte-shuffled values; each compressed per frame (lz4 frame, as
     now) or (d) as an lz4 block with the previous frame's uncompressed payload as dictionary.
     Every stateful encoding is decoded back by a simulated collector and checked equal; the
     first frame of a stream is a self-contained key frame and is reported apart.

Run: `.venv/bin/python -m bench.wirestudy` (32 cycles 10 s apart: about 5.5 minutes; use
`--cycles 62` for two 30-cycle frames, `--sleep 1` for a quick and optimistic look);
`--save F` / `--load F` keep a recording (pickle) to rerun the analysis; `--json` prints the
numbers as one JSON object. Also reported: the same key candidates on a simulated 4x wider host
(frames past lz4's 64 KiB reach) and without the process.* series (no process churn), and the
bytes the values alone need.
"""

from __future__ import annotations

import argparse
import itertools
import json
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import lz4.block
import lz4.frame
import numpy as np
from google.protobuf import unknown_fields

try:
    from backports import zstd  # clickhouse-connect's dependency: only for the reference rows
except ImportError:  # pragma: no cover
    zstd = None

from ferry.agent.batcher import Batcher
from ferry.agent.collectors.system import SystemCollector
from ferry.series import SeriesDef
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.frames import pack_frame

INTERVAL_MS = 10_000
AGENT_ID = "bench-agent"
RESOURCE = payload_pb2.Resource(host="bench-host", agent_id=AGENT_ID, agent_version="bench")
LZ4_WINDOW = 64 * 1024  # lz4 matches reach back at most this far: a longer dictionary is cut to its tail

Cycle = tuple[int, list[tuple[SeriesDef, float]]]  # time_ms, the points emitted in that cycle


# -- recording and replay ----------------------------------------------------------------------


def record(cycles: int, sleep_s: float, log: Callable[[str], None] = lambda s: None) -> list[Cycle]:
    """`cycles` collection cycles of the real host collectors, `sleep_s` apart, stamped 10 s apart
    on the interval grid (the collectors hand out the same SeriesDef objects every cycle, and a
    pickle of the recording keeps them shared)."""
    collector = SystemCollector()
    t = int(time.time() * 1000) // INTERVAL_MS * INTERVAL_MS
    collector.collect(t - INTERVAL_MS, lambda s, v: None)  # prime rates, as a running agent would be
    out: list[Cycle] = []
    try:
        for i in range(cycles):
            time.sleep(sleep_s)
            points: list[tuple[SeriesDef, float]] = []
            collector.collect(t, lambda s, v, points=points: points.append((s, v)))
            out.append((t, points))
            log(f"cycle {i + 1}/{cycles}: {len(points)} points")
            t += INTERVAL_MS
    finally:
        collector.close()
    return out


def widen(recording: list[Cycle], copies: int, stride: int = 5) -> list[Cycle]:
    """A host `copies` times as wide (more CPUs, disks, processes): every series again under a
    `copy` label, copy i taking its values from the cycle i * stride later, so each copy moves from
    frame to frame as the real host does between consecutive cycles (no wrap-around: the result is
    (copies - 1) * stride cycles shorter)."""
    made: dict[tuple[int, int], tuple[SeriesDef, SeriesDef]] = {}

    def copy_of(s: SeriesDef, i: int) -> SeriesDef:
        hit = made.get((id(s), i))
        if hit is None:
            labels = tuple(sorted((*s.labels, ("copy", str(i)))))
            hit = made[(id(s), i)] = (s, replace(s, labels=labels))  # holds s: its id stays its own
        return hit[1]

    out: list[Cycle] = []
    for f in range(len(recording) - (copies - 1) * stride):
        points = []
        for i in range(copies):
            points.extend((copy_of(s, i) if i else s, v) for s, v in recording[f + i * stride][1])
        out.append((recording[f][0], points))
    return out


@dataclass
class Cut:
    payload: bytes  # the serialized Payload, as the Batcher hands it to the spool
    points: int


def replay(recording: list[Cycle], cycles_per_frame: int) -> list[Cut]:
    """The recording through the agent's Batcher, one frame per `cycles_per_frame` cycles (a
    trailing partial frame is dropped)."""
    cuts: list[Cut] = []
    batcher = Batcher(RESOURCE, lambda p, n: cuts.append(Cut(p, n)), max_points=10**9, max_age_s=1e9)
    usable = len(recording) - len(recording) % cycles_per_frame
    for i, (t, points) in enumerate(recording[:usable]):
        emit = batcher.emitter(t)  # as Agent.collect_once does
        for series, value in points:
            emit(series, value)
        batcher.settle()
        if (i + 1) % cycles_per_frame == 0:
            batcher.cut()
    return cuts


def frame_bytes(seq: int, body: bytes, raw_size: int, points: int, extra: int = 0) -> int:
    """Wire size of a Frame carrying `body`, plus `extra` bytes of fields the proto lacks today."""
    frame = ingest_pb2.Frame(
        agent_id=AGENT_ID,
        epoch=0x5EED5EED5EED5EED,
        seq=seq,
        encoding=ingest_pb2.LZ4_FRAME,
        raw_size=raw_size,
        payload=body,
        point_count=points,
    )
    return frame.ByteSize() + extra


def varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def ld(field_number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(field_number << 3 | 2) + _varint(len(data)) + data


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


# -- 1. breakdown of one frame -------------------------------------------------------------------

PARTS = (
    "names",
    "label keys",
    "label values",
    "units",
    "kinds",
    "series table tags/lengths",
    "resource",
    "series_ref",
    "timestamps",
    "values",
    "protobuf tags/lengths",  # outside the series table
)
IDENTITY = PARTS[:7]
_OVERHEAD = PARTS.index("protobuf tags/lengths")
_SERIES_OVERHEAD = PARTS.index("series table tags/lengths")
# message -> field number -> part name, or a nested message's table
_SERIES = {1: "names", 2: "kinds", 3: "units", 4: "label keys", 5: "label values", 6: "kinds"}  # 6: bounds
_COLUMNS = {
    1: _SERIES,
    2: "protobuf tags/lengths",
    3: "series_ref",
    4: "timestamps",
    5: "values",
    6: "values",
}
_PAYLOAD = {1: "resource", 2: _COLUMNS, 3: "resource", 4: "resource"}


def label_bytes(raw: bytes) -> bytearray:
    """For each byte of a serialized Payload, the index in PARTS of what it encodes."""
    labels = bytearray(len(raw))
    _walk(raw, 0, len(raw), _PAYLOAD, labels)
    return labels


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _walk(buf: bytes, i: int, end: int, table: dict, labels: bytearray) -> None:
    while i < end:
        start = i
        key, i = _read_varint(buf, i)
        number, wire_type = key >> 3, key & 7
        what = table.get(number, "protobuf tags/lengths")
        if wire_type == 0:
            _, j = _read_varint(buf, i)
        elif wire_type == 1:
            j = i + 8
        elif wire_type == 5:
            j = i + 4
        elif wire_type == 2:
            size, i = _read_varint(buf, i)
            j = i + size
        else:
            raise ValueError(f"wire type {wire_type} at byte {start}")
        overhead = _SERIES_OVERHEAD if _SERIES in (table, what) else _OVERHEAD
        labels[start:i] = bytes([overhead]) * (i - start)
        if isinstance(what, dict):
            _walk(buf, i, j, what, labels)
        else:
            labels[i:j] = bytes([PARTS.index(what)]) * (j - i)
        i = j


def _zeroed(raw: bytes, labels: bytearray, parts: set[int]) -> bytes:
    mask = np.isin(np.frombuffer(labels, np.uint8), list(parts))
    out = np.frombuffer(raw, np.uint8).copy()
    out[mask] = 0
    return out.tobytes()


def _block(data: bytes) -> int:
    return len(lz4.block.compress(data, store_size=False))


def breakdown(cut: Cut, seq: int) -> dict:
    """Bytes of one frame by part (see the module docstring)."""
    raw = cut.payload
    labels = label_bytes(raw)
    arr = np.frombuffer(raw, np.uint8)
    lab = np.frombuffer(labels, np.uint8)
    body = lz4.frame.compress(raw, store_size=True)
    block = _block(raw)
    wire = frame_bytes(seq, body, len(raw), cut.points)
    parts = {}
    cumulative: set[int] = set()
    before = block
    for k, name in enumerate(PARTS):
        cumulative.add(k)
        after = _block(_zeroed(raw, labels, cumulative))
        parts[name] = {
            "raw": int((lab == k).sum()),
            "alone": _block(arr[lab == k].tobytes()),
            "zeroed_saves": block - _block(_zeroed(raw, labels, {k})),
            "waterfall": before - after,
        }
        before = after
    return {
        "points": cut.points,
        "wire": wire,
        "raw": len(raw),
        "parts": parts,
        "all_zeroed_floor": before,
        "lz4_frame_format": len(body) - block,
        "frame_envelope": wire - len(body),
    }


# -- 2. candidate encodings ----------------------------------------------------------------------


@dataclass
class Transform:
    """A payload transform simulated on a decoded Payload: `dictionary` sends series identity and
    the resource once per stream (series_ref then indexes the stream's table, delta-coded),
    `values` is raw, xor or delta (int64 bit patterns, lossless) against the previous value of the
    same series on the stream, `shuffle` stores the value column byte-plane by byte-plane."""

    dictionary: bool = False
    values: str = "raw"
    shuffle: bool = False
    ref_delta: bool = False  # series_ref as int32 deltas (stateless; the dictionary always does it)

    @property
    def name(self) -> str:
        bits = []
        if self.dictionary:
            bits.append("series dictionary")
        elif self.ref_delta:
            bits.append("series_ref delta-coded (stateless)")
        if self.values != "raw":
            bits.append(f"values {self.values} vs previous")
        if self.shuffle:
            bits.append("byte-shuffled values")
        return " + ".join(bits) or "none (today's payload)"

    @property
    def stateful(self) -> bool:
        return self.dictionary or self.values != "raw"


@dataclass
class StreamState:
    """What one side of a stream holds for a Transform (the agent's and the collector's are equal
    by construction; the decoder rebuilds its own from the frames alone)."""

    index: dict[bytes, int] = field(default_factory=dict)  # series message bytes -> stream index
    table: list[bytes] = field(default_factory=list)
    last: dict[bytes, int] = field(default_factory=dict)  # series identity -> previous value bits
    resource: bytes | None = None


_MASK = (1 << 64) - 1


def _code_value(mode: str, bits: int, prev: int) -> int:
    if mode == "xor":
        return bits ^ prev
    return (bits - prev) & _MASK  # "delta"


def _uncode_value(mode: str, coded: int, prev: int) -> int:
    if mode == "xor":
        return coded ^ prev
    return (coded + prev) & _MASK


def _shuffle(data: bytes, width: int = 8) -> bytes:
    return np.frombuffer(data, np.uint8).reshape(-1, width).T.tobytes()


def _unshuffle(data: bytes, width: int = 8) -> bytes:
    return np.frombuffer(data, np.uint8).reshape(width, -1).T.tobytes()


def encode(tr: Transform, state: StreamState, raw: bytes) -> bytes:
    """Today's serialized Payload → the transformed one (a Payload whose MetricColumns fields are
    reused with the meaning the Transform gives them; a dictionary frame adds field 7, the stream
    index of its first new series)."""
    if not (tr.stateful or tr.shuffle or tr.ref_delta):
        return raw
    payload = payload_pb2.Payload.FromString(raw)
    mc = payload.metrics
    series = [s.SerializeToString() for s in mc.series]
    refs = np.frombuffer(mc.series_ref, "<u4")
    values = np.frombuffer(mc.value, "<u8")
    keys = [series[r] for r in refs]
    out = payload_pb2.MetricColumns(
        point_count=mc.point_count, time_ms=mc.time_ms, bucket_counts=mc.bucket_counts
    )
    extra = b""
    if tr.dictionary:
        base = len(state.table)
        for s, msg in zip(series, mc.series, strict=True):
            if s not in state.index:
                state.index[s] = len(state.table)
                state.table.append(s)
                out.series.append(msg)
        stream_refs = np.array([state.index[k] for k in keys], np.int64)
        out.series_ref = np.diff(stream_refs, prepend=0).astype("<i4").tobytes()
        extra = _varint(7 << 3) + _varint(base)
    else:
        out.series.extend(mc.series)
        out.series_ref = np.diff(refs, prepend=0).astype("<i4").tobytes() if tr.ref_delta else mc.series_ref
    if tr.values != "raw":
        coded = []
        for k, bits in zip(keys, values.tolist(), strict=True):
            coded.append(_code_value(tr.values, bits, state.last.get(k, 0)))
            state.last[k] = bits
        column = np.array(coded, np.uint64).astype("<u8").tobytes()
    else:
        column = mc.value
    out.value = _shuffle(column) if tr.shuffle else column
    head = b""
    resource = payload.resource.SerializeToString()
    if not tr.dictionary or state.resource != resource:
        head = ld(1, resource)  # the dictionary sends the resource when it is new on the stream
        state.resource = resource
    return head + ld(2, out.SerializeToString() + extra)


def decode(tr: Transform, state: StreamState, data: bytes) -> tuple[bytes, list[bytes], bytes, bytes]:
    """The collector's side: (resource, series identity per point, time_ms column, value column as
    today's payload has them), from the transformed payload and the stream state alone."""
    payload = payload_pb2.Payload.FromString(data)
    mc = payload.metrics
    if payload.HasField("resource"):
        state.resource = payload.resource.SerializeToString()
    resource = state.resource if tr.dictionary else payload.resource.SerializeToString()
    column = _unshuffle(mc.value) if tr.shuffle else mc.value
    if tr.dictionary:
        base = _unknown_varint(mc, 7)
        if base != len(state.table):
            raise ValueError(f"frame's series start at {base}, the stream table holds {len(state.table)}")
        state.table.extend(s.SerializeToString() for s in mc.series)
        refs = np.cumsum(np.frombuffer(mc.series_ref, "<i4").astype(np.int64))
        keys = [state.table[r] for r in refs]
    else:
        series = [s.SerializeToString() for s in mc.series]
        refs = np.frombuffer(mc.series_ref, "<u4")
        if tr.ref_delta:
            refs = np.cumsum(np.frombuffer(mc.series_ref, "<i4").astype(np.int64))
        keys = [series[r] for r in refs]
    if tr.values != "raw":
        bits = []
        for k, coded in zip(keys, np.frombuffer(column, "<u8").tolist(), strict=True):
            v = _uncode_value(tr.values, coded, state.last.get(k, 0))
            state.last[k] = v
            bits.append(v)
        column = np.array(bits, np.uint64).astype("<u8").tobytes()
    return resource or b"", keys, mc.time_ms, column


def _unknown_varint(msg, number: int) -> int:
    for f in unknown_fields.UnknownFieldSet(msg):
        if f.field_number == number:
            return f.data
    raise ValueError(f"field {number} missing")


def today_view(raw: bytes) -> tuple[bytes, list[bytes], bytes, bytes]:
    payload = payload_pb2.Payload.FromString(raw)
    mc = payload.metrics
    series = [s.SerializeToString() for s in mc.series]
    keys = [series[r] for r in np.frombuffer(mc.series_ref, "<u4")]
    return payload.resource.SerializeToString(), keys, mc.time_ms, mc.value


CODECS = {
    "lz4": "lz4 frame",
    "lz4-prev": "lz4 block, previous frame as dict",
    "zstd-prev": "zstd -3, previous frame as dict (reference)",
}


def run_stream(tr: Transform, cuts: list[Cut], codec: str) -> dict:
    """Send `cuts` as one stream: transformed by `tr`, then each frame lz4'd alone (an lz4 frame,
    as today), or ("lz4-prev") as an lz4 block whose dictionary is the previous frame's
    (transformed, uncompressed) payload, or ("zstd-prev", for reference: the collector has zstd
    through clickhouse-connect, the agent does not) zstd with that dictionary; the first frame is a
    self-contained key frame. Every frame is decoded by a simulated collector and checked against
    the Batcher's payload."""
    agent, collector = StreamState(), StreamState()
    prev: bytes | None = None
    sizes = []
    for seq, cut in enumerate(cuts, start=1):
        data = encode(tr, agent, cut.payload)
        # a dictionary frame adds the seq of the frame it was coded against (field `dict_seq`)
        extra = 1 + varint_len(seq - 1)
        if codec == "lz4-prev" and prev is not None:
            dictionary = prev[-LZ4_WINDOW:]
            body = lz4.block.compress(data, dict=dictionary, store_size=False)
            wire = frame_bytes(seq, body, len(data), cut.points, extra)
            opened = lz4.block.decompress(body, uncompressed_size=len(data), dict=dictionary)
        elif codec == "zstd-prev" and prev is not None:
            zdict = zstd.ZstdDict(prev, is_raw=True)
            body = zstd.compress(data, level=3, zstd_dict=zdict)
            wire = frame_bytes(seq, body, len(data), cut.points, extra)
            opened = zstd.decompress(body, zstd_dict=zdict)
        else:
            body = lz4.frame.compress(data, store_size=True)
            wire = frame_bytes(seq, body, len(data), cut.points)
            opened = lz4.frame.decompress(body)
        if opened != data:
            raise AssertionError(f"{tr.name}: frame {seq} does not decompress to what was sent")
        if decode(tr, collector, opened) != today_view(cut.payload):
            raise AssertionError(f"{tr.name}: frame {seq} does not decode to the Batcher's payload")
        prev = data
        sizes.append(wire)
    points = [c.points for c in cuts]
    return {
        "key_frame_bytes": sizes[0],
        "key_frame_b_per_pt": sizes[0] / points[0],
        "steady_b_per_pt": sum(sizes[1:]) / sum(points[1:]),
        "steady_frame_bytes_median": statistics.median(sizes[1:]),
        "all_b_per_pt": sum(sizes) / sum(points),
        "frames": len(cuts),
    }


TRANSFORMS = (
    Transform(),
    Transform(ref_delta=True),
    Transform(ref_delta=True, values="xor"),
    Transform(dictionary=True),
    Transform(values="xor"),
    Transform(values="delta"),
    Transform(values="xor", shuffle=True),
    Transform(dictionary=True, values="xor"),
    Transform(dictionary=True, values="delta"),
    Transform(dictionary=True, values="xor", shuffle=True),
    Transform(shuffle=True),
)


STATE_NOTES = (
    "series dictionary: the stream's series table (identity -> index, grows with churn; capped, a "
    "full-table key frame resets it) and the resource; the agent sends new series as they appear",
    "values xor/delta vs previous: the last value (64 bits) of every series seen on the stream",
    "lz4 block with the previous frame as dictionary: the previous frame's uncompressed payload "
    f"(only its last {LZ4_WINDOW // 1024} KiB is usable: lz4 matches reach back no further)",
    "all: the first frame of a stream (every resend after a reconnect or collector restart) is "
    "self-contained; the collector advances the state for every frame it receives, duplicates too",
)
WIDE_COPIES = 4
KEY_CANDIDATES = (
    (Transform(), "lz4"),
    (Transform(), "lz4-prev"),
    (Transform(dictionary=True), "lz4"),
    (Transform(dictionary=True, values="delta"), "lz4"),
    (Transform(dictionary=True, values="delta"), "lz4-prev"),
    (Transform(dictionary=True, values="delta"), "zstd-prev"),
)


def _candidate(tr: Transform, cuts: list[Cut], codec: str) -> dict:
    row = run_stream(tr, cuts, codec)
    row.update(transform=tr.name, compression=CODECS[codec])
    return row


def _new_series_per_frame(recording: list[Cycle]) -> float:
    """Series (by content) not seen in any earlier cycle, per cycle after the first."""
    seen: set[SeriesDef] = set(s for s, _ in recording[0][1])
    new = 0
    for _, points in recording[1:]:
        fresh = {s for s, _ in points} - seen
        new += len(fresh)
        seen |= fresh
    return new / max(1, len(recording) - 1)


def _changed_per_frame(recording: list[Cycle]) -> float:
    """Points whose series had a different value in the cycle before, per cycle after the first."""
    changed = 0
    for (_, before), (_, points) in itertools.pairwise(recording):
        last = dict(before)
        changed += sum(1 for s, v in points if s in last and last[s] != v)
    return changed / max(1, len(recording) - 1)


def value_floor(recording: list[Cycle]) -> dict:
    """Bytes per frame (one cycle) that the values alone need, coded against the series' previous
    value: lz4 of the XOR'd column, and an estimate for an ideal byte-aligned coder (unchanged: 2
    bits; integral before and after: zigzag varint of the difference; else the XOR's bytes between
    its leading and trailing zero bytes plus a header byte)."""
    last: dict[SeriesDef, float] = {}
    lz4_bytes = ideal_bits = points = 0
    for i, (_, cycle) in enumerate(recording):
        coded = []
        for series, v in cycle:
            prev = last.get(series, 0.0)
            last[series] = v
            x = int(np.float64(v).view(np.uint64)) ^ int(np.float64(prev).view(np.uint64))
            coded.append(x)
            if i == 0:
                continue
            points += 1
            if v == prev:
                ideal_bits += 2
            elif float(v).is_integer() and float(prev).is_integer() and abs(v) < 2**53:
                d = int(v) - int(prev)
                ideal_bits += 2 + 8 * varint_len(abs(d) * 2)
            else:
                body = x.to_bytes(8, "big").strip(b"\0")
                ideal_bits += 2 + 8 * (1 + len(body))
        if i:
            lz4_bytes += len(lz4.block.compress(np.array(coded, "<u8").tobytes(), store_size=False))
    frames = max(1, len(recording) - 1)
    return {
        "xor_lz4_b_per_frame": lz4_bytes / frames,
        "ideal_b_per_frame": ideal_bits / 8 / frames,
        "points_per_frame": points / frames,
    }


MULTI_CYCLE = (
    (Transform(), "lz4-prev"),
    (Transform(dictionary=True, values="delta"), "lz4"),
    (Transform(dictionary=True, values="delta"), "lz4-prev"),
)


def cycles_per_frame(recording: list[Cycle], choices: tuple[int, ...] = (1, 3, 6, 30)) -> list[dict]:
    """(a): the agent's encoding unchanged, `n` cycles per frame. A point waits in the open batch
    until its frame is cut: up to n intervals for the oldest, (n - 1) / 2 more on average."""
    rows = []
    for n in choices:
        cuts = replay(recording, n)
        if len(cuts) < 1:
            continue
        frames = [pack_frame(AGENT_ID, 1, i, c.payload, c.points) for i, c in enumerate(cuts, start=1)]
        points = sum(c.points for c in cuts)
        rows.append(
            {
                "cycles_per_frame": n,
                "frames": len(cuts),
                "b_per_pt": sum(f.ByteSize() for f in frames) / points,
                "raw_b_per_pt": sum(len(c.payload) for c in cuts) / points,
                "oldest_point_wait_s": n * INTERVAL_MS / 1000,
                "added_mean_latency_s": (n - 1) / 2 * INTERVAL_MS / 1000,
                "stateful": {
                    f"{tr.name}, {CODECS[c]}": run_stream(tr, cuts, c)["steady_b_per_pt"]
                    if len(cuts) > 1
                    else None
                    for tr, c in MULTI_CYCLE
                },
            }
        )
    return rows


# -- report ---------------------------------------------------------------------------------------


def study(recording: list[Cycle]) -> dict:
    cuts = replay(recording, 1)
    if len(cuts) < 3:
        raise SystemExit(f"{len(cuts)} frames: record at least 3 cycles")
    per_frame = [breakdown(c, seq) for seq, c in enumerate(cuts, start=1)]

    def mean(get: Callable[[dict], float]) -> float:
        return statistics.fmean(get(b) for b in per_frame)

    parts = {
        name: {k: mean(lambda b, n=name, k=k: b["parts"][n][k]) for k in per_frame[0]["parts"][name]}
        for name in PARTS
    }
    summary = {
        k: mean(lambda b, k=k: b[k])
        for k in ("points", "wire", "raw", "all_zeroed_floor", "lz4_frame_format", "frame_envelope")
    }
    codecs = ("lz4", "lz4-prev") + (("zstd-prev",) if zstd is not None else ())
    candidates = [_candidate(tr, cuts, codec) for tr in TRANSFORMS for codec in codecs[:2]]
    candidates += [_candidate(tr, cuts, c) for tr, c in KEY_CANDIDATES if c == "zstd-prev" and zstd]
    variants = {}
    quiet = [(t, [(s, v) for s, v in points if not s.name.startswith("process.")]) for t, points in recording]
    for label, rec in (
        (f"every series {WIDE_COPIES} times (simulated from the recording)", widen(recording, WIDE_COPIES)),
        ("without process.* series (no process churn)", quiet),
    ):
        if len(rec) < 3:
            continue
        vcuts = replay(rec, 1)
        variants[label] = {
            "points_per_frame": statistics.fmean(c.points for c in vcuts),
            "raw_frame_bytes": statistics.fmean(len(c.payload) for c in vcuts),
            "new_series_per_frame": _new_series_per_frame(rec),
            "rows": [_candidate(tr, vcuts, c) for tr, c in KEY_CANDIDATES if c != "zstd-prev" or zstd],
        }
    return {
        "cycles_recorded": len(recording),
        "points_per_cycle": statistics.fmean(len(p) for _, p in recording),
        "series_seen": len({s for _, p in recording for s, _ in p}),
        "breakdown": {"frame": summary, "parts": parts},
        "cycles_per_frame": cycles_per_frame(recording),
        "candidates": candidates,
        "new_series_per_frame": _new_series_per_frame(recording),
        "values_changed_per_frame": _changed_per_frame(recording),
        "value_floor": value_floor(recording),
        "variants": variants,
    }


def print_report(r: dict, meta: dict) -> None:
    print(
        f"# wirestudy: {r['cycles_recorded']} cycles recorded {meta['sleep_s']:g} s apart "
        "(stamped 10 s apart), "
        f"{r['points_per_cycle']:.1f} points/cycle, {r['series_seen']} distinct series, "
        f"{r['new_series_per_frame']:.1f} new series and {r['values_changed_per_frame']:.0f} changed values "
        "per cycle\n"
    )
    f = r["breakdown"]["frame"]
    pts = f["points"]
    print(
        f"## 1. One default frame (1 cycle), mean over {r['cycles_recorded']} frames: {pts:.1f} points, "
        f"{f['raw']:.0f} B raw payload, {f['wire']:.0f} B on the wire = {f['wire'] / pts:.2f} B/pt\n"
    )
    print("| part | raw B | lz4 alone B | saved by zeroing it B | waterfall B | waterfall B/pt |")
    print("|---|---:|---:|---:|---:|---:|")
    parts = r["breakdown"]["parts"]
    for name in PARTS:
        p = parts[name]
        print(
            f"| {name} | {p['raw']:.0f} | {p['alone']:.0f} | {p['zeroed_saves']:.0f} | "
            f"{p['waterfall']:.0f} | {p['waterfall'] / pts:.2f} |"
        )
    ident = {k: sum(parts[n][k] for n in IDENTITY) for k in ("raw", "alone", "waterfall")}
    print(
        f"| *identity (names … resource)* | {ident['raw']:.0f} | {ident['alone']:.0f} | | "
        f"{ident['waterfall']:.0f} | {ident['waterfall'] / pts:.2f} |"
    )
    for label, key in (
        ("lz4 of the all-zero payload (floor)", "all_zeroed_floor"),
        ("lz4 frame format (header, block size, end mark)", "lz4_frame_format"),
        ("Frame envelope (agent_id, epoch, seq, sizes, tags)", "frame_envelope"),
    ):
        print(f"| {label} | | | | {f[key]:.0f} | {f[key] / pts:.2f} |")
    print(f"| **total** | {f['raw']:.0f} | | | {f['wire']:.0f} | {f['wire'] / pts:.2f} |\n")

    print("## 2a. More cycles per frame (encoding unchanged)\n")
    names = list(r["cycles_per_frame"][0]["stateful"])
    print(
        "| cycles/frame | frames | B/pt | raw B/pt | oldest point waits | added mean latency | "
        + " | ".join(f"B/pt with {n}" for n in names)
        + " |"
    )
    print("|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names))
    for row in r["cycles_per_frame"]:
        stateful = " | ".join("-" if v is None else f"{v:.2f}" for v in row["stateful"].values())
        print(
            f"| {row['cycles_per_frame']} | {row['frames']} | {row['b_per_pt']:.2f} | "
            f"{row['raw_b_per_pt']:.1f} | "
            f"{row['oldest_point_wait_s']:.0f} s | +{row['added_mean_latency_s']:.0f} s | {stateful} |"
        )
    vf = r["value_floor"]
    n, xor, ideal = vf["points_per_frame"], vf["xor_lz4_b_per_frame"], vf["ideal_b_per_frame"]
    print(
        f"\nValues alone, coded against the previous cycle, per 1-cycle frame of {n:.0f} points: "
        f"XOR + lz4 {xor:.0f} B ({xor / n:.2f} B/pt); an ideal byte-aligned value coder (estimate) "
        f"{ideal:.0f} B ({ideal / n:.2f} B/pt)."
    )
    print("\n## 2b-e. Stateful stream encodings at 1 cycle/frame (key frame = first frame of a stream)\n")
    _candidate_table(r["candidates"])
    print("\nState each stateful encoding needs, per gRPC stream, on both ends (reset when a stream starts):")
    for line in STATE_NOTES:
        print(f"- {line}")

    for label, v in r["variants"].items():
        print(
            f"\n## Variant: {label}: {v['points_per_frame']:.0f} points, "
            f"{v['raw_frame_bytes'] / 1024:.0f} KiB raw per frame "
            f"(lz4 reaches back {LZ4_WINDOW // 1024} KiB), "
            f"{v['new_series_per_frame']:.1f} new series per frame\n"
        )
        _candidate_table(v["rows"])


def _candidate_table(rows: list[dict]) -> None:
    print("| payload transform | compression | steady B/pt | median frame B | key frame B (B/pt) |")
    print("|---|---|---:|---:|---:|")
    for c in rows:
        print(
            f"| {c['transform']} | {c['compression']} | {c['steady_b_per_pt']:.2f} | "
            f"{c['steady_frame_bytes_median']:.0f} | {c['key_frame_bytes']} ({c['key_frame_b_per_pt']:.1f}) |"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=32, help="collection cycles to record")
    ap.add_argument("--sleep", type=float, default=10.0, help="real seconds between cycles (agent: 10)")
    ap.add_argument("--save", help="write the recording to this file (pickle)")
    ap.add_argument("--load", help="analyse a recording saved with --save instead of recording")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    args = ap.parse_args(argv)
    if args.load:
        with open(args.load, "rb") as f:
            saved = pickle.load(f)  # only load recordings you made
        recording, meta = saved["recording"], saved["meta"]
    else:
        recording = record(args.cycles, args.sleep, lambda s: print(s, file=sys.stderr, flush=True))
        meta = {"sleep_s": args.sleep, "recorded_at": time.time()}
        if args.save:
            with open(args.save, "wb") as f:
                pickle.dump({"recording": recording, "meta": meta}, f)
    result = study(recording)
    if args.json:
        print(json.dumps({"meta": meta, **result}, indent=1))
    else:
        print_report(result, meta)


if __name__ == "__main__":
    main()
