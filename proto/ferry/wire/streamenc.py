"""The agent's side of the stream encoding: a spooled, self-contained frame → a STREAM_ZSTD frame
against what the stream carried before it (`ferry.wire.stream` describes the state; the layout
is `ferry.v1.StreamPayload`'s). Standard library and zstd only: no numpy in the agent.

One `StreamEncoder` per stream, fed the frames in the order they are sent. `encode` either
returns the stream-encoded frame and advances the state, or returns None and leaves the state as
it was (the frame is then sent as it is, which every collector takes): a frame that holds more
series than the dictionary may, more than `MAX_ENCODED_POINTS` points, or one whose payload it
cannot read.

Per frame the work is a walk of the payload's top-level fields and, for each point, a few float
operations to tell its value against its series' last one; the series table is looked at only
when its bytes differ from the previous frame's (a host's table mostly does not change).
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
from array import array

import lz4.frame
import zstandard

from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.census import series_span
from ferry.wire.encode import _le
from ferry.wire.stream import (
    DICTIONARY_BYTES,
    EXACT,
    MAX_ENCODED_POINTS,
    MAX_SCALE,
    MODE_BITS,
    MODE_SAME,
    SCALES,
    ZSTD_LEVEL,
    Bounds,
    held_bytes,
)

_BIG = sys.byteorder != "little"
# the decimal scales tried for a value after its series' last one: integers first, then the
# scales host metrics use (cpu seconds 2, ratios 3-4); arbitrary floats fall through to XOR bits
_LADDER = (0, 1, 2, 3, 4, 5, 6)
_ORDER = {k: (k, *(j for j in _LADDER if j != k)) for k in range(MAX_SCALE + 1)}
# a series whose last value went as bits tries integers only before bits again: arbitrary floats
# (an app's latencies) would otherwise walk the whole ladder for nothing every time
AFTER_BITS = MAX_SCALE + 1
_ORDER[AFTER_BITS] = (0,)


def _load(raw: bytes, typecode: str) -> array:
    a = array(typecode)
    a.frombytes(raw)
    if _BIG:
        a.byteswap()
    return a


def uvarints(values) -> bytes:
    """Protobuf base-128 varints of non-negative ints, end to end."""
    if not values:
        return b""
    if max(values) < 0x80:
        return bytes(values)
    out = bytearray()
    put = out.append
    for v in values:  # most take one to three bytes: unrolled
        if v < 0x80:
            put(v)
        elif v < 0x4000:
            put((v & 0x7F) | 0x80)
            put(v >> 7)
        elif v < 0x200000:
            put((v & 0x7F) | 0x80)
            put(((v >> 7) & 0x7F) | 0x80)
            put(v >> 14)
        else:
            while v >= 0x80:
                put((v & 0x7F) | 0x80)
                v >>= 7
            put(v)
    return bytes(out)


def _wrap64(n: int) -> int:
    """`n` as a signed 64-bit int (mod 2^64), as the collector's int64 sums see it."""
    return n if -(2**63) <= n < 2**63 else (n + 2**63) % 2**64 - 2**63


def _bits(v: float) -> int:
    return int.from_bytes(array("d", [v]).tobytes(), sys.byteorder)


class StreamEncoder:
    """`decimal` and `carry` (values as decimal differences; the previous payload as the zstd
    dictionary) are on in production; off, they show what each step buys (bench/wire.py). The
    collector's decoder reads every combination."""

    def __init__(self, bounds: Bounds, level: int = ZSTD_LEVEL, decimal: bool = True, carry: bool = True):
        self.bounds = bounds
        self.level = level
        self.decimal = decimal
        self.carry = carry
        self.ids: dict[bytes, int] = {}  # a series' serialized definition → its id
        self.last: list[float] = []  # each id's last value (0.0 until it has one)
        self.scale: list[int] = []  # each id's last decimal scale, tried first
        self.defined_bytes = 0
        self.last_time = 0
        self.previous = b""  # the stream's previous StreamPayload: the next one's zstd dictionary
        self._table = b""  # the previous frame's series table bytes and its ids
        self._table_ids: list[int] = []

    def encode(self, frame: ingest_pb2.Frame) -> ingest_pb2.Frame | None:
        if frame.point_count > MAX_ENCODED_POINTS:
            return None
        try:
            made = self._encode(frame)
        except Exception:  # a spooled frame we cannot read: sent as it is, the collector judges it
            return None
        if made is None:
            return None
        data, compressed, reset, new, updates, last_time, ref_ids, table_bytes = made
        # the frame is encoded: the state moves on (and only now)
        if reset:
            self.ids.clear()
            self.last.clear()
            self.scale.clear()
            self.defined_bytes = 0
        for key, series in new:
            self.ids[key] = len(self.last)
            self.last.append(0.0)
            self.scale.append(0)
            self.defined_bytes += held_bytes(series.ByteSize())
        for sid, (value, k) in updates.items():
            self.last[sid] = value
            if k >= 0:
                self.scale[sid] = k
        self.last_time = last_time
        self.previous = data[-DICTIONARY_BYTES:]
        self._table, self._table_ids = table_bytes, ref_ids
        return ingest_pb2.Frame(
            agent_id=frame.agent_id,
            epoch=frame.epoch,
            seq=frame.seq,
            encoding=ingest_pb2.STREAM_ZSTD,
            raw_size=len(data),
            payload=compressed,
            point_count=frame.point_count,
        )

    def _encode(self, frame: ingest_pb2.Frame):
        """Everything `encode` sends, and the state it moves to, without moving it (None: the
        frame goes self-contained)."""
        raw = _open(frame)
        payload = payload_pb2.Payload.FromString(raw)
        planned = self._plan(raw, payload)
        if planned is None:
            return None
        reset, first_id, new, ref_ids, table_bytes = planned
        columns = self._columns(payload.metrics, ref_ids, reset)
        if columns is None:
            return None
        body, updates, last_time = columns
        out = payload_pb2.StreamPayload(
            resource=payload.resource,
            reset=reset,
            first_id=first_id,
            series=[s for _, s in new],
            point_count=payload.metrics.point_count,
            events=payload.events,
            logs=payload.logs,
            **body,
        )
        data = out.SerializeToString()
        if len(data) > max(frame.raw_size, len(raw)):
            return None  # larger than the frame itself (values that tell nothing): as it is
        return data, self._compress(data), reset, new, updates, last_time, ref_ids, table_bytes

    def _compress(self, data: bytes) -> bytes:
        params = {"level": self.level, "write_checksum": True, "write_content_size": True}
        if self.previous and self.carry:
            params["dict_data"] = zstandard.ZstdCompressionDict(
                self.previous, dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
            params["write_dict_id"] = False
        return zstandard.ZstdCompressor(**params).compress(data)

    def _plan(self, raw: bytes, payload: payload_pb2.Payload):
        """(reset, first_id, new series [(key, message)], the id of each table row, the table's
        bytes), or None when the frame's series alone are more than a dictionary may hold."""
        table = payload.metrics.series
        span = series_span(raw)
        table_bytes = bytes(raw[span[0] : span[1]]) if span is not None else None
        if table_bytes is not None and table_bytes == self._table and table_bytes:
            return False, len(self.last), [], self._table_ids, table_bytes
        keys = _entries(table_bytes) if table_bytes is not None else None
        if keys is None or len(keys) != len(table):
            keys = [s.SerializeToString() for s in table]
        plan = self._assign(keys, table, self.ids, len(self.last), self.defined_bytes)
        reset = False
        if plan is None:
            reset = True
            plan = self._assign(keys, table, {}, 0, 0)
            if plan is None:
                return None
        new, ref_ids = plan
        return reset, 0 if reset else len(self.last), new, ref_ids, table_bytes or b""

    def _assign(self, keys: list[bytes], table, ids: dict[bytes, int], size: int, used: int):
        new: list[tuple[bytes, payload_pb2.Series]] = []
        pending: dict[bytes, int] = {}
        ref_ids = []
        for key, series in zip(keys, table, strict=True):
            sid = ids.get(key)
            if sid is None:
                sid = pending.get(key)
                if sid is None:
                    sid = pending[key] = size + len(new)
                    new.append((key, series))
                    used += held_bytes(series.ByteSize())
            ref_ids.append(sid)
        if size + len(new) > self.bounds.max_series or used > self.bounds.max_bytes:
            return None
        return new, ref_ids

    def _columns(self, metrics: payload_pb2.MetricColumns, ref_ids: list[int], reset: bool):
        n = metrics.point_count
        if metrics.series_ref_delta:
            refs = list(itertools.accumulate(_load(metrics.series_ref_delta, "i")))
        else:
            refs = _load(metrics.series_ref, "I").tolist()
        times = _load(metrics.time_ms, "q")
        values = _load(metrics.value, "d")
        if not (len(refs) == len(times) == len(values) == n):
            return None
        if n and (min(refs) < 0 or max(refs) >= len(ref_ids)):
            return None
        ids = [ref_ids[r] for r in refs]
        # zigzag(id - previous id - 1), inline: a function call a point is most of the cost
        id_deltas = [
            (d << 1) if d >= 0 else ((-d) << 1) - 1
            for d in map(operator.sub, ids, itertools.chain((0,), [i + 1 for i in ids]))
        ]
        last_time = self.last_time
        if n:
            first = times[0]
            deltas = times.tolist()
            deltas[0] = _wrap64(first - last_time)
            last_time = _wrap64(sum(times))
            time_deltas = (
                [(d << 1) if d >= 0 else ((-d) << 1) - 1 for d in deltas] if any(deltas) else bytes(n)
            )
        else:
            time_deltas = b""
        modes, digits, bits, updates = self._values(ids, values, reset)
        buckets = _load(metrics.bucket_counts, "Q").tolist()
        body = {
            "id_delta": uvarints(id_deltas),
            "time_delta": time_deltas if isinstance(time_deltas, bytes) else uvarints(time_deltas),
            "value_mode": bytes(modes),
            "value_delta": uvarints(digits),
            "value_bits": _le(bits),
            "bucket_counts": uvarints(buckets),
        }
        return body, updates, last_time

    def _values(self, ids: list[int], values: array, reset: bool):
        """Each value told against its series' last one before this frame: (modes, zigzag
        decimal differences, XOR bits, {id: (value, scale)} to remember)."""
        last, scale = ([], []) if reset else (self.last, self.scale)
        known = len(last)
        modes = bytearray()
        digits: list[int] = []
        bits = array("Q")
        updates: dict[int, tuple[float, int]] = {}
        copysign = math.copysign
        mode, digit, decimal = modes.append, digits.append, self.decimal
        for sid, v in zip(ids, values, strict=True):
            if sid < known:
                prev, k0 = last[sid], scale[sid]
            else:
                prev, k0 = 0.0, 0
            if v == prev and (v or copysign(1.0, v) == copysign(1.0, prev)):
                mode(MODE_SAME)
                updates[sid] = (v, -1)
                continue
            found = _decimal(prev, v, k0) if decimal else None
            if found is None:
                mode(MODE_BITS)
                bits.append(_bits(v) ^ _bits(prev))
                updates[sid] = (v, AFTER_BITS)
            else:
                k, d = found
                mode(k)
                digit((d << 1) if d >= 0 else ((-d) << 1) - 1)
                updates[sid] = (v, k)
        return modes, digits, bits, updates


def _decimal(prev: float, v: float, first: int) -> tuple[int, int] | None:
    """(k, d) with (rint(prev * 10^k) + d) / 10^k == v exactly in doubles (what the collector
    computes), trying scale `first` and then the ladder; None for values no small scale tells
    (arbitrary floats, -0.0, NaN and infinities: they go as bits)."""
    if not (-EXACT < v < EXACT) or (v == 0.0 and math.copysign(1.0, v) < 0):
        return None
    if first == 0 and v.is_integer() and prev.is_integer() and -EXACT < prev < EXACT:
        d = int(v) - int(prev)  # counters and byte counts: the common case, at once
        if -EXACT < d < EXACT:
            return 0, d
    for k in _ORDER[first]:
        s = SCALES[k]
        c = v * s
        if not -EXACT < c < EXACT:
            continue
        ci = round(c)
        if ci / s != v:
            continue
        p = prev * s
        if not -EXACT < p < EXACT:
            continue
        d = ci - round(p)
        if -EXACT < d < EXACT:
            return k, d
    return None


def _open(frame: ingest_pb2.Frame) -> bytes:
    if frame.encoding == ingest_pb2.NONE:
        return frame.payload
    if frame.encoding != ingest_pb2.LZ4_FRAME:
        raise ValueError(f"frame encoding {frame.encoding} is not a spooled one")
    return lz4.frame.decompress(frame.payload)


def _entries(table: bytes) -> list[bytes] | None:
    """The serialized Series of a run of `MetricColumns.series` fields (tag 0x0A, length,
    message), or None if the bytes are not such a run."""
    out, pos, end = [], 0, len(table)
    while pos < end:
        if table[pos] != 0x0A:
            return None
        pos += 1
        length = shift = 0
        while True:
            if pos >= end or shift > 35:
                return None
            b = table[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
        if pos + length > end:
            return None
        out.append(table[pos : pos + length])
        pos += length
    return out
