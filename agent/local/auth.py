"""The Local service's optional token: `local_token_file`, checked on every call.

With a token file set, each call to `ferry.v1.Local` must carry the metadata
`authorization: Bearer <token>`; a call without it, or with another token, is answered
UNAUTHENTICATED before its requests are read, and counted in
`ferry_agent_local_auth_failures{reason}`. Health and reflection, should the port serve them,
stay open. The token is kept only as its SHA-256 digest and compared in constant time; no
message or log line holds it. `TokenCheck.load` reads the file again on SIGHUP
(ferry.agent.local.config.LocalEndpoint.apply), without rebinding the listeners.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc

from ferry.agent import selfmetrics as m
from ferry.runtime.config import ConfigError

log = logging.getLogger("ferry.agent.local")
HEADER = "authorization"
MAX_TOKEN_BYTES = 4096
OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")  # prefixes of methods never checked
REPORT_EVERY_S = 10.0

# why a call was refused: the `reason` label of ferry_agent_local_auth_failures
MISSING, MALFORMED, WRONG = "missing", "malformed", "wrong"
_MESSAGES = {
    MISSING: "this agent's Local service needs a token: send the metadata "
    "'authorization: Bearer <token>' (the token is in the agent's local_token_file; "
    "Python clients read FERRY_LOCAL_TOKEN)",
    MALFORMED: "the 'authorization' metadata is not one 'Bearer <token>' value",
    WRONG: "the token sent is not this agent's local token",
}


def read_token(path: str, what: str = "local_token_file") -> bytes:
    """The token a file holds (surrounding whitespace and newlines stripped). ConfigError for a
    file that cannot be read, is empty, is too long or holds what a header cannot carry."""
    try:
        token = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    if not token:
        raise ConfigError(f"{what}: {path} holds no token (the file is empty)")
    if len(token) > MAX_TOKEN_BYTES:
        raise ConfigError(f"{what}: {path} holds {len(token)} bytes > {MAX_TOKEN_BYTES} allowed for a token")
    if not all(0x21 <= b <= 0x7E for b in token):
        raise ConfigError(
            f"{what}: {path}: a token is visible ASCII without spaces (what a gRPC header can carry)"
        )
    return token


def digest(token: bytes | str) -> bytes:
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


def refusal(metadata: Sequence[tuple[str, str | bytes]] | None, expected: bytes | None) -> str | None:
    """Why a call with this metadata is refused (MISSING, MALFORMED, WRONG), or None to let it
    through. `expected` is the token's SHA-256 digest (None: no token is needed)."""
    if expected is None:
        return None
    values = [v for k, v in metadata or () if k == HEADER]
    if not values:
        return MISSING
    if len(values) > 1:
        return MALFORMED
    value = values[0].decode("latin-1") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return MALFORMED
    # digests of equal length, compared in constant time: neither the token's length nor its
    # first differing byte shows in the time taken
    return None if hmac.compare_digest(digest(token), expected) else WRONG


class TokenCheck(grpc.aio.ServerInterceptor):
    """The server interceptor: every call checked against the token of `path` ('' = open)."""

    def __init__(self, path: str = ""):
        self.path = ""
        self._expected: bytes | None = None
        self._refused = 0  # refusals since the last log line
        self._next_report = 0.0
        self.load(path)

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def load(self, path: str) -> None:
        """Read the token file again ('' turns the check off). On ConfigError the token in use
        stays."""
        expected = digest(read_token(path)) if path else None
        self.path, self._expected = path, expected

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or self._expected is None or details.method.startswith(OPEN_METHODS):
            return handler
        reason = refusal(details.invocation_metadata, self._expected)
        if reason is None:
            return handler
        m.LOCAL_AUTH_FAILURES.labels(reason).inc()
        self._report(details.method, reason)
        return _refusing(handler, _MESSAGES[reason])

    def _report(self, method: str, reason: str) -> None:
        """One log line per REPORT_EVERY_S at most: a client retrying must not flood the log."""
        self._refused += 1
        now = time.monotonic()
        if now >= self._next_report:
            log.warning(
                "local service: refused %s (token %s); %d refused since the last report",
                method,
                reason,
                self._refused,
            )
            self._refused, self._next_report = 0, now + REPORT_EVERY_S


def _refusing(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that answers UNAUTHENTICATED without reading."""

    async def refuse(_request, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
