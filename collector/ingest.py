"""The `ferry.v1.Ingest` service: frames in, acks out, each frame through the FramePipeline.

`Stream` handles one agent's long-lived stream: a reader task takes its frames in order and
prepares each on the writer pool (decode, validate, join a group: `ferry.collector.commit`),
one at a time, while up to `stream_window` of them wait for their group; acks go back in the
frames' order as groups are written. Nothing after an unanswered frame is ever committed on a
stream, so the dedup marks stay valid:
  - a store failure ends the stream with UNAVAILABLE; the agent resends from that frame;
  - a frame that does not fit the pending-bytes budget gets a REJECTED ack with
    RESOURCE_EXHAUSTED and retry_after_ms, and the stream ends; the agent waits and resends;
  - while the collector drains for shutdown, a frame that arrives ends the stream unanswered.
In both of the first cases the stream's later frames are refused by the committer
(`commit.Stream.failed`) before they can join a group.
`Push` is the unary form: a refused frame fails the call with the matching status.

Streams are capped in all (`max_streams`) and per peer (`max_streams_per_peer`, keyed by
`peer_key`), and a stream that sends nothing for `stream_idle_timeout` is ended with
UNAVAILABLE, so no one client can hold every slot. Rejected frames are logged at most once per
`REJECT_LOG_INTERVAL_S` per peer, with the count of those not logged.

`register` adds the service with frames deserialised here rather than by grpc, so bytes that are
not a Frame answer INVALID_ARGUMENT (grpc itself would answer UNKNOWN).
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import Executor, Future

import grpc
from google.protobuf.message import DecodeError

from ferry.collector import selfmetrics as m
from ferry.collector.agents import peer_address
from ferry.collector.auth.frames import Denied, FrameGuard
from ferry.collector.auth.gate import Gate, Refusal, drain
from ferry.collector.auth.principals import Principal
from ferry.collector.budget import Budget, Reservation, opening_cost
from ferry.collector.commit import Stream as StreamState
from ferry.collector.pipeline import REFUSED, Busy, FramePipeline, StateLost, StoreUnavailable
from ferry.collector.streams import (
    Abort,
    BadMessage,
    RejectLog,
    StreamLimits,
    peer_key,
    status_of,
)
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from ferry.wire import stream as stream_wire

log = logging.getLogger("ferry.collector.ingest")
STREAM, PUSH = "/ferry.v1.Ingest/Stream", "/ferry.v1.Ingest/Push"


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(
        self,
        pipeline: FramePipeline,
        executor: Executor,
        budget: Budget | None = None,
        max_streams: int = 1024,
        retry_after_ms: int = 500,
        stream_limits: StreamLimits | None = None,
        gate: Gate | None = None,
    ):
        self.pipeline = pipeline
        self.gate = gate or Gate(None)
        self.executor = executor
        self.budget = budget or Budget(256 * 1024 * 1024)
        self.limits = stream_limits or StreamLimits(max_streams=max_streams)
        self.max_streams = self.limits.max_streams
        self.retry_after_ms = retry_after_ms
        self.draining = False
        self.streams = 0
        self.streams_by_peer: dict[str, int] = {}
        self.in_progress = 0
        self.reject_log = RejectLog()

    def _busy_ack(self, frame: ingest_pb2.Frame, cost: int) -> ingest_pb2.Ack:
        m.BACKPRESSURE.labels("pending_bytes").inc()
        m.FRAMES.labels("RESOURCE_EXHAUSTED").inc()
        return ingest_pb2.Ack(
            seq=frame.seq,
            epoch=frame.epoch,
            status=ingest_pb2.REJECTED,
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
            retry_after_ms=self.retry_after_ms + random.randrange(self.retry_after_ms + 1),
            message=f"write queue full: {self.budget.used} bytes pending + {cost} for this frame "
            f"> {self.budget.max_bytes} allowed; retry later",
        )

    def _limited_ack(self, frame: ingest_pb2.Frame, principal: Principal, wait_s: float) -> ingest_pb2.Ack:
        m.BACKPRESSURE.labels("rate_limit").inc()
        m.FRAMES.labels("RESOURCE_EXHAUSTED").inc()
        rate = principal.rate
        return ingest_pb2.Ack(
            seq=frame.seq,
            epoch=frame.epoch,
            status=ingest_pb2.REJECTED,
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
            retry_after_ms=max(1, int(wait_s * 1000)),
            message=f"principal {principal.name!r} over its rate limit ({rate.points_per_s:g} points/s, "
            f"{rate.frames_per_s:g} frames/s, {rate.bytes_per_s:g} bytes/s, 0 = none) with a frame of "
            f"{frame.point_count} points, {frame.raw_size} bytes; retry in {wait_s:.2f} s",
        )

    def _handle(
        self,
        frame: ingest_pb2.Frame,
        address: str,
        reservation: Reservation | None = None,
        guard: FrameGuard | None = None,
    ) -> ingest_pb2.Ack:
        """The pipeline with this frame's reservation, released when it is answered (Push)."""
        reservation = reservation or self.budget.reservation()
        return self._submit(frame, address, reservation, None, guard).result()

    def _submit(
        self,
        frame: ingest_pb2.Frame,
        address: str,
        reservation: Reservation,
        stream: StreamState | None,
        guard: FrameGuard | None = None,
    ) -> Future:
        """Prepare `frame` and join it to a group (a writer thread); a future of its Ack. The
        reservation is released when the future is done; a busy frame fails its stream."""
        try:
            future = self.pipeline.submit(
                frame, address, reservation, stream, guard.host if guard is not None else None
            )
        except Busy as exc:
            if stream is not None:
                stream.failed = True
            future = Future()
            future.set_result(self._busy_ack(frame, exc.cost))
        except BaseException:
            reservation.release()
            raise
        future.add_done_callback(lambda _: reservation.release())
        return future

    def _checks(self, frame: ingest_pb2.Frame) -> bool:
        try:
            self.pipeline.check(frame)
        except REFUSED:
            return False
        return True

    def _log_rejected(self, frame: ingest_pb2.Frame, ack: ingest_pb2.Ack, peer: str) -> None:
        if ack.status != ingest_pb2.REJECTED or ack.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
            return
        self.reject_log.rejected(
            peer_key(peer),
            f"rejected frame {frame.agent_id[:64]}:{frame.epoch}:{frame.seq} from {peer}: "
            f"{status_of(ack.code).name}: {ack.message[:500]}",
        )

    def Push(self, request: ingest_pb2.Frame, context: grpc.ServicerContext) -> ingest_pb2.Ack:
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector is shutting down")
        peer = _peer(context)
        guard = FrameGuard(self.gate, self.gate.caller(context), PUSH)
        checked = guard.check(request)
        if isinstance(checked, Refusal):
            context.abort(checked.code, checked.message)
        if checked:
            ack = self._limited_ack(request, guard.principal, checked)
            context.set_trailing_metadata((("retry-after-ms", str(ack.retry_after_ms)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, ack.message)
        try:
            ack = self._handle(request, peer_address(peer), guard=guard)
        except Denied as exc:
            context.abort(exc.refusal.code, exc.refusal.message)
        except StoreUnavailable as exc:
            log.warning("%s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        self._log_rejected(request, ack, peer)
        if ack.status == ingest_pb2.REJECTED:
            if ack.retry_after_ms:
                context.set_trailing_metadata((("retry-after-ms", str(ack.retry_after_ms)),))
            # the message rides in a header: gRPC clients refuse one over 8 KiB
            context.abort(status_of(ack.code), ack.message[:2000])
        return ack

    async def _open(self, key: str, context: grpc.aio.ServicerContext) -> None:
        refusal = None
        if self.streams >= self.limits.max_streams:
            refusal = f"{self.streams} streams open = {self.limits.max_streams} allowed; retry later"
        elif self.streams_by_peer.get(key, 0) >= self.limits.max_streams_per_peer:
            refusal = (
                f"{self.streams_by_peer[key]} streams open from {key} = "
                f"{self.limits.max_streams_per_peer} allowed per peer; retry later"
            )
        if refusal is not None:
            m.BACKPRESSURE.labels("streams").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        self.streams += 1
        self.streams_by_peer[key] = self.streams_by_peer.get(key, 0) + 1
        m.STREAMS.inc()

    def _close(self, key: str) -> None:
        self.streams -= 1
        left = self.streams_by_peer[key] - 1
        if left:
            self.streams_by_peer[key] = left
        else:
            del self.streams_by_peer[key]
        m.STREAMS.dec()

    async def Stream(self, request_iterator, context: grpc.aio.ServicerContext):
        peer = context.peer()
        key = peer_key(peer)
        await self._open(key, context)
        state = StreamState()
        reader = None
        try:
            if stream_wire.requested(context.invocation_metadata()):
                # answered at once, yes or no: the agent waits for it before its first frame
                state.decoder = self.pipeline.stream_decoder()
                if state.decoder is not None:  # the agent may send STREAM_ZSTD frames
                    m.STREAMS_ENCODED.inc()
                    await context.send_initial_metadata(state.decoder.bounds.metadata())
                else:
                    await context.send_initial_metadata(stream_wire.DECLINED)
            answers: asyncio.Queue = asyncio.Queue(maxsize=self.limits.window)
            reader = asyncio.create_task(
                self._read(
                    aiter(request_iterator),
                    peer_address(peer),
                    state,
                    answers,
                    FrameGuard(self.gate, self.gate.caller(context), STREAM),
                )
            )
            while True:
                item = await answers.get()
                if item is None:
                    return
                if isinstance(item, Abort):
                    await context.abort(item.code, item.message)
                frame, future = item
                try:
                    ack = await asyncio.wrap_future(future)
                except StoreUnavailable as exc:
                    state.failed = True
                    log.warning("ending stream from %s: %s", peer, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                self._log_rejected(frame, ack, peer)
                yield ack
                if ack.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                    return
                if state.broken is not None and state.broken[:2] == (ack.epoch, ack.seq):
                    m.STREAMS_BROKEN.inc()
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _broken(state.broken))
        finally:
            state.failed = True  # frames still being prepared for this stream join no group
            if reader is not None:
                reader.cancel()
            self._close(key)
            if state.decoder is not None:
                m.STREAMS_ENCODED.dec()
                state.decoder.close()  # its state goes with the stream
                state.decoder = None

    async def _read(
        self, frames, address: str, state: StreamState, answers: asyncio.Queue, guard: FrameGuard
    ) -> None:
        """Take the stream's frames in order, prepare each on a writer thread and queue its
        answer (a future) for the stream; None ends the stream, an Abort ends it with a status."""
        try:
            await self._take(frames, address, state, answers, guard)
        except Exception as exc:  # the request stream broke: end the stream (the agent resends)
            log.warning("reading stream from %s failed: %s", address, exc)
            await answers.put(Abort(grpc.StatusCode.UNAVAILABLE, f"reading the stream failed: {exc}"))

    async def _take(
        self, frames, address: str, state: StreamState, answers: asyncio.Queue, guard: FrameGuard
    ) -> None:
        loop = asyncio.get_running_loop()
        idle = self.limits.idle_timeout_s
        while True:
            try:
                frame = await asyncio.wait_for(anext(frames), idle)
            except StopAsyncIteration:
                await answers.put(None)
                return
            except TimeoutError:
                await answers.put(
                    Abort(
                        grpc.StatusCode.UNAVAILABLE,
                        f"no frame for {idle:g} s (stream_idle_timeout); reconnect to send more",
                    )
                )
                return
            if isinstance(frame, BadMessage):
                await answers.put(Abort(grpc.StatusCode.INVALID_ARGUMENT, frame.message))
                return
            if self.draining or state.failed:
                await answers.put(None)  # unanswered: the agent resends it after reconnecting
                return
            if state.broken is not None:  # unanswered, as above; the stream ends with why
                await answers.put(Abort(grpc.StatusCode.INVALID_ARGUMENT, _broken(state.broken)))
                return
            checked = guard.check(frame)
            if isinstance(checked, Refusal):  # the stream ends; the agent keeps the frame and retries
                await self._refuse(frames, state, answers, checked)
                return
            if checked:
                state.failed = True
                await answers.put((frame, _done(self._limited_ack(frame, guard.principal, checked))))
                return
            # a frame whose header passes reserves its opening step here, before it waits for
            # a worker; one that fails reserves nothing and the pipeline answers why
            reservation = self.budget.reservation()
            if self._checks(frame) and not reservation.open(len(frame.payload), frame.raw_size):
                state.failed = True
                await answers.put(
                    (frame, _done(self._busy_ack(frame, opening_cost(len(frame.payload), frame.raw_size))))
                )
                return
            self.in_progress += 1
            try:
                future = await loop.run_in_executor(
                    self.executor, self._submit, frame, address, reservation, state, guard
                )
            except Denied as exc:  # its host: found once decoded
                self.in_progress -= 1
                await self._refuse(frames, state, answers, exc.refusal)
                return
            except StateLost as exc:  # unanswered: the agent resends it self-contained
                self.in_progress -= 1
                state.failed = True
                m.STREAMS_BROKEN.inc()
                log.warning("ending stream from %s: %s at %s", address, stream_wire.STATE_LOST, exc)
                await answers.put(
                    Abort(grpc.StatusCode.INVALID_ARGUMENT, f"{stream_wire.STATE_LOST} at {exc}")
                )
                return
            except BaseException:
                self.in_progress -= 1
                raise
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._answered))
            await answers.put((frame, future))
            if future.done() and _busy(future):
                return

    @staticmethod
    async def _refuse(frames, state: StreamState, answers: asyncio.Queue, refusal: Refusal) -> None:
        """End the stream with `refusal` after the answers before it, once what the client had
        in flight is read (unread, it can turn the status into INTERNAL)."""
        state.failed = True
        await drain(frames)
        await answers.put(Abort(refusal.code, refusal.message))

    def _answered(self) -> None:
        self.in_progress -= 1

    async def drain(self, timeout_s: float) -> None:
        """Stop taking frames; wait until every frame already taken is answered."""
        self.draining = True
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.in_progress and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)


def _broken(broken: tuple[int, int, str]) -> str:
    epoch, seq, why = broken
    return (
        f"frame {epoch}:{seq} was refused with its series definitions ({why[:1000]}); the stream "
        "ends and frames after it were not taken: reconnect to start a new stream"
    )


def _done(ack: ingest_pb2.Ack) -> Future:
    f: Future = Future()
    f.set_result(ack)
    return f


def _busy(future: Future) -> bool:
    """A done future holding a RESOURCE_EXHAUSTED ack (the stream ends after it)."""
    if future.exception() is not None:
        return False
    return future.result().code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def _peer(context) -> str:
    try:
        return peer_address(context.peer())
    except NotImplementedError:  # grpc_testing's context has no peer
        return ""


def _parse(data: bytes) -> ingest_pb2.Frame:
    frame = ingest_pb2.Frame()
    frame.ParseFromString(data)
    return frame


def register(service: IngestService, server: grpc.aio.Server) -> None:
    def push(data: bytes, context: grpc.ServicerContext) -> ingest_pb2.Ack:
        try:
            frame = _parse(data)
        except DecodeError as exc:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"request of {len(data)} bytes is not a Frame: {exc}"
            )
        return service.Push(frame, context)

    async def stream(request_iterator, context: grpc.aio.ServicerContext):
        async def frames():
            async for data in request_iterator:
                try:
                    yield _parse(data)
                except DecodeError as exc:
                    yield BadMessage(f"stream message of {len(data)} bytes is not a Frame: {exc}")
                    return

        async for ack in service.Stream(frames(), context):
            yield ack

    handlers = {
        "Push": grpc.unary_unary_rpc_method_handler(
            push, response_serializer=ingest_pb2.Ack.SerializeToString
        ),
        "Stream": grpc.stream_stream_rpc_method_handler(
            stream, response_serializer=ingest_pb2.Ack.SerializeToString
        ),
    }
    name = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, handlers),))
