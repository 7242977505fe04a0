"""The `ferry.v1.Ingest` service: frames in, acks out, each frame through the FramePipeline.

`Stream` handles one agent's long-lived stream in order, running the blocking pipeline on the
writer pool. Nothing after an unanswered frame is ever committed on a stream, so the dedup
high-water mark stays valid:
  - a store failure ends the stream with UNAVAILABLE; the agent resends from that frame;
  - a frame that does not fit the pending-bytes budget gets a REJECTED ack with
    RESOURCE_EXHAUSTED and retry_after_ms, and the stream ends; the agent waits and resends;
  - while the collector drains for shutdown, a frame that arrives ends the stream unanswered.
`Push` is the unary form: a refused frame fails the call with the matching status.

`register` adds the service with frames deserialised here rather than by grpc, so bytes that are
not a Frame answer INVALID_ARGUMENT (grpc itself would answer UNKNOWN).
"""

from __future__ import annotations

import asyncio
import logging
import random
from concurrent.futures import Executor

import grpc
from google.protobuf.message import DecodeError

from ferry.collector import selfmetrics as m
from ferry.collector.agents import peer_address
from ferry.collector.budget import Budget, frame_cost
from ferry.collector.pipeline import FramePipeline, StoreUnavailable
from ferry.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("ferry.collector.ingest")


def status_of(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode whose number is `code` (INVALID_ARGUMENT if none is)."""
    return next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.INVALID_ARGUMENT)


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(
        self,
        pipeline: FramePipeline,
        executor: Executor,
        budget: Budget | None = None,
        max_streams: int = 1024,
        retry_after_ms: int = 500,
    ):
        self.pipeline = pipeline
        self.executor = executor
        self.budget = budget or Budget(256 * 1024 * 1024)
        self.max_streams = max_streams
        self.retry_after_ms = retry_after_ms
        self.draining = False
        self.streams = 0
        self.in_progress = 0

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

    def Push(self, request: ingest_pb2.Frame, context: grpc.ServicerContext) -> ingest_pb2.Ack:
        if self.draining:
            context.abort(grpc.StatusCode.UNAVAILABLE, "collector is shutting down")
        cost = frame_cost(len(request.payload), request.raw_size)
        if not self.budget.try_acquire(cost):
            ack = self._busy_ack(request, cost)
            context.set_trailing_metadata((("retry-after-ms", str(ack.retry_after_ms)),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, ack.message)
        try:
            ack = self.pipeline.handle(request, _peer(context))
        except StoreUnavailable as exc:
            log.warning("%s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        finally:
            self.budget.release(cost)
        if ack.status == ingest_pb2.REJECTED:
            context.abort(status_of(ack.code), ack.message)
        return ack

    async def Stream(self, request_iterator, context: grpc.aio.ServicerContext):
        if self.streams >= self.max_streams:
            m.BACKPRESSURE.labels("streams").inc()
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.streams} streams open = {self.max_streams} allowed; retry later",
            )
        loop = asyncio.get_running_loop()
        peer = context.peer()
        address = peer_address(peer)
        self.streams += 1
        m.STREAMS.inc()
        try:
            async for frame in request_iterator:
                if self.draining:
                    return  # unanswered: the agent resends it after reconnecting
                cost = frame_cost(len(frame.payload), frame.raw_size)
                if not self.budget.try_acquire(cost):
                    yield self._busy_ack(frame, cost)
                    return
                self.in_progress += 1
                try:
                    ack = await loop.run_in_executor(self.executor, self.pipeline.handle, frame, address)
                except StoreUnavailable as exc:
                    log.warning("ending stream from %s: %s", peer, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
                finally:
                    self.in_progress -= 1
                    self.budget.release(cost)
                if ack.status == ingest_pb2.REJECTED:
                    log.warning(
                        "rejected frame %s:%d:%d from %s: %s: %s",
                        frame.agent_id,
                        frame.epoch,
                        frame.seq,
                        peer,
                        status_of(ack.code).name,
                        ack.message,
                    )
                yield ack
        finally:
            self.streams -= 1
            m.STREAMS.dec()

    async def drain(self, timeout_s: float) -> None:
        """Stop taking frames; wait until every frame already taken is answered."""
        self.draining = True
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.in_progress and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)


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
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"stream message of {len(data)} bytes is not a Frame: {exc}",
                    )

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
