"""The one place Ferry builds gRPC client channels and server ports.

Every channel (the agent's sender, the client library, the `ferry` CLI, devrun, tests and
benches) and every listening port (the collector, the agent's local service) is made here from
an `Endpoint`: an address and the settings that decide how to reach or serve it: size limits,
further options, TLS (`ClientTLS`: the CA to trust, a client certificate for mTLS, the server
name to check) and a bearer token sent with every call (only over TLS). A server port is bound
plaintext, or with `ServerCredentials` (certificate, key, and the CA client certificates must
chain to when mTLS is on), whose files `reload` reads again for the handshakes that follow
while established connections keep theirs. grpcio and the standard library only: the client
library ships this module.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

Option = tuple[str, Any]


class CredentialsError(ValueError):
    """A certificate, key, CA or token file that cannot be used; the message names the file."""


MAX_TOKEN_BYTES = 4096


def check_token(token: str, where: str) -> str:
    """`token` if it can be sent as a bearer token: 1..4096 visible ASCII characters."""
    if not token:
        raise CredentialsError(f"{where}: empty (a token is one line of visible ASCII characters)")
    if len(token) > MAX_TOKEN_BYTES:
        raise CredentialsError(f"{where}: {len(token)} characters > {MAX_TOKEN_BYTES} allowed for a token")
    bad = next((c for c in token if not ("!" <= c <= "~")), None)
    if bad is not None:
        raise CredentialsError(
            f"{where}: a token is visible ASCII only (no spaces or other characters); found {bad!r}"
        )
    return token


def read_token(path: str) -> str:
    """The bearer token in a file: its one line, surrounding whitespace stripped."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TOKEN_BYTES + 2)
    except OSError as exc:
        raise CredentialsError(f"token file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CredentialsError(f"token file {path}: a token is visible ASCII only") from None
    if "\n" in text:
        raise CredentialsError(f"token file {path}: expected one line, the token")
    return check_token(text, f"token file {path}")


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CredentialsError(f"{what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise CredentialsError(f"{what} {path}: not a PEM file (no -----BEGIN line)")
    return data


def _check_pair(cert: str, key: str, cert_pem: bytes, key_pem: bytes) -> None:
    """The bytes read from `cert` and `key` are PEM and belong together (the standard library's
    TLS checks it, on a private copy: the files may change under a rotation meanwhile)."""
    with tempfile.TemporaryDirectory(prefix="ferry-tls-") as tmp:
        pair = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        for path, data in zip(pair, (cert_pem, key_pem), strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(*pair)
        except ssl.SSLError as exc:
            raise CredentialsError(
                f"certificate {cert} and key {key} cannot be used together: {exc.reason or exc}"
            ) from None


def _check_ca(path: str, what: str, pem: bytes) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=pem.decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise CredentialsError(f"{what} {path}: no CA certificate in it: {exc.reason or exc}") from None


@dataclass(frozen=True)
class ClientTLS:
    """How a client checks the server and, for mTLS, proves who it is (PEM bytes)."""

    ca: bytes | None = None  # None: the system's trusted roots
    cert: bytes | None = None  # client certificate (mTLS), with `key`
    key: bytes | None = field(default=None, repr=False)
    server_name: str = ""  # the name the server's certificate must carry ('' = the address's host)

    @classmethod
    def from_files(cls, ca: str = "", cert: str = "", key: str = "", server_name: str = "") -> ClientTLS:
        """Read and check the files; raises CredentialsError naming the one that cannot be used."""
        if bool(cert) != bool(key):
            raise CredentialsError("a client certificate needs its key, and a key its certificate")
        tls = cls(
            _read(ca, "CA file") if ca else None,
            _read(cert, "certificate") if cert else None,
            _read(key, "key") if key else None,
            server_name,
        )
        if ca:
            _check_ca(ca, "CA file", tls.ca)
        if cert:
            _check_pair(cert, key, tls.cert, tls.key)
        return tls

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


@dataclass(frozen=True)
class Endpoint:
    """An address (HOST:PORT, [V6]:PORT or unix:PATH) and how to talk on it."""

    address: str
    max_send_bytes: int | None = None  # None: gRPC's default (no limit on send)
    max_receive_bytes: int | None = None  # None: gRPC's default (4 MiB)
    options: tuple[Option, ...] = ()  # further gRPC channel/server arguments
    tls: ClientTLS | None = None  # None: plaintext
    token: str = field(default="", repr=False)  # sent with every call ("authorization: Bearer ..."); TLS only

    def grpc_options(self) -> list[Option]:
        extra = self.options
        if self.tls is not None and self.tls.server_name:
            extra = (("grpc.ssl_target_name_override", self.tls.server_name), *extra)
        return _options(self.max_send_bytes, self.max_receive_bytes, extra)

    def credentials(self) -> grpc.ChannelCredentials | None:
        """The channel's credentials (None: plaintext). Raises ValueError for a token without
        TLS: it would travel in the clear."""
        if self.tls is None:
            if self.token:
                raise ValueError(f"{self.address}: a token is only sent over TLS (give a CA to trust)")
            return None
        creds = self.tls.credentials()
        if self.token:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(self.token))
        return creds


def _options(send: int | None, receive: int | None, extra: Sequence[Option]) -> list[Option]:
    out: list[Option] = []
    if send is not None:
        out.append(("grpc.max_send_message_length", send))
    if receive is not None:
        out.append(("grpc.max_receive_message_length", receive))
    return [*out, *extra]


def endpoint(target: Endpoint | str) -> Endpoint:
    return target if isinstance(target, Endpoint) else Endpoint(target)


def channel(target: Endpoint | str) -> grpc.Channel:
    """A blocking channel to `target` (use as a context manager, or close it)."""
    ep = endpoint(target)
    creds = ep.credentials()
    if creds is None:
        return grpc.insecure_channel(ep.address, options=ep.grpc_options())
    return grpc.secure_channel(ep.address, creds, options=ep.grpc_options())


def aio_channel(target: Endpoint | str) -> grpc.aio.Channel:
    """An asyncio channel to `target`."""
    ep = endpoint(target)
    creds = ep.credentials()
    if creds is None:
        return grpc.aio.insecure_channel(ep.address, options=ep.grpc_options())
    return grpc.aio.secure_channel(ep.address, creds, options=ep.grpc_options())


def server(
    *,
    max_send_bytes: int | None = None,
    max_receive_bytes: int | None = None,
    options: Sequence[Option] = (),
    **kwargs: Any,
) -> grpc.aio.Server:
    """An asyncio server; its ports are added with `bind`. kwargs go to grpc.aio.server.
    SO_REUSEPORT is off: gRPC sets it by default, and then a second server on a port in use binds
    without an error and shares the port's connections with the first (a test collector sat
    behind another process's listener and never answered its health checks)."""
    opts = (("grpc.so_reuseport", 0), *options)
    return grpc.aio.server(options=_options(max_send_bytes, max_receive_bytes, opts), **kwargs)


@dataclass(frozen=True)
class ServerTLS:
    """A server's certificate chain and key, and the CA client certificates must chain to
    (None: no client certificate asked for). PEM bytes, checked when read."""

    cert: bytes
    key: bytes = field(repr=False)
    client_ca: bytes | None = None

    @classmethod
    def from_files(cls, cert: str, key: str, client_ca: str = "") -> ServerTLS:
        tls = cls(
            _read(cert, "certificate"),
            _read(key, "key"),
            _read(client_ca, "client CA file") if client_ca else None,
        )
        _check_pair(cert, key, tls.cert, tls.key)
        if client_ca:
            _check_ca(client_ca, "client CA file", tls.client_ca)
        return tls

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(self.key, self.cert)], self.client_ca)


class ServerCredentials:
    """TLS for a server port whose certificate can change while it serves: `reload` hands new
    files to the handshakes that follow; established connections keep the ones they began with.
    Whether client certificates are required is fixed when the port is bound (gRPC asks for and
    verifies them in the handshake, or never asks)."""

    def __init__(self, tls: ServerTLS):
        self.tls = tls
        self.require_client_cert = tls.client_ca is not None
        self._next: ServerTLS | None = None
        self._lock = threading.Lock()

    def reload(self, tls: ServerTLS) -> None:
        if (tls.client_ca is not None) != self.require_client_cert:
            raise CredentialsError(
                "a reload cannot turn client certificates on or off (the port asks for them or not "
                "from its start); restart to change it"
            )
        with self._lock:
            self._next = tls

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: a new configuration once, after a reload."""
        with self._lock:
            tls, self._next = self._next, None
        if tls is None:
            return None
        self.tls = tls
        return tls.configuration()

    def grpc(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.tls.configuration(), self._fetch, require_client_authentication=self.require_client_cert
        )


def bind(
    srv: grpc.aio.Server | grpc.Server, target: Endpoint | str, tls: ServerCredentials | None = None
) -> int:
    """Listen on `target` (with TLS when `tls` is given); returns the bound port (the real one
    when the address says :0). Raises OSError naming the address when it cannot be bound."""
    ep = endpoint(target)
    try:
        port = (
            srv.add_insecure_port(ep.address) if tls is None else srv.add_secure_port(ep.address, tls.grpc())
        )
    except RuntimeError as exc:  # grpcio raises RuntimeError for an address it cannot bind
        raise OSError(f"cannot listen on {ep.address}: {exc}") from None
    if port == 0 and not ep.address.startswith("unix:"):
        raise OSError(f"cannot listen on {ep.address}")
    return port
