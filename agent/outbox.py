"""Frames waiting for an ack, in seq order, bounded in bytes.

The batcher puts payloads in (each becomes a Frame with the next seq of this epoch); the sender
reads frames after the last one it sent and acks them out. Past `max_bytes` the oldest frames are
dropped and counted — never silently. This is the in-memory stand-in for the disk spool
(`--spool`), which keeps the same interface.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict

from agent import selfmetrics as m
from ferry.frames import pack_frame
from ferry.v1 import ingest_pb2


class Outbox:
    def __init__(self, agent_id: str, max_bytes: int = 64 * 1024 * 1024, epoch: int | None = None):
        self.agent_id = agent_id
        self.epoch = epoch if epoch is not None else secrets.randbits(64)
        self.max_bytes = max_bytes
        self._frames: OrderedDict[int, ingest_pb2.Frame] = OrderedDict()
        self._bytes = 0
        self._next_seq = 1
        self._changed = asyncio.Event()

    def put(self, payload: bytes, point_count: int) -> ingest_pb2.Frame:
        frame = pack_frame(self.agent_id, self.epoch, self._next_seq, payload, point_count)
        self._next_seq += 1
        self._frames[frame.seq] = frame
        self._bytes += len(frame.payload)
        m.FRAMES_QUEUED.inc()
        while self._bytes > self.max_bytes and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self._bytes -= len(old.payload)
            m.FRAMES_DROPPED.inc()
            m.POINTS_DROPPED.inc(old.point_count)
        self._gauge()
        self._changed.set()
        return frame

    def next_after(self, seq: int) -> ingest_pb2.Frame | None:
        """The oldest frame with a seq greater than `seq`, if any."""
        for s, frame in self._frames.items():
            if s > seq:
                return frame
        return None

    def ack(self, seq: int) -> ingest_pb2.Frame | None:
        frame = self._frames.pop(seq, None)
        if frame is not None:
            self._bytes -= len(frame.payload)
            self._gauge()
            self._changed.set()
        return frame

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def bytes(self) -> int:
        return self._bytes

    def _gauge(self) -> None:
        m.OUTBOX_FRAMES.set(len(self._frames))
        m.OUTBOX_BYTES.set(self._bytes)
