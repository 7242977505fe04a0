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

import contextvars
import inspect
from dataclasses import dataclass

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
REASONS = (
    "no_credentials",
    "bad_header",
    "unknown_token",
    "unknown_certificate",
    "role",
    "agent_id",
)

_CURRENT: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANONYMOUS)


def current() -> Principal:
    """The principal of the call being handled (ANONYMOUS without an auth file)."""
    return _CURRENT.get()


def role_of(method: str) -> str | None:
    """The role a method needs ('/ferry.v1.Query/QueryRange' → 'query'); None: open to all."""
    service = method.strip("/").split("/", 1)[0]
    if service in OPEN_SERVICES:
        return None
    return SERVICE_ROLES.get(service, "admin")


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str  # one of REASONS (the counter's label)
    message: str


class Gate:
    def __init__(self, principals: Principals | None, audit: Audit | None = None):
        self.principals = principals  # None: no auth file, everyone is ANONYMOUS
        self.audit = audit or Audit()
        self.limiter = Limiter()
        for reason in REASONS:
            m.AUTH_FAILURES.labels(reason)

    def replace(self, principals: Principals) -> None:
        """A reloaded auth file: calls from now on are checked against it."""
        self.principals = principals
        self.limiter.forget_others({(p.name, p.rate) for p in principals.all})

    def identify(self, metadata, names: list[str]) -> Principal | Refusal:
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

    def admit(self, context, method: str, role: str) -> Principal | Refusal:
        """The caller of `method`, if their roles cover it; every refusal audited and counted."""
        names = _cert_names(context)
        found = self.identify(context.invocation_metadata(), names)
        if isinstance(found, Principal) and not found.may(role):
            found = Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "role",
                f"principal {found.name!r} may not call {method}: it needs the {role} role "
                f"(it has {', '.join(sorted(found.roles))})",
            )
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

    def frame_refusal(self, principal: Principal, agent_id: str, points: int, peer: str) -> Refusal | None:
        """Why `principal` may not write this frame now (PERMISSION_DENIED for an agent id it may
        not write as); rate limits are `wait_s`'s."""
        if principal.may_write(agent_id):
            return None
        refusal = Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            "agent_id",
            f"principal {principal.name!r} may not write as agent {agent_id[:128]!r} "
            f"(its agent_ids: {', '.join(principal.agent_ids)[:200]})",
        )
        self.refused(refusal, peer, "/ferry.v1.Ingest/", principal=principal.name)
        return refusal

    def wait_s(self, principal: Principal, points: int) -> float:
        """0 when the frame is within the principal's rate (and is charged to it), else the
        seconds until it would be."""
        return self.limiter.admit(principal.name, principal.rate, points)

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _Interceptor(self)


def _cert_names(context) -> list[str]:
    """A verified client certificate's CN and SANs (empty without mTLS)."""
    try:
        auth = context.auth_context()
    except (AttributeError, NotImplementedError):
        return []
    names = [*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ())]
    return list(dict.fromkeys(n.decode(errors="replace") for n in names))


def _peer(context) -> str:
    try:
        return context.peer()
    except (AttributeError, NotImplementedError):
        return ""


class _Interceptor(grpc.aio.ServerInterceptor):
    def __init__(self, gate: Gate):
        self.gate = gate

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        role = role_of(details.method)
        # without an auth file at start there never is one (a reload reads only the file given)
        if handler is None or role is None or self.gate.principals is None:
            return handler
        gate, method = self.gate, details.method
        kind = next(k for k in _KINDS if getattr(handler, k) is not None)
        return handler._replace(**{kind: _guarded(getattr(handler, kind), gate, method, role)})


_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _guarded(behaviour, gate: Gate, method: str, role: str):
    """`behaviour` run only for an admitted caller, who is `current()` while it runs."""
    if inspect.isasyncgenfunction(behaviour):

        async def agen(request, context):
            found = gate.admit(context, method, role)
            if isinstance(found, Refusal):
                await context.abort(found.code, found.message)
            _CURRENT.set(found)  # this call's task: its context is its own
            async for item in behaviour(request, context):
                yield item

        return agen
    if inspect.iscoroutinefunction(behaviour):

        async def coro(request, context):
            found = gate.admit(context, method, role)
            if isinstance(found, Refusal):
                await context.abort(found.code, found.message)
            _CURRENT.set(found)
            return await behaviour(request, context)

        return coro

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
