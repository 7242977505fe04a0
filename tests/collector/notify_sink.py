"""A local HTTP server that records the JSON POSTed to it: the webhook, Slack and Alertmanager
receivers' far end in the notification tests. `statuses` scripts the answers (then 200s);
`delay_s` holds each answer that long (a receiver that times out). `running` runs a Notifier."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ferry.collector.alerting.notify import Notifier


@dataclass
class Request:
    path: str
    body: Any
    at: float  # time.monotonic() when it arrived
    headers: dict[str, str] = field(default_factory=dict)


class Sink:
    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0):
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.requests: list[Request] = []
        self.arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.arrived:
                    status = sink.statuses.pop(0) if sink.statuses else 200
                    sink.requests.append(
                        Request(self.path, json.loads(data or b"null"), time.monotonic(), dict(self.headers))
                    )
                    sink.arrived.notify_all()
                if sink.delay_s:
                    time.sleep(sink.delay_s)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the sender timed out
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 10.0) -> list[Request]:
        """The first `count` requests, once they have arrived (AssertionError after timeout)."""
        with self.arrived:
            ok = self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)
        assert ok, f"{len(self.requests)} requests arrived, {count} expected within {timeout}s"
        return self.requests[:count]


@contextlib.contextmanager
def running(notifier: Notifier) -> Iterator[Notifier]:
    """The notifier's `run` on an event loop of its own thread, as the collector runs it beside
    the evaluator; the test calls `update` from its own thread, as an evaluator may."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    done = threading.Event()

    def main() -> None:
        try:
            loop.run_until_complete(notifier.run(stop))
        finally:
            loop.close()
            done.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    try:
        yield notifier
    finally:
        loop.call_soon_threadsafe(stop.set)
        assert done.wait(10), "Notifier.run did not end within 10 s of stop"
