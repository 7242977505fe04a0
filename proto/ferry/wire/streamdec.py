"""The collector's side of the stream encoding: a STREAM_ZSTD frame → the frame's resource,
records and a `MetricBatch`, against the state its stream built (`ferry.wire.stream`).

One `StreamDecoder` per ingest stream, fed every STREAM_ZSTD frame in stream order, duplicates
and frames later refused included (the agent's encoder advanced its state for each of them).
A series definition is converted and checked once, when it arrives; a steady-state frame costs
numbers only: a zstd frame, a few varint columns and numpy gathers from the stream's arrays.
`decode` raises `CodecError` (or the checker's error; the message names the value and the
limit) for a frame that does not fit the state: the stream's state is then in doubt, and the
caller ends the stream after answering the frame (a new stream starts from nothing).

Per series id the decoder keeps what the row builder needs (its name's index in the stream's
names, whether it is a histogram, and its series id under each resource the stream sent, from
`identify`), so a frame's per-series work is for its new series only. A frame's batch lists the
series its points use, in id order; `view` is what `make_view` built for that list (the
collector's description of it for the row builder), kept per stream by the list.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import numpy as np
import zstandard
from google.protobuf.message import DecodeError

from ferry.limits import Limits, RecordLimits
from ferry.series import HISTOGRAM, SeriesDef
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.census import stream_census
from ferry.wire.codec import CodecError
from ferry.wire.columns import MetricBatch
from ferry.wire.stream import (
    DICTIONARY_BYTES,
    MAX_SCALE,
    MODE_BITS,
    MODE_SAME,
    SCALES,
    Bounds,
    held_bytes,
)

_U8 = np.dtype(np.uint8)
_U64 = np.dtype("<u8")
_SCALES = np.array(SCALES, dtype=np.float64)
_COLUMNS = ("id_delta", "time_delta", "value_mode", "value_delta", "value_bits", "bucket_counts")
VIEWS_PER_STREAM = 16  # series lists remembered per stream (a host has one; churn makes more)


RESOURCES_PER_STREAM = 4  # resources whose series ids are kept (a reload may change its labels)


class StateError(CodecError):
    """The frame does not fit its stream's state, or is not a well-formed stream frame: the
    self-contained frame it came from may be fine. The stream ends with the frame unanswered, and
    the agent resends it self-contained (`ferry.wire.stream.STATE_LOST`)."""


class PoolFull(CodecError):
    """The collector's stream states together would pass `stream_state_max_bytes`: the frame is
    answered RESOURCE_EXHAUSTED and its stream ends (the agent retries; a new stream is offered
    the encoding only when the pool has room)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class StatePool:
    """The bytes every stream's state holds, against one collector-wide bound (thread-safe)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self.streams = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            if n > 0 and self.used + n > self.max_bytes:
                return False
            self.used += n
            return True

    def has_room(self) -> bool:
        with self._lock:
            return self.used < self.max_bytes


@dataclass(slots=True)
class Decoded:
    payload: payload_pb2.StreamPayload  # resource, events and logs as a Payload has them
    batch: MetricBatch
    view: object | None  # make_view's result for batch.series (None without points)
    sids: np.ndarray | None  # uint64: the series id of each of batch.series under the frame's resource


def uvarints(raw: bytes, count: int, what: str) -> np.ndarray:
    """`count` protobuf varints packed end to end in `raw`, as uint64."""
    b = np.frombuffer(raw, dtype=_U8)
    ends = b < 0x80
    found = int(np.count_nonzero(ends))
    if found != count or (b.shape[0] and not ends[-1]):
        cut = " (the last is cut short)" if b.shape[0] and not ends[-1] else ""
        raise StateError(f"{what}: {found} varints in {b.shape[0]} bytes != {count} expected{cut}")
    if found == b.shape[0]:
        return b.astype(np.uint64)
    starts = np.flatnonzero(np.concatenate(([True], ends[:-1])))
    place = np.arange(b.shape[0]) - np.repeat(starts, np.diff(np.append(starts, b.shape[0])))
    if int(place.max()) > 9:
        raise StateError(f"{what}: a varint longer than 10 bytes")
    parts = (b & 0x7F).astype(np.uint64) << (place.astype(np.uint64) * np.uint64(7))
    return np.bitwise_or.reduceat(parts, starts)


def unzigzag(u: np.ndarray) -> np.ndarray:
    return ((u >> np.uint64(1)) ^ (np.uint64(0) - (u & np.uint64(1)))).view(np.int64)


class StreamDecoder:
    """`check(series, index)`: raises for a definition the collector refuses (its validator);
    `make_view(key, defs, names, name_idx, is_hist)`: the description of a series list (`key` a
    digest of its definitions; the stream's metric names and, per series, its name's index and
    whether it is a histogram); `identify(defs, resource)`: the series ids of `defs` under a
    resource (its labels with host), uint64."""

    def __init__(
        self,
        bounds: Bounds,
        limits: Limits,
        record_limits: RecordLimits,
        check: Callable[[SeriesDef, int], None],
        make_view: Callable[[bytes, list[SeriesDef], list[str], np.ndarray, np.ndarray], object],
        max_raw_bytes: int,
        identify: Callable[[list[SeriesDef], dict[str, str]], np.ndarray] | None = None,
        pool: StatePool | None = None,
    ):
        self.bounds, self.limits, self.record_limits = bounds, limits, record_limits
        self.check, self.make_view, self.max_raw_bytes = check, make_view, max_raw_bytes
        self.identify = identify
        self.pool = pool or StatePool(2**62)
        self.defs: list[SeriesDef] = []
        self.names: list[str] = []  # the metric names of the stream's series, first seen first
        self._name_pos: dict[str, int] = {}
        self.name_idx = np.zeros(0, dtype=np.uint32)  # each id's name in `names`
        self._sids: dict[tuple, np.ndarray] = {}  # resource → series id of each id (so far)
        self.digests: list[bytes] = []
        self.widths = np.zeros(0, dtype=np.int64)  # bucket counts per point of each id (0: not a histogram)
        self.last = np.zeros(0, dtype=np.float64)  # each id's last value
        self.defined_bytes = 0
        self.last_time = 0
        self.previous = b""
        self.views: dict[bytes, object] = {}

    def __len__(self) -> int:
        return len(self.defs)

    def close(self) -> None:
        """The stream ended: what its state held goes back to the pool."""
        self.pool.take(-self.defined_bytes)
        self.defined_bytes = 0

    def decode(self, frame: ingest_pb2.Frame) -> Decoded:
        """`open`, count (`stream_census`), `apply`."""
        raw = self.open(frame)
        stream_census(raw, self.limits, self.record_limits)
        return self.apply(raw)

    def apply(self, raw: bytes, point_count: int | None = None) -> Decoded:
        """A frame's StreamPayload bytes (from `open`, counted) read, and the state moved on;
        `point_count`: what its Frame declares (the budget was charged for it), checked before
        the columns are decoded."""
        try:
            msg = payload_pb2.StreamPayload.FromString(raw)
        except DecodeError as exc:
            raise StateError(f"payload of {len(raw)} bytes is not a ferry.v1.StreamPayload: {exc}") from None
        if point_count is not None and msg.point_count != point_count:
            raise CodecError(f"frame point_count {point_count} != {msg.point_count} points in the payload")
        self._define(msg)
        batch, uniq, view = self._columns(msg)
        self.previous = raw[-DICTIONARY_BYTES:]
        sids = self._ids(msg.resource, uniq) if uniq is not None and self.identify is not None else None
        return Decoded(msg, batch, view, sids)

    def _ids(self, resource: payload_pb2.Resource, uniq: np.ndarray) -> np.ndarray:
        res = dict(resource.labels)
        res["host"] = resource.host
        key = tuple(sorted(res.items()))
        known = self._sids.get(key)
        if known is None or known.shape[0] < len(self.defs):
            if known is None and len(self._sids) >= RESOURCES_PER_STREAM:
                self._sids.clear()
            have = 0 if known is None else known.shape[0]
            more = self.identify(self.defs[have:], res)
            known = self._sids[key] = more if known is None else np.concatenate((known, more))
        return known[uniq]

    def open(self, frame: ingest_pb2.Frame) -> bytes:
        """The frame's StreamPayload bytes (its sizes checked before: `frames.check_frame`)."""
        params = {}
        if self.previous:
            params["dict_data"] = zstandard.ZstdCompressionDict(
                self.previous, dict_type=zstandard.DICT_TYPE_RAWCONTENT
            )
        try:
            raw = zstandard.ZstdDecompressor(**params).decompress(
                frame.payload, max_output_size=frame.raw_size
            )
        except zstandard.ZstdError as exc:
            raise StateError(f"zstd frame is corrupt or not of this stream: {exc}") from None
        if len(raw) != frame.raw_size:
            raise StateError(f"zstd frame holds {len(raw)} bytes, not the raw_size {frame.raw_size}")
        return raw

    def _define(self, msg: payload_pb2.StreamPayload) -> None:
        size = 0 if msg.reset else len(self.defs)
        if msg.first_id != size:
            raise StateError(
                f"first_id {msg.first_id} != {size}, the series this stream's dictionary holds"
                + (" after reset" if msg.reset else "")
            )
        added = len(msg.series)
        if size + added > self.bounds.max_series:
            raise StateError(
                f"stream dictionary would hold {size + added} series > {self.bounds.max_series} "
                "allowed (stream_max_series)"
            )
        defs, digests, widths, used = [], [], [], 0 if msg.reset else self.defined_bytes
        for i, s in enumerate(msg.series):
            used += held_bytes(s.ByteSize())
            if len(s.label_keys) != len(s.label_values):
                raise StateError(
                    f"series {i} ({s.name!r}): {len(s.label_keys)} label keys != {len(s.label_values)} values"
                )
            labels = tuple(zip(s.label_keys, s.label_values, strict=True))
            d = SeriesDef(s.name, s.kind, s.unit, labels, tuple(s.bounds))
            self.check(d, size + i)
            defs.append(d)
            digests.append(hashlib.blake2b(s.SerializeToString(), digest_size=16).digest())
            widths.append(len(d.bounds) + 1 if d.kind == HISTOGRAM else 0)
        if used > self.bounds.max_bytes:
            raise StateError(
                f"stream dictionary would hold {used} bytes of series definitions > "
                f"{self.bounds.max_bytes} allowed (stream_max_bytes)"
            )
        more = used - self.defined_bytes
        if not self.pool.take(more):
            raise PoolFull(
                f"stream states hold {self.pool.used} bytes + {more} for this frame > "
                f"{self.pool.max_bytes} allowed (stream_state_max_bytes); retry later"
            )
        if msg.reset:
            self.defs, self.digests, self.views, self._sids = [], [], {}, {}
            self.names, self._name_pos = [], {}
            self.widths, self.last, self.name_idx = self.widths[:0], self.last[:0], self.name_idx[:0]
        if added:
            self.defs.extend(defs)
            self.digests.extend(digests)
            self.widths = np.concatenate((self.widths, np.asarray(widths, dtype=np.int64)))
            self.last = np.concatenate((self.last, np.zeros(added, dtype=np.float64)))
            pos = self._name_pos
            for d in defs:
                if d.name not in pos:
                    pos[d.name] = len(self.names)
                    self.names.append(d.name)
            idx = np.fromiter((pos[d.name] for d in defs), dtype=np.uint32, count=added)
            self.name_idx = np.concatenate((self.name_idx, idx))
        self.defined_bytes = used

    def _columns(self, msg: payload_pb2.StreamPayload) -> tuple[MetricBatch, np.ndarray | None, object]:
        n = msg.point_count
        if n > self.limits.max_points:
            raise CodecError(f"point_count {n} > {self.limits.max_points} allowed in one frame")
        if not n:
            for name in _COLUMNS:
                if getattr(msg, name):
                    raise StateError(f"{name} holds bytes but point_count is 0")
            return MetricBatch.empty(), None, None
        ids = np.cumsum(unzigzag(uvarints(msg.id_delta, n, "id_delta")) + 1) - 1
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= len(self.defs):
            i = int(np.argmax((ids < 0) | (ids >= len(self.defs))))
            raise StateError(
                f"point {i} refers to series id {int(ids[i])}, not defined on this stream "
                f"(its dictionary holds {len(self.defs)} series, ids 0..{len(self.defs) - 1})"
            )
        deltas = unzigzag(uvarints(msg.time_delta, n, "time_delta")).view(np.uint64)
        times = (np.uint64(self.last_time & (2**64 - 1)) + np.cumsum(deltas, dtype=np.uint64)).view(np.int64)
        values = self._values(msg, ids)
        expected = int(self.widths[ids].sum())
        buckets = None
        if expected or msg.bucket_counts:
            buckets = uvarints(msg.bucket_counts, expected, "bucket_counts")
        uniq, first_rev = np.unique(ids[::-1], return_index=True)
        self.last[uniq] = values[n - 1 - first_rev]  # each series' last value in the frame
        self.last_time = int(times[-1])
        series, view = self._view(uniq)
        batch = MetricBatch(series, np.searchsorted(uniq, ids).astype(np.uint32), times, values)
        if buckets is not None:
            batch.bucket_counts = buckets
        return batch, uniq, view

    def _values(self, msg: payload_pb2.StreamPayload, ids: np.ndarray) -> np.ndarray:
        n = ids.shape[0]
        modes = np.frombuffer(msg.value_mode, dtype=_U8)
        if modes.shape[0] != n:
            raise StateError(f"value_mode: {modes.shape[0]} bytes != point_count {n}")
        decimal = modes <= MAX_SCALE
        same = modes == MODE_SAME
        bits = modes == MODE_BITS
        known = decimal | same | bits
        if not known.all():
            i = int(np.argmin(known))
            raise StateError(
                f"point {i}: value mode {int(modes[i])} is not one of "
                f"0..{MAX_SCALE}, {MODE_SAME}, {MODE_BITS}"
            )
        prev = self.last[ids]
        if same.all():
            return prev
        values = np.empty(n, dtype=np.float64)
        values[same] = prev[same]
        count = int(np.count_nonzero(decimal))
        digits = unzigzag(uvarints(msg.value_delta, count, "value_delta"))
        if count:
            scale = _SCALES[modes[decimal]]
            with np.errstate(all="ignore"):  # a forged difference makes a value the validator refuses
                values[decimal] = (np.rint(prev[decimal] * scale) + digits.astype(np.float64)) / scale
        count = int(np.count_nonzero(bits))
        raw = msg.value_bits
        if len(raw) != 8 * count:
            raise StateError(f"value_bits: {len(raw)} bytes != 8 for each of {count} points told as bits")
        if count:
            values[bits] = (np.frombuffer(raw, dtype=_U64) ^ prev[bits].view(np.uint64)).view(np.float64)
        return values

    def _view(self, uniq: np.ndarray) -> tuple[list[SeriesDef], object]:
        """The series of ids `uniq` (a list of their own: the dictionary grows) and their view."""
        key = uniq.tobytes()
        hit = self.views.get(key)
        if hit is None:
            if len(self.views) >= VIEWS_PER_STREAM:
                self.views.clear()
            chosen = uniq.tolist()
            defs = [self.defs[i] for i in chosen]
            digest = hashlib.blake2b(b"".join(self.digests[i] for i in chosen), digest_size=16).digest()
            view = self.make_view(digest, defs, self.names, self.name_idx[uniq], self.widths[uniq] > 0)
            hit = self.views[key] = (defs, view)
        return hit
