"""The one place Ferry builds gRPC client channels and server ports.

Every channel (the agent's sender, the client library, the `ferry` CLI, devrun, tests and
benches) and every listening port (the collector, the agent's local service) is made here from
an `Endpoint`: an address and the settings that decide how to reach or serve it. Today that is
plaintext with size and reconnect options; TLS and credentials join `Endpoint` (and only this
module reads them), so no caller changes when they do. grpcio only: the client library ships it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

Option = tuple[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """An address (HOST:PORT, [V6]:PORT or unix:PATH) and how to talk on it."""

    address: str
    max_send_bytes: int | None = None  # None: gRPC's default (no limit on send)
    max_receive_bytes: int | None = None  # None: gRPC's default (4 MiB)
    options: tuple[Option, ...] = ()  # further gRPC channel/server arguments

    def grpc_options(self) -> list[Option]:
        return _options(self.max_send_bytes, self.max_receive_bytes, self.options)


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
    return grpc.insecure_channel(ep.address, options=ep.grpc_options())


def aio_channel(target: Endpoint | str) -> grpc.aio.Channel:
    """An asyncio channel to `target`."""
    ep = endpoint(target)
    return grpc.aio.insecure_channel(ep.address, options=ep.grpc_options())


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


def bind(srv: grpc.aio.Server | grpc.Server, target: Endpoint | str) -> int:
    """Listen on `target`; returns the bound port (the real one when the address says :0).

    Raises OSError naming the address when it cannot be bound."""
    ep = endpoint(target)
    try:
        port = srv.add_insecure_port(ep.address)
    except RuntimeError as exc:  # grpcio raises RuntimeError for an address it cannot bind
        raise OSError(f"cannot listen on {ep.address}: {exc}") from None
    if port == 0 and not ep.address.startswith("unix:"):
        raise OSError(f"cannot listen on {ep.address}")
    return port
