"""The Local service's keys, and the service as the agent runs it (ferry.agent.wiring builds it).

Its listeners are bound once: a reload that changes them (or the socket's mode and group, or
`insecure`) is reported as needing a restart. The token file is read again on every SIGHUP
(`LocalEndpoint.apply`), whether its path or only its contents changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import grpc

from ferry.agent.intake import Intake
from ferry.agent.local import server as local_server
from ferry.agent.local.access import check_listen, is_loopback, parse_socket_group, parse_socket_mode
from ferry.agent.local.auth import TokenCheck, read_token
from ferry.agent.local.server import LocalService
from ferry.runtime.config import ConfigError, setting

log = logging.getLogger("ferry.agent.local")


@dataclass
class LocalConfig:
    """The Local service apps send to."""

    local_listen: str = setting(
        "127.0.0.1:4771",
        "optional_address",
        "Local gRPC service for apps on loopback TCP ('' disables); a non-loopback address needs --insecure",
        metavar="HOST:PORT",
    )
    local_socket: str = setting(
        "/run/ferry/agent.sock", "str", "Local gRPC unix socket for apps ('' disables)", metavar="PATH"
    )
    local_socket_mode: str = setting(
        "0660",
        "octal file mode",
        "mode of the unix socket file: who may connect (0660: its owner and group; 0666: any local user)",
        metavar="MODE",
        parse=parse_socket_mode,
    )
    local_socket_group: str = setting(
        "",
        "group name or gid",
        "group of the unix socket file ('' keeps the agent's own); the agent's user must be in it",
        metavar="GROUP",
        parse=parse_socket_group,
    )
    insecure: bool = setting(
        False,
        "bool",
        "allow a non-loopback --local-listen (any host that reaches it can send as this agent)",
    )

    def check(self) -> None:
        check_listen(self.local_listen, self.insecure)


@dataclass
class LocalTokenConfig:
    """The token apps present to the Local service."""

    local_token_file: str = setting(
        "",
        "str",
        "file holding the token every Local call must send as 'authorization: Bearer <token>' "
        "('' = no token; read again on SIGHUP)",
        metavar="FILE",
    )

    def check(self) -> None:
        if self.local_token_file:
            read_token(self.local_token_file)


Submit = Callable[[Intake], Future | None]  # hands an Intake to the pipeline thread


class LocalEndpoint:
    """`ferry.v1.Local` on the configured socket and address, started and stopped with the agent."""

    def __init__(self, cfg: Any, submit: Submit, pending: Callable[[], int]):
        """`cfg`: the agent's configuration (the keys of LocalConfig and LocalTokenConfig)."""
        self.listen, self.socket = cfg.local_listen, cfg.local_socket
        self.socket_mode, self.socket_group = cfg.local_socket_mode, cfg.local_socket_group
        self.service = LocalService(submit, pending)
        self.tokens = TokenCheck(cfg.local_token_file)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        if self.listen and not is_loopback(self.listen):
            log.warning(
                "local service listens on %s, not on loopback (insecure = true): any host that reaches "
                "it can send records as this agent%s",
                self.listen,
                ", and the local token crosses the network in plaintext" if self.tokens.enabled else "",
            )
        self._server = await local_server.start(
            self.service,
            self.listen,
            self.socket,
            socket_mode=self.socket_mode,
            socket_group=self.socket_group,
            interceptors=(self.tokens,),
        )
        if self._server is not None and self.tokens.enabled:
            log.info("local service: calls must present the token of %s", self.tokens.path)

    async def apply(self, cfg: LocalTokenConfig) -> None:
        """On SIGHUP: read local_token_file again (a new path, or new contents); the listeners stay.
        A file that cannot be read leaves the token in use."""
        was = self.tokens.enabled
        try:
            self.tokens.load(cfg.local_token_file)
        except ConfigError as exc:
            log.error("reload: %s; the local token in use stays", exc)
            return
        if self.tokens.enabled:
            log.info("reload: local token read from %s", self.tokens.path)
        elif was:
            log.warning(
                "reload: local token off (local_token_file is ''): any caller that reaches it may send"
            )

    async def stop(self) -> None:
        await local_server.stop(self._server, self.socket)
        self._server = None


def build(cfg: Any, submit: Submit, pending: Callable[[], int]) -> LocalEndpoint:
    return LocalEndpoint(cfg, submit, pending)
