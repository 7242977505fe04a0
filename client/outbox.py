"""Requests on their way to the agent, and what to do when a send fails.

Shared by the thread and asyncio clients, which only differ in how they call `Send`. A request
the agent did not take because it was unreachable, slow or busy (UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED, ...) is sent again, with backoff: its summed counters and histograms go back
into the buffer (they merge with newer ones, so an outage costs no space for them and loses
nothing), its gauges, events and logs are kept in order, and past `max_records` of those the
oldest are dropped and counted as undelivered. A request the agent refused
as invalid is dropped and counted as rejected: sending it again would fail the same way.
"""

from __future__ import annotations

import time
from collections import deque

import grpc

from ferry.client.buffer import REJECTED, UNDELIVERED, Buffer, records_in
from ferry.transport import Endpoint
from ferry.v1 import local_pb2

MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0
# channel options: reconnect soon after the agent comes back (gRPC's default backoff reaches 120 s)
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


def agent_endpoint(target: str) -> Endpoint:
    """How the client reaches its agent: quick reconnects, requests under the agent's 4 MiB limit."""
    return Endpoint(target, max_send_bytes=4 * 1024 * 1024, options=RECONNECT_OPTIONS)


class Outbox:
    def __init__(self, buffer: Buffer, max_records: int = 100_000, clock=time.monotonic):
        self.buffer = buffer
        self.dropped = buffer.dropped  # one place to read every drop count
        self.max_records = max_records
        self.clock = clock
        self.sent = 0  # records the agent accepted
        self.last_error = ""
        self._queue: deque[local_pb2.Records] = deque()
        self._held = 0
        self._backoff = 0.0
        self._retry_at = 0.0

    def __len__(self) -> int:
        return self._held

    def put(self, requests: list[local_pb2.Records]) -> None:
        for r in requests:
            self._queue.append(r)
            self._held += records_in(r)
        self._bound()

    def _bound(self) -> None:
        while self._held > self.max_records and len(self._queue) > 1:
            old = self._queue.popleft()
            self._held -= records_in(old)
            self.dropped[UNDELIVERED] += records_in(self.buffer.take_back(old))

    def ready(self) -> bool:
        """A request is waiting and any backoff has passed."""
        return bool(self._queue) and self.clock() >= self._retry_at

    def next(self) -> local_pb2.Records:
        return self._queue[0]

    def done(self, request: local_pb2.Records, accepted: int) -> None:
        self._queue.popleft()
        self._held -= records_in(request)
        self.sent += accepted
        self._backoff = 0.0

    def failed(self, request: local_pb2.Records, exc: grpc.RpcError) -> None:
        code = exc.code() if hasattr(exc, "code") else None
        self.last_error = (
            f"{getattr(code, 'name', code)}: {exc.details() if hasattr(exc, 'details') else exc}"
        )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            self._queue.popleft()
            n = records_in(request)
            self._held -= n
            self.dropped[REJECTED] += n
            return
        self._queue.popleft()
        self._held -= records_in(request)
        rest = self.buffer.take_back(request)
        if records_in(rest):
            self._queue.appendleft(rest)
            self._held += records_in(rest)
        self._backoff = min(MAX_BACKOFF_S, max(MIN_BACKOFF_S, self._backoff * 2))
        self._retry_at = self.clock() + self._backoff

    def drop_all(self) -> int:
        """At close, what could not be delivered in time: counted, then forgotten."""
        n = self._held
        self.dropped[UNDELIVERED] += n
        self._queue.clear()
        self._held = 0
        return n
