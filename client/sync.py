"""`Telemetry`: the client for threaded (or plain synchronous) apps.

A daemon thread drains the buffer every `flush_interval` seconds (sooner when `batch_size`
records are waiting) and sends the requests to the local agent. Recording never raises into the
app and never blocks it on the agent; flush() and close() wait at most their timeout.
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref

import grpc

from ferry import transport
from ferry.client.outbox import agent_endpoint
from ferry.client.recorder import Recorder, log
from ferry.v1 import local_pb2_grpc

SEND_TIMEOUT_S = 5.0


class Telemetry(Recorder):
    """Send metrics, events and logs to the local Ferry agent from any thread (options: see
    `Recorder`); delivery runs on a daemon thread."""

    def __init__(self, target: str = "127.0.0.1:4771", **options):
        super().__init__(target, **options)
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._flush_gen = self._done_gen = 0
        self._stop = False
        self._channel = transport.channel(agent_endpoint(target))
        self._stub = local_pb2_grpc.LocalStub(self._channel)
        self._thread = threading.Thread(target=self._run, name="ferry-telemetry", daemon=True)
        self._thread.start()
        atexit.register(_close_at_exit, weakref.ref(self))

    def _wake_sender(self) -> None:
        self._wake.set()

    # -- delivery ---------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything recorded so far; True when the agent took all of it in time. While
        the agent is unreachable, this retries (with backoff) until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._cycle_done(deadline):
                return False
            if not len(self._buffer) and not len(self._outbox):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))

    def _cycle_done(self, deadline: float) -> bool:
        """Wake the delivery thread and wait for one whole cycle of it."""
        with self._flushed:
            self._flush_gen += 1
            want = self._flush_gen
        self._wake.set()
        with self._flushed:
            while self._done_gen < want:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._flushed.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to `timeout`), stop the thread and the channel. Later records are dropped
        and counted as closed. Called at interpreter exit too."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._closed = True
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=1.0)
        self._outbox.drop_all()
        self._channel.close()
        return ok

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._flushed:
                gen = self._flush_gen
            try:
                self._wake_pending = False
                self._outbox.put(self._buffer.drain())
                self._send_ready(deadline=time.monotonic() + SEND_TIMEOUT_S)
            except Exception:  # a bug of ours must not end delivery for the app's lifetime
                log.exception("ferry client: delivery cycle failed")
            with self._flushed:
                self._done_gen = gen
                self._flushed.notify_all()

    def _send_ready(self, deadline: float) -> None:
        outbox = self._outbox
        while outbox.ready() and not self._stop:
            request = outbox.next()
            try:
                response = self._stub.Send(
                    request, timeout=max(0.1, deadline - time.monotonic()), metadata=self._token.metadata
                )
            except grpc.RpcError as exc:
                self._send_failed(request, exc)
                return
            outbox.done(request, response.accepted)


def _close_at_exit(ref: weakref.ref) -> None:
    client = ref()
    if client is not None:
        client.close(timeout=2.0)
