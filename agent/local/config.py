"""The Local service's keys, and the service as the agent runs it (ferry.agent.wiring builds it).

Its listeners are bound once: a reload that changes them is reported as needing a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import grpc

from ferry.agent.intake import Intake
from ferry.agent.local import server as local_server
from ferry.agent.local.server import LocalService
from ferry.runtime.config import setting


@dataclass
class LocalConfig:
    """The Local service apps send to."""

    local_listen: str = setting(
        "127.0.0.1:4771",
        "optional_address",
        "Local gRPC service for apps on loopback TCP ('' disables)",
        metavar="HOST:PORT",
    )
    local_socket: str = setting(
        "/run/ferry/agent.sock", "str", "Local gRPC unix socket for apps ('' disables)", metavar="PATH"
    )


Submit = Callable[[Intake], Future | None]  # hands an Intake to the pipeline thread


class LocalEndpoint:
    """`ferry.v1.Local` on the configured socket and address, started and stopped with the agent."""

    def __init__(self, cfg: LocalConfig, submit: Submit, pending: Callable[[], int]):
        self.listen, self.socket = cfg.local_listen, cfg.local_socket
        self.service = LocalService(submit, pending)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._server = await local_server.start(self.service, self.listen, self.socket)

    async def stop(self) -> None:
        await local_server.stop(self._server, self.socket)
        self._server = None


def build(cfg: LocalConfig, submit: Submit, pending: Callable[[], int]) -> LocalEndpoint:
    return LocalEndpoint(cfg, submit, pending)
