"""The `ferry.v1.Ingest` service: frames in, acks out, each frame through the FramePipeline.

`Stream` handles one agent's long-lived stream in order, running the blocking pipeline on the
writer pool; a store failure ends the stream with UNAVAILABLE so the agent reconnects and resends
from its oldest unacked frame (nothing after a failed frame is ever acked). `Push` is the unary
form: a rejected frame fails the call with the matching status.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

import grpc

from collector import selfmetrics as m
from collector.pipeline import FramePipeline, StoreUnavailable
from ferry.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("ferry.collector.ingest")


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
            context.abort(grpc.StatusCode(_status_tuple(ack.code)), ack.message)
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
                    log.warning("rejected frame %s:%d:%d from %s: %s",
                                frame.agent_id, frame.epoch, frame.seq, peer, ack.message)
                yield ack
        finally:
            m.STREAMS.dec()


def _status_tuple(code: int):
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value
    return grpc.StatusCode.INVALID_ARGUMENT.value
