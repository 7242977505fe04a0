"""One frame in, one Ack out: check → dedup → open → count → decode → validate → rows → group.

A frame carries metric points and records of every kind (`ferry.records`: events, logs) in any
mix (each part may be empty); all of it
is validated before anything is written, and one bad record rejects the whole frame.

The frame's name and sizes are checked before dedup (seq 0 is invalid, never a duplicate) and
before any memory is reserved; its payload is counted (`ferry.wire.census`) before it is parsed,
so refusing a frame costs at most one walk of its bytes, and what the reservation holds comes
from checked sizes and counts only.

`submit` runs on the ingest service's worker threads up to the point where the frame's rows
join a group (`ferry.collector.commit`), and returns a future of its Ack, resolved once the
group is written; `handle` waits for it. Bad input becomes a REJECTED ack carrying the gRPC code
and a message naming the value and limit; a store failure fails the future with
StoreUnavailable so the caller ends the stream and the agent resends; a reservation that does
not fit raises Busy (the caller answers RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import grpc
import numpy as np
import pyarrow as pa

from ferry.collector import selfmetrics as m
from ferry.collector.budget import Reservation, decoding_cost, opening_cost, stream_decoding_cost
from ferry.collector.commit import DUPLICATE, GroupCommitter, Prepared, StoreUnavailable, Stream
from ferry.collector.marks import Marks
from ferry.collector.records_rows import record_block
from ferry.collector.rows import Identity, RowBuilder, series_ids
from ferry.collector.seriescache import KnownTable, SeriesCache, digest
from ferry.collector.validate import (
    Limits,
    RecordLimits,
    ValidationError,
    check_labels,
    check_series,
    validate_batch,
    validate_records,
)
from ferry.collector.writer import Writer
from ferry.limits import check_resource_text
from ferry.records import KINDS
from ferry.v1 import ingest_pb2
from ferry.wire.census import Census, CensusError, census, series_census, series_span, stream_census
from ferry.wire.codec import CodecError, decode_metrics, decode_payload
from ferry.wire.frames import FrameError, FrameLimits, check_frame, open_frame
from ferry.wire.stream import Bounds
from ferry.wire.streamdec import PoolFull, StateError, StatePool, StreamDecoder

AGENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}")


__all__ = ["REFUSED", "Busy", "FramePipeline", "PipelineConfig", "StateLost", "StoreUnavailable"]
# what a decoded frame keeps while it waits in a group, beyond its blocks: a series id a series
SERIES_ID_BYTES = 8


class StateLost(RuntimeError):
    """A stream-encoded frame did not fit its stream's state: the stream ends with the frame
    unanswered (the caller's abort names `ferry.wire.stream.STATE_LOST` and this message)."""


# how long an agent refused for a full stream-state pool waits before its next stream
STATE_RETRY_MS = 5_000


class Busy(RuntimeError):
    """The frame's reservation does not fit the budget now; `cost` is the step refused."""

    def __init__(self, cost: int):
        super().__init__(f"{cost} bytes do not fit the pending-bytes budget")
        self.cost = cost


# what a frame can be refused for (INVALID_ARGUMENT unless the error carries its own code)
REFUSED = (FrameError, CensusError, CodecError, ValidationError)


@dataclass
class PipelineConfig:
    limits: Limits = field(default_factory=Limits)
    frame_limits: FrameLimits = field(default_factory=FrameLimits)
    record_limits: RecordLimits = field(default_factory=RecordLimits)
    stream: Bounds | None = field(default_factory=Bounds)  # None: no stream encoding
    stream_state_max_bytes: int = 1024 * 1024 * 1024  # every stream's state together


class FramePipeline:
    def __init__(
        self,
        committer: GroupCommitter,
        config: PipelineConfig | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.committer = committer
        self.config = config or PipelineConfig()
        self.series = SeriesCache()
        self.rows = RowBuilder(self.series)
        self.clock = clock
        self.state_pool = StatePool(self.config.stream_state_max_bytes)

    @classmethod
    def writing(cls, writer: Writer, config: PipelineConfig | None = None) -> FramePipeline:
        """A pipeline whose every frame is written as its own group, at once, by the calling
        thread (an inline committer): for tests and tools."""
        return cls(GroupCommitter(writer.write, Marks(), inline=True), config)

    @property
    def marks(self) -> Marks:
        return self.committer.marks

    def stream_decoder(self) -> StreamDecoder | None:
        """The state of one ingest stream that negotiated the stream encoding (None: the
        collector does not take it, or its streams' states fill `stream_state_max_bytes`)."""
        cfg = self.config
        if cfg.stream is None or not self.state_pool.has_room():
            return None
        return StreamDecoder(
            cfg.stream,
            cfg.limits,
            cfg.record_limits,
            lambda series, index: check_series(series, cfg.limits, index),
            _view,
            cfg.frame_limits.max_raw_bytes,
            series_ids,
            self.state_pool,
        )

    def check(self, frame: ingest_pb2.Frame) -> None:
        """The frame's name and sizes, without decompressing it; raises what `handle` refuses."""
        if not AGENT_ID_RE.fullmatch(frame.agent_id):
            raise ValidationError(f"agent_id {frame.agent_id[:64]!r} does not match {AGENT_ID_RE.pattern}")
        if frame.seq == 0:
            raise ValidationError("seq 0 is not valid: seq starts at 1 within an epoch")
        check_frame(frame, self.config.frame_limits)

    def handle(
        self, frame: ingest_pb2.Frame, address: str = "", reservation: Reservation | None = None
    ) -> ingest_pb2.Ack:
        """`submit`, then wait for the answer (StoreUnavailable when the group failed)."""
        return self.submit(frame, address, reservation).result()

    def submit(
        self,
        frame: ingest_pb2.Frame,
        address: str = "",
        reservation: Reservation | None = None,
        stream: Stream | None = None,
        check_host: Callable[[str], None] | None = None,
    ) -> Future:
        """Decode `frame` and join its rows to a group; a future of its Ack. `address`: the peer
        the frame came from, recorded in the agents table. `reservation`: the frame's share of
        the ingest budget, taken here step by step and cut to what the frame keeps while it
        waits in its group (the caller releases it once the future is done). `stream`: the
        stream it came on, in order (a Push call is a stream of its own). `check_host`: raises
        (out of this call, nothing joined) for a host the frame's principal may not write."""
        prepared = self._prepare(frame, address, reservation, check_host, stream)
        if isinstance(prepared, ingest_pb2.Ack):
            return _done(prepared)
        if reservation is not None:
            reservation.keep(
                sum(b.nbytes for b in prepared.blocks.values()) + SERIES_ID_BYTES * len(prepared.series)
            )
        out: Future = Future()
        try:
            joined = self.committer.submit(prepared, stream or Stream())
        except StoreUnavailable as exc:
            out.set_exception(exc)
            return out

        def answered(f: Future) -> None:
            try:
                status = f.result()
            except Exception as exc:
                out.set_exception(exc)
                return
            out.set_result(self._ack(frame, ingest_pb2.DUPLICATE if status == DUPLICATE else ingest_pb2.OK))

        joined.add_done_callback(answered)
        return out

    def _prepare(
        self,
        frame: ingest_pb2.Frame,
        address: str,
        reservation: Reservation | None,
        check_host: Callable[[str], None] | None = None,
        stream: Stream | None = None,
    ) -> Prepared | ingest_pb2.Ack:
        m.FRAME_BYTES.inc(len(frame.payload))
        if frame.encoding == ingest_pb2.STREAM_ZSTD:
            decoded = self._stream_decode(frame, reservation, stream)
            if isinstance(decoded, ingest_pb2.Ack):
                return decoded
            if self.marks.frame_done(frame.agent_id, frame.epoch, frame.seq):
                return self._ack(frame, ingest_pb2.DUPLICATE)
            payload, batch, known, sids = decoded
            try:
                self._validate(frame, payload, batch, series_checked=True)
            except REFUSED as exc:
                return self._refused(frame, exc)
        else:
            if reservation is None or not reservation.opened:  # an opened reservation passed check()
                try:
                    self.check(frame)
                except REFUSED as exc:
                    return self._refused(frame, exc)
            if self.marks.frame_done(frame.agent_id, frame.epoch, frame.seq):
                return self._ack(frame, ingest_pb2.DUPLICATE)
            try:
                payload, batch, known = self._decode(frame, reservation)
            except REFUSED as exc:
                return self._refused(frame, exc)
            sids = None
        res = payload.resource
        if check_host is not None:
            check_host(res.host)
        identity = Identity(frame.agent_id, frame.epoch, frame.seq)
        rows = self.rows.build(batch, res, identity, known, sids)
        blocks = {}
        if rows.samples_block is not None:
            blocks["samples"] = rows.samples_block
        if rows.histograms_block is not None:
            blocks["histograms"] = rows.histograms_block
        records = {}
        for kind in KINDS:
            items = getattr(payload, kind.name)
            block = record_block(kind, items, res.host, identity)
            if block is not None:
                blocks[kind.name] = block
                records[kind.name] = len(items)
        return Prepared(
            frame.agent_id,
            frame.epoch,
            frame.seq,
            blocks,
            rows.series,
            rows.min_time_ms,
            rows.max_time_ms,
            res.host,
            res.agent_version,
            address,
            len(batch),
            records,
        )

    def _decode(self, frame: ingest_pb2.Frame, reservation: Reservation | None):
        if reservation is not None and not reservation.open(len(frame.payload), frame.raw_size):
            raise Busy(opening_cost(len(frame.payload), frame.raw_size))
        raw = open_frame(frame, self.config.frame_limits)
        # a series table seen before (the same bytes) is taken as counted, decoded and checked
        span = series_span(raw, self.config.limits.max_series + 100)  # + the columns' few fields
        key = digest(memoryview(raw)[span[0] : span[1]]) if span is not None else None
        known = self.series.table(key) if key is not None else None
        counted = census(
            raw,
            self.config.limits,
            self.config.record_limits,
            (*span, known.census) if known is not None else None,
        )
        _take(reservation, decoding_cost(frame.raw_size, counted))
        payload = decode_payload(raw)
        # an absent MetricColumns decodes to an empty batch: a frame of only records is fine
        batch = decode_metrics(payload.metrics, known.defs if known is not None else None)
        self._validate(frame, payload, batch, series_checked=known is not None)
        if key is not None and known is None and batch.series:
            known = self.series.learn(key, batch.series, series_census(raw, span, self.config.limits))
        return payload, batch, known

    def _stream_decode(self, frame: ingest_pb2.Frame, reservation: Reservation | None, stream: Stream | None):
        """A STREAM_ZSTD frame read against its stream's state: (payload, batch, view, sids).
        Every such frame of the stream comes here in order, duplicates too: each one moved the
        agent's encoder on. What cannot be read:
          - a frame that does not fit the state (StateError) raises StateLost: the stream ends
            with it unanswered, and the agent sends it self-contained on its next stream;
          - one the state cannot grow for (PoolFull) is answered RESOURCE_EXHAUSTED, ending
            the stream (the agent retries later);
          - one refused for itself (a definition the validator refuses, counts over the caps,
            sizes) is answered REJECTED, and the stream ends after the answer (`stream.broken`):
            the agent's encoder took its definitions in."""
        decoder = stream.decoder if stream is not None else None
        try:
            if decoder is None:
                raise FrameError(
                    "a STREAM_ZSTD frame is taken only on an Ingest.Stream whose collector accepted "
                    "the stream encoding (ferry-stream-encoding); send self-contained frames here"
                )
            if reservation is None or not reservation.opened:
                self.check(frame)
            if reservation is not None and not reservation.open(len(frame.payload), frame.raw_size):
                raise Busy(opening_cost(len(frame.payload), frame.raw_size))
            raw = decoder.open(frame)
            counted = stream_census(raw, self.config.limits, self.config.record_limits)
            _take(reservation, stream_decoding_cost(frame.raw_size, frame.point_count, counted))
            decoded = decoder.apply(raw, frame.point_count)
            m.STREAM_FRAMES.inc()
        except StateError as exc:
            raise StateLost(f"frame {frame.epoch}:{frame.seq} ({exc})") from None
        except PoolFull as exc:
            if stream is not None:
                stream.failed = True
            m.BACKPRESSURE.labels("stream_state").inc()
            ack = self._ack(frame, ingest_pb2.REJECTED, str(exc), grpc.StatusCode.RESOURCE_EXHAUSTED)
            ack.retry_after_ms = STATE_RETRY_MS
            return ack
        except REFUSED as exc:
            if decoder is not None:  # the stream's state is in doubt: it ends after this answer
                stream.broken = (frame.epoch, frame.seq, str(exc))
            return self._refused(frame, exc)
        return decoded.payload, decoded.batch, decoded.view, decoded.sids

    def _validate(self, frame: ingest_pb2.Frame, payload, batch, series_checked: bool) -> None:
        """The semantic checks of a decoded frame: its resource, points and records."""
        res = payload.resource
        if res.agent_id and res.agent_id != frame.agent_id:
            raise ValidationError(
                f"resource.agent_id {res.agent_id[:64]!r} != frame agent_id {frame.agent_id[:64]!r}"
            )
        check_resource_text(res.host, res.agent_version, self.config.limits)
        # resource labels and host are added to every series: held to the same limits
        check_labels(tuple(sorted({**res.labels, "host": res.host}.items())), self.config.limits, "resource")
        now = self.clock()
        validate_batch(batch, int(now * 1000), self.config.limits, series_checked=series_checked)
        validate_records(payload, int(now * 1e9), self.config.record_limits)
        if len(batch) != frame.point_count:
            raise ValidationError(
                f"frame point_count {frame.point_count} != {len(batch)} points in the payload"
            )

    def _refused(self, frame: ingest_pb2.Frame, exc: Exception) -> ingest_pb2.Ack:
        code = getattr(exc, "code", grpc.StatusCode.INVALID_ARGUMENT)
        return self._ack(frame, ingest_pb2.REJECTED, str(exc), code)

    @staticmethod
    def _ack(frame, status, message: str = "", code: grpc.StatusCode | None = None) -> ingest_pb2.Ack:
        _ACKED[status].inc()
        return ingest_pb2.Ack(
            seq=frame.seq,
            epoch=frame.epoch,
            status=status,
            message=message,
            code=code.value[0] if code is not None else 0,
        )


# the frames counter of each ack status (a labels() lookup per frame showed in the profile)
_ACKED = {v: m.FRAMES.labels(ingest_pb2.AckStatus.Name(v)) for v in ingest_pb2.AckStatus.values()}


def _view(key: bytes, defs: list, names: list[str], name_idx: np.ndarray, is_hist: np.ndarray) -> KnownTable:
    """A stream's series list as the row builder wants it: the names its series use, sorted (a
    block's dictionary holds those only), each series' index into them."""
    used, inverse = np.unique(name_idx, return_inverse=True)
    own = [names[i] for i in used.tolist()]
    order = sorted(range(len(own)), key=own.__getitem__)
    rank = np.empty(len(own), dtype=np.uint32)
    rank[order] = np.arange(len(own), dtype=np.uint32)
    sorted_names = pa.array([own[i] for i in order], type=pa.string())
    return KnownTable(key, defs, Census(), sorted_names, rank[inverse.ravel()], is_hist)


def _done(ack: ingest_pb2.Ack) -> Future:
    f: Future = Future()
    f.set_result(ack)
    return f


def _take(reservation: Reservation | None, cost: int) -> None:
    if reservation is not None and not reservation.take(cost):
        raise Busy(cost)
