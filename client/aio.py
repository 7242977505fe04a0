"""`AsyncTelemetry`: the client for asyncio apps.

Recording is the same non-blocking, never-raising calls as `Telemetry`; delivery is a task on
the app's event loop with a `grpc.aio` channel. Start it with `async with AsyncTelemetry(...)`
or `await start()` (the first record on a running loop starts it too), and `await close()`
before the loop ends: an interpreter-exit hook cannot run a coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc

from ferry import transport
from ferry.client.outbox import agent_endpoint
from ferry.client.recorder import Recorder
from ferry.v1 import local_pb2_grpc

SEND_TIMEOUT_S = 5.0


class AsyncTelemetry(Recorder):
    def __init__(self, target: str = "127.0.0.1:4771", **options):
        super().__init__(target, **options)
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._cycle_lock: asyncio.Lock | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> AsyncTelemetry:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._wake, self._cycle_lock = asyncio.Event(), asyncio.Lock()
            self._channel = transport.aio_channel(agent_endpoint(self.target))
            self._stub = local_pb2_grpc.LocalStub(self._channel)
            self._task = asyncio.create_task(self._run(), name="ferry-telemetry")
        return self

    async def __aenter__(self) -> AsyncTelemetry:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def _wake_sender(self) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):  # no running loop: the next start() sends
                asyncio.get_running_loop().create_task(self.start())
            return
        self._loop.call_soon_threadsafe(self._wake.set)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Send everything recorded so far; True when the agent took all of it in time. While
        the agent is unreachable, this retries (with backoff) until `timeout`."""
        await self.start()
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(self._cycle(), max(0.0, left))
            except TimeoutError:
                return False
            if not len(self._buffer) and not len(self._outbox):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(0.05, left))

    async def close(self, timeout: float = 5.0) -> bool:
        if self._closed:
            return True
        ok = await self.flush(timeout)
        self._closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._outbox.drop_all()
        await self._channel.close()
        return ok

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            await self._cycle()

    async def _cycle(self) -> None:
        async with self._cycle_lock:
            outbox = self._outbox
            self._wake_pending = False
            outbox.put(self._buffer.drain())
            deadline = time.monotonic() + SEND_TIMEOUT_S
            while outbox.ready():
                request = outbox.next()
                try:
                    response = await self._stub.Send(
                        request, timeout=max(0.1, deadline - time.monotonic()), metadata=self._token.metadata
                    )
                except grpc.RpcError as exc:
                    self._send_failed(request, exc)
                    return
                outbox.done(request, response.accepted)
