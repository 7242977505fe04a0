"""The OTLP receiver's key, and the receiver as the agent runs it (ferry.agent.wiring builds it).

`otlp_listen` is bound once, like the Local service's listeners: a reload that changes it is
reported as needing a restart. Access is the Local service's: loopback unless `insecure` is set,
and the same `local_token_file` token when one is set (the SDKs send it with
OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer <token>"), checked by the very `TokenCheck` the
Local service uses, so a SIGHUP that reads the token file again applies to both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from ferry.agent.local.access import check_listen
from ferry.agent.local.auth import TokenCheck
from ferry.agent.local.config import Submit
from ferry.agent.otlp import server as otlp_server
from ferry.agent.otlp.server import OtlpService
from ferry.runtime.config import is_loopback, setting

log = logging.getLogger("ferry.agent.otlp")


@dataclass
class OtlpConfig:
    """The OTLP/gRPC receiver OpenTelemetry SDKs export to (docs/otlp.md)."""

    otlp_listen: str = setting(
        "127.0.0.1:4317",
        "optional_address",
        "OTLP/gRPC receiver (metrics and logs) for OpenTelemetry SDKs ('' disables); a non-loopback "
        "address needs --insecure",
        metavar="HOST:PORT",
    )

    def check(self) -> None:
        # `insecure` is the Local service's key (LocalConfig): one switch for every app-facing port
        check_listen(self.otlp_listen, getattr(self, "insecure", False), "otlp_listen", "127.0.0.1 or [::1]")


class OtlpEndpoint:
    """The OTLP receiver on `otlp_listen`, started and stopped with the agent."""

    def __init__(self, cfg: Any, submit: Submit, pending: Callable[[], int], tokens: TokenCheck):
        """`cfg`: the agent's configuration; `tokens`: the Local service's token check."""
        self.listen = cfg.otlp_listen
        self.service = OtlpService(submit, pending)
        self.tokens = tokens
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        if not self.listen:
            return
        if not is_loopback(self.listen):
            log.warning(
                "OTLP receiver listens on %s, not on loopback (insecure = true): any host that reaches "
                "it can send records as this agent",
                self.listen,
            )
        self._server = await otlp_server.start(self.service, self.listen, interceptors=(self.tokens,))

    async def stop(self) -> None:
        await otlp_server.stop(self._server, self.service)
        self._server = None


def build(cfg: Any, submit: Submit, pending: Callable[[], int], tokens: TokenCheck) -> OtlpEndpoint:
    return OtlpEndpoint(cfg, submit, pending, tokens)
