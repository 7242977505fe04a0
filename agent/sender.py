"""Streams outbox frames to a collector and applies its acks.

One bidi `Ingest.Stream` at a time with at most `window` unacked frames in flight. Acks come in
order: OK/DUPLICATE delete the frame, REJECTED with INVALID_ARGUMENT drops and counts it,
RESOURCE_EXHAUSTED ends the stream and waits `retry_after_ms`. Any stream failure reconnects
(next address, exponential backoff with full jitter) and resends every unacked frame in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque

import grpc

from agent import selfmetrics as m
from agent.outbox import Outbox
from ferry.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger("ferry.agent.sender")
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


class ProtocolError(Exception):
    """The collector broke the stream protocol (e.g. an ack out of order)."""


class RetryLater(Exception):
    def __init__(self, delay_s: float, reason: str):
        super().__init__(reason)
        self.delay_s = delay_s


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        addresses: list[str],
        window: int = 32,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
    ):
        self.outbox = outbox
        self.addresses = addresses
        self.window = window
        self.base = backoff_base_s
        self.cap = backoff_cap_s
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        attempt, index = 0, 0
        while not stop.is_set():
            address = self.addresses[index % len(self.addresses)]
            delay = None
            try:
                await self._session(address, stop)
                attempt = 0
            except RetryLater as exc:
                log.warning("collector %s asks to retry later: %s", address, exc)
                delay = exc.delay_s
            except (grpc.aio.AioRpcError, ProtocolError, OSError) as exc:
                code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                log.warning("stream to %s failed: %s %s", address, code, details)
                index += 1
            finally:
                self.connected.clear()
                m.CONNECTED.set(0)
            if stop.is_set():
                break
            m.RECONNECTS.inc()
            if delay is None:
                delay = random.uniform(0, min(self.cap, self.base * 2**attempt))
                attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def _session(self, address: str, stop: asyncio.Event) -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            call = ingest_pb2_grpc.IngestStub(channel).Stream()
            inflight: deque[int] = deque()
            room = asyncio.Event()
            room.set()
            writer = asyncio.create_task(self._write(call, inflight, room, stop))
            try:
                await self._read(call, inflight, room, address)
            finally:
                writer.cancel()
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError, grpc.aio.UsageError):
                    await writer

    async def _write(self, call, inflight: deque[int], room: asyncio.Event, stop: asyncio.Event) -> None:
        last_sent = 0
        while True:
            while len(inflight) >= self.window:
                room.clear()
                await room.wait()
            frame = self.outbox.next_after(last_sent)
            if frame is None:
                if stop.is_set() and not inflight:
                    await call.done_writing()
                    return
                waiter = asyncio.create_task(self.outbox.changed())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait((waiter, stopper), timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                continue
            inflight.append(frame.seq)
            last_sent = frame.seq
            await call.write(frame)
            m.FRAMES_SENT.inc()
            m.BYTES_SENT.inc(len(frame.payload))

    async def _read(self, call, inflight: deque[int], room: asyncio.Event, address: str) -> None:
        first = True
        async for ack in call:
            if first:
                self.connected.set()
                m.CONNECTED.set(1)
                first = False
            m.ACKS.labels(ingest_pb2.AckStatus.Name(ack.status)).inc()
            if not inflight or inflight[0] != ack.seq:
                raise ProtocolError(f"ack for seq {ack.seq} out of order (expected {list(inflight)[:1]})")
            if ack.status == ingest_pb2.REJECTED and ack.code == _RESOURCE_EXHAUSTED:
                raise RetryLater(max(ack.retry_after_ms, 100) / 1000, ack.message)
            inflight.popleft()
            room.set()
            frame = self.outbox.ack(ack.seq)
            if ack.status == ingest_pb2.REJECTED:
                m.FRAMES_REJECTED.inc()
                if frame is not None:
                    m.POINTS_DROPPED.inc(frame.point_count)
                log.error("collector %s rejected frame %d (dropped): %s", address, ack.seq, ack.message)
