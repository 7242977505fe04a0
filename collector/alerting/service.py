"""The `ferry.v1.Alerts` service: what `ferry alerts` and `ferry silence` ask the collector.

It answers from an `AlertBook`, the alerting engine's view of its instances, rules, acks and
silences (ferry.collector.alerting.engine implements it). A collector started without
`--rules` has no book: every method answers FAILED_PRECONDITION. The book's methods block (the
store): they run one at a time on the service's own thread, never on the event loop.

The auth gate gives the reads (ListAlerts, History, ListSilences) to the `query` role and the
writes (Ack, AddSilence, ExpireSilence) to `admin` (ferry.collector.auth.gate.METHOD_ROLES);
`who()` names the caller's principal, recorded as an ack's `acked_by` and a silence's
`created_by`. Errors: an unknown id is NOT_FOUND naming it; bad matchers, a duration (a
silence lasts more than 0 and at most 10 years, and starts at most 10 years on), a state or a
text too long INVALID_ARGUMENT naming the value; a book that fails (the store) UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

import grpc

from ferry.collector.alerting.model import (
    InstanceState,
    Silence,
    State,
    Transition,
    matchers_text,
    parse_matchers,
)
from ferry.collector.alerting.model import now_ms as wall_ms
from ferry.collector.query.service import details
from ferry.limits import DAY_MS
from ferry.v1 import alerts_pb2, alerts_pb2_grpc

log = logging.getLogger("ferry.collector.alerting")

NO_RULES = "this collector evaluates no rules (started without --rules)"
MAX_SILENCE_MS = 3650 * DAY_MS  # a silence lasts at most 10 years, and starts at most 10 years on
HISTORY_LIMIT, MAX_HISTORY_LIMIT = 100, 10_000
MAX_TEXT = 4096  # characters of an ack's note or a silence's comment
LISTED_STATES = ("pending", "firing", "resolved")  # what ListAlerts answers; "" / "all": every one

T = TypeVar("T")


class AlertBook(Protocol):
    """What the service asks of the alerting engine."""

    def instances(self) -> list[InstanceState]: ...

    def rule_status(self) -> list[tuple[str, str, str, int]]: ...  # name, health, message, last_eval_ms

    def ack(self, id: str, by: str, note: str) -> InstanceState: ...  # KeyError: no such firing/pending

    def add_silence(self, s: Silence) -> None: ...

    def silences(self, include_expired: bool) -> list[Silence]: ...

    def expire_silence(self, id: str) -> Silence: ...  # KeyError

    def history(self, since_ms: int, limit: int, state: str) -> list[Transition]: ...


class Refused(Exception):
    """A request answered with `code` and `message` (raised on the book's thread or before)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class AlertsService(alerts_pb2_grpc.AlertsServicer):
    def __init__(
        self,
        book: AlertBook | None,
        who: Callable[[], str] = lambda: "anonymous",
        clock: Callable[[], int] = wall_ms,
    ):
        self.book = book
        self.who = who
        self.clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="alerts-rpc")

    # each method checks its request on the event loop (where `who()` sees the call's
    # principal) and returns what to ask the book, which `_serve` runs on the service's thread

    async def ListAlerts(
        self, request: alerts_pb2.ListAlertsRequest, context
    ) -> alerts_pb2.ListAlertsResponse:
        return await self._serve(context, self._list_alerts, request)

    async def Ack(self, request: alerts_pb2.AckRequest, context) -> alerts_pb2.AckResponse:
        return await self._serve(context, self._ack, request)

    async def History(self, request: alerts_pb2.HistoryRequest, context) -> alerts_pb2.HistoryResponse:
        return await self._serve(context, self._history, request)

    async def AddSilence(
        self, request: alerts_pb2.AddSilenceRequest, context
    ) -> alerts_pb2.AddSilenceResponse:
        return await self._serve(context, self._add_silence, request)

    async def ListSilences(
        self, request: alerts_pb2.ListSilencesRequest, context
    ) -> alerts_pb2.ListSilencesResponse:
        return await self._serve(context, self._list_silences, request)

    async def ExpireSilence(
        self, request: alerts_pb2.ExpireSilenceRequest, context
    ) -> alerts_pb2.ExpireSilenceResponse:
        return await self._serve(context, self._expire_silence, request)

    async def _serve(self, context, method: Callable[[Any], Callable[[AlertBook], T]], request) -> T:
        """`method(request)`'s question put to the book; a refusal or failure as the status."""
        try:
            if self.book is None:
                raise Refused(grpc.StatusCode.FAILED_PRECONDITION, NO_RULES)
            answer = method(request)
            return await asyncio.get_running_loop().run_in_executor(self._thread, answer, self.book)
        except Refused as exc:
            code, message = exc.code, str(exc)
        except Exception as exc:  # the store, most likely: say so, the caller may retry
            log.error("alerts: %s", exc)
            code, message = grpc.StatusCode.UNAVAILABLE, f"alert store: {exc}"
        await context.abort(code, details(message))
        raise AssertionError("unreachable: abort raises")

    def _list_alerts(self, request: alerts_pb2.ListAlertsRequest):
        state = request.state.strip().lower()
        if state not in ("", "all", *LISTED_STATES):
            raise _Invalid(_bad_state(request.state, ("all", *LISTED_STATES)))
        wanted = LISTED_STATES if state in ("", "all") else (state,)

        def answer(book: AlertBook) -> alerts_pb2.ListAlertsResponse:
            found = [i for i in book.instances() if str(i.state) in wanted]
            return alerts_pb2.ListAlertsResponse(
                alerts=[instance_message(i) for i in sorted(found, key=lambda i: (i.rule, i.id))],
                rules=[
                    alerts_pb2.RuleStatus(name=n, health=h, message=m, last_eval_ms=t)
                    for n, h, m, t in sorted(book.rule_status())
                ],
            )

        return answer

    def _ack(self, request: alerts_pb2.AckRequest):
        _check_text(request.note, "note")
        by = self.who()

        def answer(book: AlertBook) -> alerts_pb2.AckResponse:
            try:
                acked = book.ack(request.id, by, request.note)
            except KeyError:
                raise Refused(
                    grpc.StatusCode.NOT_FOUND, f"no pending or firing alert {request.id!r}"
                ) from None
            return alerts_pb2.AckResponse(alert=instance_message(acked))

        return answer

    def _history(self, request: alerts_pb2.HistoryRequest):
        limit = request.limit or HISTORY_LIMIT
        if limit > MAX_HISTORY_LIMIT:
            raise Refused(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"limit {limit} is more than {MAX_HISTORY_LIMIT} transitions",
            )
        states = tuple(str(s) for s in State)
        if request.state and request.state not in states:
            raise _Invalid(_bad_state(request.state, states))
        since = request.since_ms or self.clock() - DAY_MS

        def answer(book: AlertBook) -> alerts_pb2.HistoryResponse:
            found = book.history(since, limit, request.state)
            return alerts_pb2.HistoryResponse(transitions=[transition_message(t) for t in found])

        return answer

    def _add_silence(self, request: alerts_pb2.AddSilenceRequest):
        try:
            matchers = parse_matchers(request.matchers)
        except ValueError as exc:
            raise _Invalid(str(exc)) from None
        if request.duration_ms <= 0:
            raise _Invalid(f"duration_ms {request.duration_ms} must be > 0 (how long the silence lasts)")
        if request.duration_ms > MAX_SILENCE_MS:
            raise _Invalid(
                f"duration_ms {request.duration_ms} is more than {MAX_SILENCE_MS} (10 years, the limit)"
            )
        _check_text(request.comment, "comment")
        now = self.clock()
        starts = request.starts_ms or now
        if not 0 < starts <= now + MAX_SILENCE_MS:
            raise _Invalid(
                f"starts_ms {starts} must be > 0 and at most 10 years from now ({now + MAX_SILENCE_MS})"
            )
        silence = Silence(
            secrets.token_hex(8), matchers, starts, starts + request.duration_ms, request.comment, self.who()
        )

        def answer(book: AlertBook) -> alerts_pb2.AddSilenceResponse:
            book.add_silence(silence)
            return alerts_pb2.AddSilenceResponse(silence=silence_message(silence))

        return answer

    def _list_silences(self, request: alerts_pb2.ListSilencesRequest):
        def answer(book: AlertBook) -> alerts_pb2.ListSilencesResponse:
            found = book.silences(request.include_expired)
            return alerts_pb2.ListSilencesResponse(silences=[silence_message(s) for s in found])

        return answer

    def _expire_silence(self, request: alerts_pb2.ExpireSilenceRequest):
        def answer(book: AlertBook) -> alerts_pb2.ExpireSilenceResponse:
            try:
                expired = book.expire_silence(request.id)
            except KeyError:
                raise Refused(grpc.StatusCode.NOT_FOUND, f"no silence {request.id!r}") from None
            return alerts_pb2.ExpireSilenceResponse(silence=silence_message(expired))

        return answer

    def close(self) -> None:
        self._thread.shutdown(wait=False)


def _check_text(text: str, what: str) -> None:
    if len(text) > MAX_TEXT:
        raise _Invalid(f"{what} of {len(text)} characters is longer than {MAX_TEXT}")


class _Invalid(Refused):
    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


def _bad_state(given: str, allowed: tuple[str, ...]) -> str:
    return f"state {given!r} is not one of {', '.join(allowed)}"


def _value(value: float | None) -> dict[str, Any]:
    return {} if value is None else {"value": value, "has_value": True}


def instance_message(i: InstanceState) -> alerts_pb2.AlertInstance:
    labels = i.label_map
    return alerts_pb2.AlertInstance(
        id=i.id,
        rule=i.rule,
        labels=labels,
        state=str(i.state),
        **_value(i.value),
        threshold=i.threshold,
        severity=labels.get("severity", ""),
        annotations=i.annotations,
        active_since_ms=i.active_since_ms,
        fired_at_ms=i.fired_at_ms,
        resolved_at_ms=i.resolved_at_ms,
        acked_by=i.acked_by,
        acked_at_ms=i.acked_at_ms,
        ack_note=i.ack_note,
    )


def transition_message(t: Transition) -> alerts_pb2.AlertTransition:
    return alerts_pb2.AlertTransition(
        time_ms=t.time_ms,
        rule=t.rule,
        id=t.id,
        labels=dict(t.labels),
        state=str(t.state),
        previous=str(t.previous),
        **_value(t.value),
        threshold=t.threshold,
        severity=t.severity,
        annotations=t.annotations,
    )


def silence_message(s: Silence) -> alerts_pb2.Silence:
    return alerts_pb2.Silence(
        id=s.id,
        matchers=matchers_text(s.matchers),
        starts_ms=s.starts_ms,
        ends_ms=s.ends_ms,
        comment=s.comment,
        created_by=s.created_by,
    )


def add_to_server(
    book: AlertBook | None,
    server: grpc.aio.Server,
    who: Callable[[], str] = lambda: "anonymous",
    clock: Callable[[], int] = wall_ms,
) -> AlertsService:
    """Serve the Alerts service from `book` (None: a collector without --rules) on `server`;
    `who()` names the principal of the call being handled (`lambda: gate.current().name`)."""
    service = AlertsService(book, who, clock)
    alerts_pb2_grpc.add_AlertsServicer_to_server(service, server)
    return service
