"""The `ferry.v1.Ingest` service: frames in, acks out, each frame through the FramePipeline.

`Stream` handles one agent's long-lived stream in order, running the blocking pipeline on the
writer pool; a store failure ends the stream with UNAVAILABLE so the agent reconnects and resends
from its oldest unacked frame (nothing after a failed frame is ever acked). `Push` is the unary
form: a rejected frame fails the call with the matching status.

`register` adds the service with frames deserialised here rather than by grpc, so bytes that are
not a Frame answer INVALID_ARGUMENT (grpc itself would answer UNKNOWN).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

import grpc
from google.protobuf.message import DecodeError

from collector import selfmetrics as m
from collector.pipeline import FramePipeline, StoreUnavailable
from ferry.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("ferry.collector.ingest")


def status_of(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode whose number is `code` (INVALID_ARGUMENT if none is)."""
    return next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.INVALID_ARGUMENT)


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, pipeline: FramePipeline, executor: Executor):
        self.pipeline = pipeline
        self.executor = executor

    def Push(self, request: ingest_pb2.Frame, context: grpc.ServicerContext) -> ingest_pb2.Ack:
        try:
            ack = self.pipeline.handle(request)
        except StoreUnavailable as exc:
            log.warning("%s", exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if ack.status == ingest_pb2.REJECTED:
            context.abort(status_of(ack.code), ack.message)
        return ack

    async def Stream(self, request_iterator, context: grpc.aio.ServicerContext):
        loop = asyncio.get_running_loop()
        peer = context.peer()
        m.STREAMS.inc()
        try:
            async for frame in request_iterator:
                try:
                    ack = await loop.run_in_executor(self.executor, self.pipeline.handle, frame)
                except StoreUnavailable as exc:
                    log.warning("ending stream from %s: %s", peer, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
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
            m.STREAMS.dec()


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
