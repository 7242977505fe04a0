"""A loopback TCP proxy that counts every byte it forwards, for wire-cost measurements.

`CountingProxy(listen_port, target_host, target_port)` listens on 127.0.0.1 and forwards every
connection to the target unchanged, both ways, counting the TCP payload in each direction
(client to server, server to client): everything a protocol puts on the wire above TCP, so an
HTTP/2 connection's preface, SETTINGS, HEADERS, DATA, PING, WINDOW_UPDATE and GOAWAY frames, or
an HTTP/1.1 connection's requests and responses. IP and TCP headers are not counted. Used as a
context manager; `snapshot()` returns both counters at one instant, and the difference of two
snapshots is the cost of the window between them.

A `tap` sees every chunk after it was forwarded and counted (in the proxy's thread: keep it
quick): `Http2Tap` splits an HTTP/2 connection into its frames, adds up their bytes by frame
type and direction, and hands each gRPC message it reassembles from DATA frames to a callback.

The proxy runs an asyncio loop in a thread of its own, so the caller's code stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple

C2S, S2C = "c2s", "s2c"  # client to server, server to client
Tap = Callable[[int, str, bytes], None]  # (connection number, direction, chunk)
CHUNK = 1 << 16


class Counts(NamedTuple):
    """Bytes forwarded client to server and server to client (since the proxy started, or over a
    window: the difference of two snapshots)."""

    client_to_server: int
    server_to_client: int

    @property
    def total(self) -> int:
        return self.client_to_server + self.server_to_client

    def __sub__(self, other: Counts) -> Counts:  # type: ignore[override]
        return Counts(
            self.client_to_server - other.client_to_server, self.server_to_client - other.server_to_client
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class CountingProxy:
    """Forwards connections on 127.0.0.1:`listen_port` (0: any free port; see `port`) to
    `target_host`:`target_port` (a loopback address), counting bytes both ways."""

    def __init__(self, listen_port: int, target_host: str, target_port: int, tap: Tap | None = None):
        if not _loopback(target_host):
            raise ValueError(f"target {target_host!r} is not a loopback address")
        self.listen_port = listen_port
        self.target = (target_host.strip("[]"), target_port)
        self.tap = tap
        self.port = 0
        self.connections = 0
        self._counts = {C2S: 0, S2C: 0}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(self._counts[C2S], self._counts[S2C])

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> CountingProxy:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, "127.0.0.1", self.listen_port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # handed to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"proxy:{self.listen_port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        """Stop listening and close every forwarded connection (both ends)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- forwarding -----------------------------------------------------------------------------

    async def _serve(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = self.connections
        s_writer = None
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                self._pump(conn, C2S, c_reader, s_writer), self._pump(conn, S2C, s_reader, c_writer)
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (c_writer, s_writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(Exception):
                        await w.wait_closed()

    async def _pump(
        self, conn: int, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Copy one direction until EOF, then half-close the other side (a peer that shuts down
        its sending side still reads the answer)."""
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
                with self._lock:
                    self._counts[direction] += len(data)
                if self.tap is not None:
                    self.tap(conn, direction, data)
            if writer.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    writer.write_eof()
        except OSError:
            writer.close()  # a reset on one side ends the other too


# -- HTTP/2 ------------------------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_TYPES = {
    0: "DATA",
    1: "HEADERS",
    2: "PRIORITY",
    3: "RST_STREAM",
    4: "SETTINGS",
    5: "PUSH_PROMISE",
    6: "PING",
    7: "GOAWAY",
    8: "WINDOW_UPDATE",
    9: "CONTINUATION",
}
PADDED = 0x8
Message = Callable[[int, str, int, bytes], None]  # (connection, direction, stream id, message)


class Http2Tap:
    """A proxy tap for HTTP/2 (cleartext, prior knowledge: gRPC without TLS). `bytes` and
    `frames` count, by (direction, frame type), every frame's bytes (its 9-byte header
    included) and the frames; the client preface is counted as type "PREFACE". Each complete
    gRPC message of a DATA stream (5-byte prefix: compressed flag, length) is passed, without its
    prefix, to `on_message(connection, direction, stream id, message)`; messages compressed by
    gRPC are counted in `compressed_messages` and not passed."""

    def __init__(self, on_message: Message | None = None):
        self.on_message = on_message
        self.bytes: dict[tuple[str, str], int] = defaultdict(int)
        self.frames: dict[tuple[str, str], int] = defaultdict(int)
        self.compressed_messages = 0
        self._buf: dict[tuple[int, str], bytearray] = defaultdict(bytearray)
        self._preface_seen: set[int] = set()
        self._streams: dict[tuple[int, str, int], bytearray] = defaultdict(bytearray)

    def totals(self) -> dict[str, int]:
        """Bytes by "direction TYPE" (a copy: take one at each end of a window)."""
        return {f"{d} {t}": n for (d, t), n in self.bytes.items()}

    def frame_counts(self) -> dict[str, int]:
        """Frames by "direction TYPE" (a copy)."""
        return {f"{d} {t}": n for (d, t), n in self.frames.items()}

    def __call__(self, conn: int, direction: str, data: bytes) -> None:
        buf = self._buf[conn, direction]
        buf += data
        if direction == C2S and conn not in self._preface_seen:
            if len(buf) < len(PREFACE):
                return
            if buf.startswith(PREFACE):
                del buf[: len(PREFACE)]
                self.bytes[direction, "PREFACE"] += len(PREFACE)
                self.frames[direction, "PREFACE"] += 1
            self._preface_seen.add(conn)
        while len(buf) >= 9:
            length = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + length:
                return
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(buf[9 : 9 + length])
            del buf[: 9 + length]
            name = FRAME_TYPES.get(kind, f"TYPE{kind}")
            self.bytes[direction, name] += 9 + length
            self.frames[direction, name] += 1
            if kind == 0:
                if flags & PADDED and payload:
                    payload = payload[1 : len(payload) - payload[0]]
                self._data(conn, direction, stream, payload)

    def _data(self, conn: int, direction: str, stream: int, payload: bytes) -> None:
        pending = self._streams[conn, direction, stream]
        pending += payload
        while len(pending) >= 5:
            size = int.from_bytes(pending[1:5], "big")
            if len(pending) < 5 + size:
                return
            compressed, message = pending[0], bytes(pending[5 : 5 + size])
            del pending[: 5 + size]
            if compressed:
                self.compressed_messages += 1
            elif self.on_message is not None:
                self.on_message(conn, direction, stream, message)
