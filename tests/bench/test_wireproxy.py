"""bench/wireproxy.py: the counting proxy forwards both ways byte for byte and counts exactly."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import defaultdict

import pytest

from bench.wireproxy import C2S, PREFACE, S2C, CountingProxy, Counts, Http2Tap


class Server:
    """A one-connection loopback server running `handle(conn)` in a thread."""

    def __init__(self, handle):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handle = handle
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        conn, _ = self.sock.accept()
        with conn:
            self.handle(conn)
        self.sock.close()


def recv_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while data := sock.recv(1 << 16):
        out += data
    return bytes(out)


def wait_counts(proxy: CountingProxy, want: Counts, timeout: float = 5.0) -> Counts:
    """The proxy counts a chunk once written on: the peer may read it a moment before."""
    deadline = time.monotonic() + timeout
    while (got := proxy.snapshot()) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_echo_both_directions_exact():
    def echo(conn):
        conn.sendall(recv_all(conn))  # everything, after the client's half-close

    server = Server(echo)
    payload = os.urandom(700_000)  # many reads and writes through the proxy
    tapped = defaultdict(bytearray)
    with CountingProxy(0, "127.0.0.1", server.port, tap=lambda c, d, b: tapped[c, d].extend(b)) as proxy:
        assert proxy.snapshot() == Counts(0, 0)
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            for i in range(0, len(payload), 100_003):
                client.sendall(payload[i : i + 100_003])
            client.shutdown(socket.SHUT_WR)
            echoed = recv_all(client)
        assert echoed == payload
        got = wait_counts(proxy, Counts(len(payload), len(payload)))
        assert got == Counts(len(payload), len(payload)) and got.total == 2 * len(payload)
        assert bytes(tapped[1, C2S]) == payload and bytes(tapped[1, S2C]) == payload
        assert proxy.connections == 1
    server.thread.join(5)


def test_asymmetric_exchange_and_window_difference():
    greeting, answer = b"g" * 1234, b"ok!\r\n"

    def talk(conn):
        conn.sendall(greeting)
        got = b""
        while len(got) < 17:
            got += conn.recv(100)
        assert got == b"0123456789abcdefg"
        conn.sendall(answer)

    server = Server(talk)
    with CountingProxy(0, "localhost", server.port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as client:
            got = b""
            while len(got) < len(greeting):
                got += client.recv(4096)
            before = wait_counts(proxy, Counts(0, len(greeting)))
            client.sendall(b"0123456789abcdefg")
            assert recv_all(client) == answer  # the server closed after answering
        after = wait_counts(proxy, Counts(17, len(greeting) + len(answer)))
        assert before == Counts(0, 1234)
        assert after == Counts(17, 1239)
        assert after - before == Counts(17, 5)
    server.thread.join(5)


def test_refuses_a_target_off_loopback():
    with pytest.raises(ValueError):
        CountingProxy(0, "192.0.2.1", 80)


def _frame(kind: int, stream: int, payload: bytes, flags: int = 0) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _grpc(message: bytes, compressed: int = 0) -> bytes:
    return bytes([compressed]) + len(message).to_bytes(4, "big") + message


def test_http2_tap_counts_frames_and_reassembles_grpc_messages():
    messages = []
    tap = Http2Tap(lambda c, d, s, m: messages.append((c, d, s, m)))
    one, two = b"a" * 40, b"b" * 3
    body = _grpc(one) + _grpc(two) + _grpc(b"zz", compressed=1)
    client = (
        PREFACE
        + _frame(4, 0, b"\x00\x04\x00\x01\x00\x00")  # SETTINGS
        + _frame(1, 1, b"hdrs")  # HEADERS
        + _frame(0, 1, body[:20])  # a message split over two DATA frames,
        + _frame(0, 1, b"\x03" + body[20:] + b"\x00\x00\x00", flags=0x8)  # the second padded
        + _frame(6, 0, bytes(8))  # PING
    )
    for i in range(len(client)):  # one byte at a time: every boundary split
        tap(7, C2S, client[i : i + 1])
    server = _frame(8, 0, b"\x00\x00\x10\x00") + _frame(0, 1, _grpc(b"ack"))
    tap(7, S2C, server)
    assert messages == [(7, C2S, 1, one), (7, C2S, 1, two), (7, S2C, 1, b"ack")]
    assert tap.compressed_messages == 1
    totals = tap.totals()
    assert sum(n for k, n in totals.items() if k.startswith(C2S)) == len(client)
    assert sum(n for k, n in totals.items() if k.startswith(S2C)) == len(server)
    assert totals[f"{C2S} PREFACE"] == 24 and totals[f"{C2S} PING"] == 17
    assert totals[f"{C2S} DATA"] == 9 + 20 + 9 + 1 + len(body) - 20 + 3
    assert totals[f"{S2C} WINDOW_UPDATE"] == 13
    assert tap.frames[C2S, "DATA"] == 2
