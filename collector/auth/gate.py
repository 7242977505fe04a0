"""The gate every RPC passes: who is calling (`identify`), whether their roles cover the method,
and, for each frame, whether they may write as its agent id and are within their rate.

`Gate.interceptor()` is a grpc.aio server interceptor wrapping every method's handler except the
open ones (health, reflection), so no service can forget the check: a call is refused before
the handler runs, with UNAUTHENTICATED (no credentials, an unknown token, a certificate no
principal names) or PERMISSION_DENIED (a role that does not cover the method), and the handler
finds the caller with `current()`. Without an auth file every caller is `ANONYMOUS` (all roles,
any agent id, no limits). Every refusal is counted (`ferry_collector_auth_failures{reason}`)
and written to the audit trail, as is every admin call and reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from ferry.collector import selfmetrics as m
from ferry.collector.auth.audit import Audit
from ferry.collector.auth.principals import ANONYMOUS, Principal, Principals
from ferry.collector.auth.ratelimit import Limiter

OPEN_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
SERVICE_ROLES = {"ferry.v1.Ingest": "ingest", "ferry.v1.Query": "query"}  # any other method: admin
# methods of a service that needs another role for them: the Alerts service's reads
METHOD_ROLES = {f"ferry.v1.Alerts/{m}": "query" for m in ("ListAlerts", "History", "ListSilences")}
REASONS = (
    "no_credentials",
    "bad_header",
    "unknown_token",
    "unknown_certificate",
    "role",
    "agent_id",
    "host",
)
DRAIN_MESSAGES, DRAIN_S = 64, 0.5  # what a refused stream's client may still have in flight

_CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)
Metadata = Sequence[tuple[str, Any]]


def role_of(method: str) -> str | None:
    """The role a method needs ('/ferry.v1.Query/QueryRange' → 'query'); None: open to all."""
    service = method.strip("/").split("/", 1)[0]
    if service in OPEN_SERVICES:
        return None
    return METHOD_ROLES.get(method.strip("/")) or SERVICE_ROLES.get(service, "admin")


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str  # one of REASONS (the counter's label)
    message: str


@dataclass
class Caller:
    """Who a stream's frames come from, and the credentials it opened with (checked again after
    a reload of the auth file: `Gate.recheck`)."""

    principal: Principal
    metadata: Metadata
    names: list[str]
    peer: str
    generation: int


class Gate:
    def __init__(self, principals: Principals | None, audit: Audit | None = None):
        self.principals = principals  # None: no auth file, everyone is ANONYMOUS
        self.audit = audit or Audit()
        self.limiter = Limiter()
        self.generation = 0  # one more at each reload of the auth file
        for reason in REASONS:
            m.AUTH_FAILURES.labels(reason)

    def replace(self, principals: Principals) -> None:
        """A reloaded auth file: calls from now on are checked against it."""
        self.principals = principals
        self.generation += 1
        self.limiter.keep_only(p.name for p in principals.all)

    def current(self) -> Principal:
        """The principal of the call being handled: ANONYMOUS without an auth file; with one,
        the principal the gate admitted (RuntimeError if it did not run: fail closed)."""
        if self.principals is None:
            return ANONYMOUS
        found = _CURRENT.get()
        if found is None:
            raise RuntimeError("no principal for this call: the auth gate did not admit it")
        return found

    def caller(self, context: Any) -> Caller:
        """The admitted caller of a stream, kept for `recheck`."""
        if self.principals is None:
            return Caller(ANONYMOUS, (), [], "", self.generation)
        return Caller(
            self.current(), tuple(context.invocation_metadata() or ()), _cert_names(context),
            _peer(context), self.generation,
        )  # fmt: skip

    def recheck(self, caller: Caller, method: str, role: str) -> Principal | Refusal:
        """The stream's principal now: itself until the auth file is reloaded, then identified
        again from the stream's own credentials (a removed token or principal, or a role taken
        away, is refused, audited and counted)."""
        if caller.generation == self.generation:
            return caller.principal
        caller.generation = self.generation
        found = self.identify(caller.metadata, caller.names)
        if isinstance(found, Principal):
            found = self._role(found, method, role)
        if isinstance(found, Refusal):
            self.refused(found, caller.peer, method)
            return found
        caller.principal = found
        return found

    def identify(self, metadata: Metadata | None, names: Sequence[str]) -> Principal | Refusal:
        """The principal a call's bearer token (or, without one, its client certificate's CN and
        SANs, `names`) identifies; a Refusal when none does."""
        principals = self.principals
        if principals is None:
            return ANONYMOUS
        values = [v for k, v in metadata or () if k == "authorization"]
        if values:
            scheme, _, token = str(values[0]).partition(" ")
            if len(values) > 1 or scheme.lower() != "bearer" or not token.strip():
                return Refusal(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "bad_header",
                    "the authorization header must be one 'Bearer <token>'",
                )
            found = principals.by_token(token.strip())
            if found is None:
                return Refusal(
                    grpc.StatusCode.UNAUTHENTICATED, "unknown_token", "the bearer token is not known"
                )
            return found
        if names:
            found = principals.by_cert(names)
            if found is None:
                return Refusal(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "unknown_certificate",
                    f"no principal has the client certificate's names ({', '.join(names)[:200]})",
                )
            return found
        return Refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            "no_credentials",
            "no credentials: send a bearer token (--token-file) or a client certificate",
        )

    @staticmethod
    def _role(found: Principal, method: str, role: str) -> Principal | Refusal:
        if found.may(role):
            return found
        return Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            "role",
            f"principal {found.name!r} may not call {method}: it needs the {role} role "
            f"(it has {', '.join(sorted(found.roles))})",
        )

    def admit(self, context: Any, method: str, role: str) -> Principal | Refusal:
        """The caller of `method`, if their roles cover it; every refusal audited and counted."""
        found = self.identify(context.invocation_metadata(), _cert_names(context))
        if isinstance(found, Principal):
            found = self._role(found, method, role)
        peer = _peer(context)
        if isinstance(found, Refusal):
            self.refused(found, peer, method)
        elif role == "admin":
            self.audit.record("admin_call", principal=found.name, method=method, peer=peer)
        return found

    def refused(self, refusal: Refusal, peer: str, method: str, **fields: object) -> None:
        m.AUTH_FAILURES.labels(refusal.reason).inc()
        self.audit.record(
            "refused", reason=refusal.reason, code=refusal.code.name, peer=peer, method=method,
            message=refusal.message, **fields,
        )  # fmt: skip

    def frame_refusal(self, principal: Principal, agent_id: str, peer: str, method: str) -> Refusal | None:
        """PERMISSION_DENIED for a frame of an agent id `principal` may not write as (audited
        and counted); rate limits are `wait_s`'s, hosts `host_refusal`'s."""
        if principal.may_write(agent_id):
            return None
        return self._denied(
            principal, "agent_id", f"write as agent {agent_id[:128]!r}", "agent_ids", principal.agent_ids,
            peer, method,
        )  # fmt: skip

    def host_refusal(self, principal: Principal, host: str, peer: str, method: str) -> Refusal | None:
        """PERMISSION_DENIED for a frame whose host (every series, event and log in it is stored
        under it) `principal` may not write."""
        if principal.may_host(host):
            return None
        return self._denied(
            principal, "host", f"write as host {host[:128]!r}", "hosts", principal.hosts, peer, method
        )

    def _denied(
        self,
        principal: Principal,
        reason: str,
        what: str,
        key: str,
        globs: Sequence[str],
        peer: str,
        method: str,
    ) -> Refusal:
        refusal = Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            reason,
            f"principal {principal.name!r} may not {what} (its {key}: {', '.join(globs)[:200]})",
        )
        self.refused(refusal, peer, method, principal=principal.name)
        return refusal

    def wait_s(self, principal: Principal, points: int, raw_bytes: int) -> float:
        """0 when the frame is within the principal's rate (and is charged to it), else the
        seconds until it would be."""
        return self.limiter.admit(principal.name, principal.rate, points, raw_bytes)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _Interceptor(self)


def _cert_names(context: Any) -> list[str]:
    """A verified client certificate's CN and SANs (empty without mTLS)."""
    try:
        auth = context.auth_context()
    except (AttributeError, NotImplementedError):
        return []
    names = [*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ())]
    return list(dict.fromkeys(n.decode(errors="replace") for n in names))


def _peer(context: Any) -> str:
    try:
        return context.peer()
    except (AttributeError, NotImplementedError):
        return ""


class _Interceptor(grpc.aio.ServerInterceptor):
    def __init__(self, gate: Gate):
        self.gate = gate

    async def intercept_service(
        self, continuation: Callable, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        role = role_of(details.method)
        # without an auth file at start there never is one (a reload reads only the file given)
        if handler is None or role is None or self.gate.principals is None:
            return handler
        gate, method = self.gate, details.method
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        guarded = _guarded(getattr(handler, kind), gate, method, role, handler.request_streaming)
        return handler._replace(**{kind: guarded})


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


async def drain(requests: AsyncIterator, limit: int = DRAIN_MESSAGES, seconds: float = DRAIN_S) -> None:
    """Read (and drop) what a refused stream's client already sent, up to `limit` messages or
    `seconds`: ending a call with messages unread can reach the client as INTERNAL ("Internal
    error from Core") instead of the status it was refused with."""

    async def read() -> None:
        n = 0
        async for _ in requests:
            n += 1
            if n >= limit:
                return

    with contextlib.suppress(Exception):
        await asyncio.wait_for(read(), seconds)


def _guarded(behaviour: Callable, gate: Gate, method: str, role: str, streaming_requests: bool) -> Callable:
    """`behaviour` run only for an admitted caller, who is `current()` while it runs."""
    if inspect.isasyncgenfunction(behaviour):

        async def agen(request, context):
            found = gate.admit(context, method, role)
            if isinstance(found, Refusal):
                if streaming_requests:
                    await drain(request)
                await context.abort(found.code, found.message)
            _CURRENT.set(found)  # this call's task: its context is its own
            async for item in behaviour(request, context):
                yield item

        return agen
    if inspect.iscoroutinefunction(behaviour):

        async def coro(request, context):
            found = gate.admit(context, method, role)
            if isinstance(found, Refusal):
                if streaming_requests:
                    await drain(request)
                await context.abort(found.code, found.message)
            _CURRENT.set(found)
            return await behaviour(request, context)

        return coro
    if inspect.isgeneratorfunction(behaviour):
        # grpc.aio runs these on its event loop, where a sync context's abort blocks the loop;
        # and a generator runs after a wrapper returns, without the principal: refuse the shape
        raise TypeError(f"{method}: a synchronous streaming handler cannot be guarded; make it async")

    def sync(request, context):  # on grpc's thread pool: reset, the thread serves others next
        found = gate.admit(context, method, role)
        if isinstance(found, Refusal):
            context.abort(found.code, found.message)
        token = _CURRENT.set(found)
        try:
            return behaviour(request, context)
        finally:
            _CURRENT.reset(token)

    return sync
