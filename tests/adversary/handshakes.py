"""Hostile connections for a TLS port: garbage bytes, broken and truncated ClientHellos, TLS
records with absurd lengths, handshakes abandoned half way, plaintext HTTP/2 and HTTP/1.1, a
client certificate missing or from another CA, and garbage after a good mTLS handshake.

Each case opens one raw TCP connection, does its damage, and says how the server ended it:
`closed` (EOF or a reset), `alert` (a TLS alert record, then EOF), `open` (the server was still
waiting when the case gave up on it: only for cases that stop mid-message or mid-handshake, as
a slow client would) or `answered` (bytes that are not an alert). Blocking sockets; run the
cases from a thread pool.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WAIT_S = 10.0  # how long a case waits for the server to end a connection it must refuse
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty HTTP/2 SETTINGS frame


@dataclass(frozen=True)
class Files:
    """The PEM files the handshaking cases use."""

    ca: Path  # the collector's CA
    cert: Path  # a client certificate that CA issued
    key: Path
    foreign_cert: Path  # one another CA issued
    foreign_key: Path


def client_hello(rng: random.Random, server_name: str = "") -> bytes:
    """A real TLS ClientHello (OpenSSL's, ALPN h2) as it goes on the wire: one or more records."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    name = server_name or rng.choice(["localhost", "collector"])
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def hello_with_server_name(raw: bytes) -> bytes:
    """A ClientHello whose SNI is `raw`, any bytes (newlines too): a placeholder name of the same
    length is put in by OpenSSL, then replaced, so every length field stays right."""
    placeholder = ".".join("x" * 60 for _ in range(len(raw) // 61 + 1))[: len(raw)].rstrip(".")
    placeholder += "x" * (len(raw) - len(placeholder))
    hello = client_hello(random.Random(0), placeholder)
    assert hello.count(placeholder.encode()) == 1
    return hello.replace(placeholder.encode(), raw)


def _connect(addr: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(addr, timeout=WAIT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _ending(sock: socket.socket) -> str:
    """How the server answers what was sent: its first bytes, and for an alert, whether it then
    closes."""
    try:
        first = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    except TimeoutError:
        return "open"
    if not first:
        return "closed"
    if first[0] != 0x15:
        return "answered"
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        return "alert_then_open"
    return "alert"


def _send_and_wait(addr: tuple[str, int], data: bytes) -> str:
    with _connect(addr) as sock:
        try:
            sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            return "closed"
        return _ending(sock)


def _send_and_drop(addr: tuple[str, int], data: bytes, reset: bool = False) -> str:
    """Send `data` and close at once (with a TCP reset when `reset`): the server never gets the
    rest of what it is waiting for."""
    sock = _connect(addr)
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        sock.sendall(data)
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return "open"


def _record(content_type: int, body: bytes, version: bytes = b"\x03\x01", length: int | None = None) -> bytes:
    return bytes([content_type]) + version + struct.pack(">H", len(body) if length is None else length) + body


# -- the cases: each (rng, addr, files) -> outcome ---------------------------------------------


def random_bytes(rng: random.Random, addr, files: Files) -> str:
    return _send_and_wait(addr, rng.randbytes(rng.randint(1, 4096)))


def random_after_handshake_byte(rng: random.Random, addr, files: Files) -> str:
    """0x16 (a handshake record) and then noise: looks like TLS for one byte."""
    return _send_and_wait(addr, b"\x16" + rng.randbytes(rng.randint(1, 2048)))


def truncated_hello(rng: random.Random, addr, files: Files) -> str:
    hello = client_hello(rng)
    return _send_and_drop(addr, hello[: rng.randint(1, len(hello) - 1)], reset=rng.random() < 0.5)


def garbled_hello(rng: random.Random, addr, files: Files) -> str:
    hello = bytearray(client_hello(rng))
    for _ in range(rng.randint(1, 16)):
        hello[rng.randrange(5, len(hello))] = rng.randrange(256)  # past the record header
    return _send_and_wait(addr, bytes(hello))


def absurd_record_length(rng: random.Random, addr, files: Files) -> str:
    """A record header claiming more than TLS allows (2^14 + 2048), then some of it."""
    length = rng.choice([0xFFFF, 0x4801, 0x8000, 0x4000 + 2049])
    return _send_and_wait(addr, _record(0x16, rng.randbytes(rng.randint(0, 512)), length=length))


def absurd_handshake_length(rng: random.Random, addr, files: Files) -> str:
    """A ClientHello message claiming 16 MiB inside a small record."""
    body = b"\x01" + b"\xff\xff\xff" + b"\x03\x03" + rng.randbytes(rng.randint(32, 300))
    return _send_and_wait(addr, _record(0x16, body))


def zero_length_records(rng: random.Random, addr, files: Files) -> str:
    """More empty handshake records than BoringSSL allows in a row (32)."""
    return _send_and_wait(addr, _record(0x16, b"") * rng.randint(33, 96))


def wrong_first_record(rng: random.Random, addr, files: Files) -> str:
    """Application data, an alert, a change-cipher-spec or heartbeat before any ClientHello."""
    kind = rng.choice([0x14, 0x15, 0x17, 0x18, 0x00, 0xFF])
    return _send_and_wait(addr, _record(kind, rng.randbytes(rng.randint(1, 200))))


def old_versions(rng: random.Random, addr, files: Files) -> str:
    """An SSLv2-style hello, or a ClientHello record stamped SSL 3.0 / TLS 9.9."""
    if rng.random() < 0.5:
        body = b"\x01\x00\x02" + b"\x00\x03\x00\x00\x00\x10" + b"\x01\x00\x80" + rng.randbytes(16)
        return _send_and_wait(addr, bytes([0x80, len(body)]) + body)
    hello = bytearray(client_hello(rng))
    hello[1:3] = rng.choice([b"\x03\x00", b"\x09\x09", b"\x02\x00"])
    return _send_and_wait(addr, bytes(hello))


def fragmented_hello_dropped(rng: random.Random, addr, files: Files) -> str:
    """A good ClientHello cut into one-byte records (legal TLS), the connection dropped before
    the last: the server is left mid-handshake."""
    hello = client_hello(rng)
    body = hello[5:]
    cut = rng.randint(1, len(body) - 1)
    return _send_and_drop(addr, b"".join(_record(0x16, body[i : i + 1]) for i in range(cut)))


def http2_preface(rng: random.Random, addr, files: Files) -> str:
    """Plaintext gRPC: the HTTP/2 preface and SETTINGS, as an insecure channel would send them."""
    return _send_and_wait(addr, HTTP2_PREFACE + SETTINGS)


def http1_request(rng: random.Random, addr, files: Files) -> str:
    request = b"GET /ferry.v1.Query/ListAgents HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n"
    return _send_and_wait(addr, request)


def slow_hello(rng: random.Random, addr, files: Files) -> str:
    """Half of a ClientHello, then nothing until the case gives up (a slowloris)."""
    hello = client_hello(rng)
    with _connect(addr) as sock:
        sock.sendall(hello[: len(hello) // 2])
        sock.settimeout(rng.uniform(0.2, 1.0))
        return _ending(sock)


def abandoned_after_server_hello(rng: random.Random, addr, files: Files) -> str:
    """A real handshake driven by hand: ClientHello out, the server's whole flight (its
    certificate, its request for ours) read, then the connection closed instead of answering."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.set_alpn_protocols(["h2"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with _connect(addr) as sock:
        with contextlib.suppress(ssl.SSLWantReadError):
            obj.do_handshake()
        sock.sendall(outgoing.read())
        chunk = sock.recv(65536)
        if not chunk:
            return "closed"
        return "open"  # the server wrote its flight and waits for ours; we leave instead


def _tls_client(files: Files, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(files.ca))
    ctx.set_alpn_protocols(["h2"])
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _handshake_then(addr, ctx: ssl.SSLContext, data: bytes) -> str:
    """A full handshake with `ctx`, then `data` inside TLS; how the server ends it."""
    with _connect(addr) as raw:
        try:
            tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return "alert"  # refused in the handshake (TLS 1.2 style)
        with tls:
            try:
                tls.sendall(data)
                got = tls.recv(65536)
                while got:
                    got = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                return "alert"  # TLS 1.3: the certificate refused after the client's Finished
            except TimeoutError:
                return "open"
            return "closed"


def no_client_cert(rng: random.Random, addr, files: Files) -> str:
    return _handshake_then(addr, _tls_client(files, None, None), HTTP2_PREFACE + SETTINGS)


def foreign_client_cert(rng: random.Random, addr, files: Files) -> str:
    ctx = _tls_client(files, files.foreign_cert, files.foreign_key)
    return _handshake_then(addr, ctx, HTTP2_PREFACE + SETTINGS)


def garbage_after_handshake(rng: random.Random, addr, files: Files) -> str:
    """A good client certificate, then bytes that are not HTTP/2 inside the TLS session."""
    data = rng.choice([b"", HTTP2_PREFACE]) + rng.randbytes(rng.randint(1, 4096))
    return _handshake_then(addr, _tls_client(files, files.cert, files.key), data)


Case = Callable[[random.Random, tuple[str, int], Files], str]

CASES: dict[str, Case] = {
    f.__name__: f
    for f in (
        random_bytes,
        random_after_handshake_byte,
        truncated_hello,
        garbled_hello,
        absurd_record_length,
        absurd_handshake_length,
        zero_length_records,
        wrong_first_record,
        old_versions,
        fragmented_hello_dropped,
        http2_preface,
        http1_request,
        slow_hello,
        abandoned_after_server_hello,
        no_client_cert,
        foreign_client_cert,
        garbage_after_handshake,
    )
}

# the cases that leave the server waiting by design: any ending is theirs
OPEN_ENDED = frozenset(
    {"truncated_hello", "fragmented_hello_dropped", "slow_hello", "abandoned_after_server_hello"}
)
