"""Streams spooled frames to a collector and applies its acks to the spool.

One bidi `Ingest.Stream` at a time with at most `window` unacked frames in flight, sent in spool
order. Acks come in the same order: OK and DUPLICATE remove the frame from the spool; REJECTED
with INVALID_ARGUMENT removes it too and counts it (it can never succeed); RESOURCE_EXHAUSTED
ends the stream and waits `retry_after_ms` (a busy collector, or a principal over its rate
limit). Any failure reconnects (UNAUTHENTICATED and PERMISSION_DENIED too: the frames stay in
the spool until the credentials are fixed, logged as errors) (next address, exponential
backoff with full jitter, capped) and resends every unacked frame in order.

A frame that no collector can take is never sent: one that fails the collector's own size and
encoding checks (`ferry.wire.frames.check_frame` with the default caps), or is larger than the
receive limit (`ferry.wire.frames.receive_limit`, or a smaller one a collector's stream reported
when it ended with "Received message larger than max (N vs. M)") is dropped in its place in
the order and counted as rejected, as a REJECTED ack would be: resending it could only fail
again, and every frame behind it with it (a frame of an older agent, spooled before frames were
cut by size, wedged the stream for good).

The stream encoding (`ferry.wire.stream`): with `stream_encoding` on, each stream asks for it in
its request metadata and waits up to `NEGOTIATE_S` for the collector's initial metadata before
the first frame; a collector that accepts it gets each spooled frame re-encoded against the
stream's state as it is sent (`ferry.wire.streamenc`), one that does not (an older collector
says nothing until its first ack) gets the spooled frames as they are. Every stream starts with
a new encoder, so frames resent after a reconnect or to another collector carry what they need.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import grpc

from ferry import transport
from ferry.agent import selfmetrics as m
from ferry.agent.credentials import Credentials
from ferry.agent.spool import Spool
from ferry.transport import Endpoint
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from ferry.wire import stream as stream_wire
from ferry.wire.frames import FrameError, FrameLimits, check_frame, receive_limit
from ferry.wire.streamenc import StreamEncoder

log = logging.getLogger("ferry.agent.sender")
_RESOURCE_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
_REFUSED = ("UNAUTHENTICATED", "PERMISSION_DENIED")
MAX_SEND_BYTES = receive_limit()
# gRPC's words when a message passes a side's limit: the receiver's limit is the second number
_TOO_LARGE = re.compile(r"(?:Received|Sent) message larger than max \((\d+) vs\. (\d+)\)")
# how long a new stream waits for the collector's answer to the stream encoding before sending
# self-contained frames (a collector that takes it answers at once; an older one not before its
# first ack)
NEGOTIATE_S = 2.0
# The agent only receives acks (27 bytes each): gRPC's bandwidth-delay probing of what it
# receives is of no use, and its pings and the window updates they bring cost ~33 bytes a frame
# on an otherwise idle stream (0.1 bytes a point at the defaults). The collector keeps probing:
# frames are what flows its way.
CHANNEL_OPTIONS = (("grpc.http2.bdp_probe", 0),)


class ProtocolError(Exception):
    """The collector broke the stream protocol (e.g. an ack out of order)."""


class RetryLater(Exception):
    def __init__(self, delay_s: float, reason: str):
        super().__init__(reason)
        self.delay_s = delay_s


class InFlight(NamedTuple):
    pos: int
    epoch: int
    seq: int
    points: int
    refused: str = ""  # why the frame was not sent (it is dropped when it reaches the head)


class Sender:
    def __init__(
        self,
        spool: Spool,
        addresses: list[str],
        window: int = 32,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 10.0,
        credentials: Credentials | None = None,
        stream_encoding: bool = True,
    ):
        self.spool = spool
        self.credentials = credentials or Credentials()  # replaced on reload; used from the next stream on
        self.addresses = addresses
        self.window = window
        self.base = backoff_base_s
        self.cap = backoff_cap_s
        self.wake = asyncio.Event()  # set (thread-safely, by the spool's owner) when a frame is appended
        self.frame_limits = FrameLimits()
        self.max_message_bytes = MAX_SEND_BYTES  # lowered to a collector's receive limit it reports
        self.stream_encoding = stream_encoding
        self.plain_head = False  # the next stream's first frame goes self-contained
        self._encoding = ThreadPoolExecutor(1, thread_name_prefix="encode")  # off the event loop

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set and nothing is in flight."""
        attempt, index = 0, 0
        while not stop.is_set():
            address = self.addresses[index % len(self.addresses)]
            delay = None
            try:
                await self._session(address, stop)
                attempt = 0
            except RetryLater as exc:
                m.BACKPRESSURE.inc()
                log.warning("collector %s asks to retry in %.1fs: %s", address, exc.delay_s, exc)
                delay = exc.delay_s
            except (grpc.aio.AioRpcError, ProtocolError, OSError) as exc:
                code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                details = (exc.details() or "") if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                # refused credentials are the operator's to fix: frames stay spooled meanwhile
                level = logging.ERROR if code in _REFUSED else logging.WARNING
                log.log(level, "stream to %s failed: %s %s", address, code, details)
                self._learn_limit(details)
                if code == "INVALID_ARGUMENT" and stream_wire.STATE_LOST in details:
                    # the collector could not read the frame against the stream's state: the
                    # next stream sends it self-contained (it cannot fail that way twice)
                    self.plain_head = True
                index += 1
            except Exception:
                # the sender is the only way out for spooled data: it must outlive any surprise
                log.exception("stream to %s failed unexpectedly", address)
                index += 1
            finally:
                m.CONNECTED.set(0)
                m.STREAM_ENCODED.set(0)
            if stop.is_set():
                break
            m.RECONNECTS.inc()
            if delay is None:
                delay = random.uniform(0, min(self.cap, self.base * 2**attempt))
                attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    def _learn_limit(self, details: str) -> None:
        """A stream ended because a frame was over a receive limit: frames over it are dropped
        from now on (the collector would refuse them however often they are sent)."""
        found = _TOO_LARGE.search(details)
        if found is not None and int(found.group(2)) < self.max_message_bytes:
            self.max_message_bytes = int(found.group(2))
            log.warning(
                "collector takes messages up to %d bytes: larger frames are dropped", self.max_message_bytes
            )

    def _unsendable(self, frame: ingest_pb2.Frame) -> str:
        """Why no collector can take `frame` ('' when it can be sent)."""
        try:
            check_frame(frame, self.frame_limits)
        except FrameError as exc:
            return str(exc)
        size = frame.ByteSize()
        if size > self.max_message_bytes:
            return f"frame of {size} bytes > the collector's receive limit {self.max_message_bytes}"
        return ""

    def _drop_refused(self, inflight: deque[InFlight], room: asyncio.Event) -> None:
        """Drop the frames at the head that were never sent (acks come for the others only)."""
        while inflight and inflight[0].refused:
            head = inflight.popleft()
            room.set()
            self.spool.ack(head.pos)
            m.FRAMES_REJECTED.inc()
            m.POINTS_REJECTED.inc(head.points)
            log.error(
                "frame %d:%d (%d points) dropped unsent: %s", head.epoch, head.seq, head.points, head.refused
            )

    async def _session(self, address: str, stop: asyncio.Event) -> None:
        creds = self.credentials
        endpoint = Endpoint(
            address, max_send_bytes=MAX_SEND_BYTES, options=CHANNEL_OPTIONS, tls=creds.tls, token=creds.token
        )
        async with transport.aio_channel(endpoint) as channel:
            metadata = ((stream_wire.REQUEST_HEADER, stream_wire.VERSION),) if self.stream_encoding else None
            call = ingest_pb2_grpc.IngestStub(channel).Stream(metadata=metadata)
            inflight: deque[InFlight] = deque()
            room = asyncio.Event()
            room.set()
            writer = asyncio.create_task(self._write(call, inflight, room, stop))
            try:
                await self._read(call, inflight, room, address)
            finally:
                writer.cancel()
                call.cancel()
                # the writer may have died of the same failure in its own words (InvalidStateError
                # "RPC already finished", AioRpcError, ...): the reader's exception is the one that counts
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer

    async def _encoder(self, call) -> StreamEncoder | None:
        """The stream's encoder, if its collector accepts the stream encoding."""
        if not self.stream_encoding:
            return None
        try:
            metadata = await asyncio.wait_for(call.initial_metadata(), NEGOTIATE_S)
        except TimeoutError:
            log.info("no answer to the stream encoding within %.1fs: self-contained frames", NEGOTIATE_S)
            return None
        bounds = stream_wire.accepted(metadata)
        if bounds is None:
            return None
        m.STREAM_ENCODED.set(1)
        return StreamEncoder(bounds)

    async def _write(self, call, inflight: deque[InFlight], room: asyncio.Event, stop: asyncio.Event) -> None:
        last_sent = 0
        encoder = await self._encoder(call)
        while True:
            while len(inflight) >= self.window:
                room.clear()
                await room.wait()
            self.wake.clear()
            got = self.spool.next_after(last_sent)
            if got is None:
                if stop.is_set() and not inflight:
                    await call.done_writing()
                    return
                # woken by the spool's append or by stop; the timeout is only a safety net
                waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
                await asyncio.wait(waiters, timeout=30.0, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
                continue
            pos, frame = got
            last_sent = pos
            refused = self._unsendable(frame)
            inflight.append(InFlight(pos, frame.epoch, frame.seq, frame.point_count, refused))
            if refused:
                self._drop_refused(inflight, room)
                continue
            if encoder is not None and self.plain_head:
                self.plain_head = False
            elif encoder is not None:
                # in order: this frame is written before the next one is encoded
                encoded = await asyncio.get_running_loop().run_in_executor(
                    self._encoding, encoder.encode, frame
                )
                if encoded is not None:
                    frame = encoded
                    m.FRAMES_STREAM_ENCODED.inc()
            await call.write(frame)
            m.CONNECTED.set(1)
            m.FRAMES_SENT.inc()
            m.BYTES_SENT.inc(len(frame.payload))

    async def _read(self, call, inflight: deque[InFlight], room: asyncio.Event, address: str) -> None:
        async for ack in call:
            m.ACKS.labels(ingest_pb2.AckStatus.Name(ack.status)).inc()
            head = inflight[0] if inflight else None
            if head is None or (head.epoch, head.seq) != (ack.epoch, ack.seq):
                raise ProtocolError(f"ack for {ack.epoch}:{ack.seq} out of order (expected {head})")
            if ack.status == ingest_pb2.REJECTED and ack.code == _RESOURCE_EXHAUSTED:
                raise RetryLater(max(ack.retry_after_ms, 50) / 1000, ack.message)
            inflight.popleft()
            room.set()
            self.spool.ack(head.pos)
            self._drop_refused(inflight, room)
            if ack.status == ingest_pb2.REJECTED:
                m.FRAMES_REJECTED.inc()
                m.POINTS_REJECTED.inc(head.points)
                log.error(
                    "collector %s rejected frame %d:%d (%d points dropped): %s",
                    address,
                    head.epoch,
                    head.seq,
                    head.points,
                    ack.message,
                )
