"""Bounded work per query: each Query RPC is a `QueryCall` whose store statements carry the
call's limits, and which stops, in ClickHouse too, when its client's deadline passes or the
client goes away.

- Every statement of a call ends with the clause `QueryCall.settings` gives: `max_execution_time`
  (the configured bound, or less: what is left of the client's deadline), `max_memory_usage`
  (`query_max_memory_bytes`) and a `log_comment` naming the call (`ferry-query:<hex>`), by which
  a cancelled call's statements are found in system.processes and killed.
- `QueryCall.check` (called before each statement) raises Cancelled once the call is over.
- `add_to_server` serves a QueryService on the grpc.aio server: each call runs on the query
  pool (so at most `queries` calls use the store at once, each within its memory cap); when
  grpc cancels the call (deadline passed, client cancelled or disconnected) the call is marked
  cancelled and `KILL QUERY` is repeated until its worker has returned, so no statement it
  started or was about to start keeps running. The QueryService's methods stay synchronous
  (grpc_testing and benches call them directly, with a QueryCall made from their context).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from ferry.v1 import query_pb2

log = logging.getLogger("ferry.collector.query")

TAG_PREFIX = "ferry-query:"


class Cancelled(Exception):
    """The call is over (deadline passed or client gone): nothing more is asked of the store."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class QueryCall:
    """One Query RPC: its deadline, its store limits, and whether it was cancelled."""

    max_execution_s: float
    max_memory_bytes: int
    max_rows_read: int = 0  # rows one statement may scan (max_rows_to_read); 0: unbounded
    deadline: float | None = None  # time.monotonic() by which the client wants the answer
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    cancelled: bool = False
    started: bool = False  # a worker runs it (one still queued has no statement to kill)

    @classmethod
    def of(
        cls, context: Any, max_execution_s: float, max_memory_bytes: int, max_rows_read: int = 0
    ) -> QueryCall:
        """From a servicer context's deadline (None when the client set none)."""
        try:
            remaining = context.time_remaining()
        except (AttributeError, NotImplementedError):
            remaining = None
        deadline = None if remaining is None else time.monotonic() + remaining
        return cls(max_execution_s, max_memory_bytes, max_rows_read, deadline)

    def remaining(self) -> float:
        """Seconds this call may still run in the store."""
        if self.deadline is None:
            return self.max_execution_s
        return min(self.max_execution_s, self.deadline - time.monotonic())

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled(grpc.StatusCode.CANCELLED, "query cancelled: the client went away")
        if self.remaining() <= 0.001:
            raise Cancelled(grpc.StatusCode.DEADLINE_EXCEEDED, "query stopped: the client's deadline passed")

    def settings(self) -> str:
        """The SETTINGS clause for the call's next statement; Cancelled when it is over."""
        self.check()
        rows = f"max_rows_to_read = {int(self.max_rows_read)}, " if self.max_rows_read else ""
        return (
            f" SETTINGS max_execution_time = {self.remaining():.3f}, {rows}"
            f"max_memory_usage = {int(self.max_memory_bytes)}, log_comment = '{TAG_PREFIX}{self.tag}'"
        )


def kill_sql(tag: str) -> str:
    """KILL the statements of the call `tag` (a hex uuid this module made: safe in SQL text).
    The pattern is split in two so this statement's own text does not match it."""
    if not all(c in "0123456789abcdef" for c in tag):
        raise ValueError(f"call tag {tag!r} is not hex")
    return f"KILL QUERY WHERE position(query, concat('{TAG_PREFIX}', '{tag}')) > 0 ASYNC"


class Aborted(Exception):
    """A QueryService method ended its call with a status (`CallContext.abort`)."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(details)
        self.code, self.details = code, details


class CallContext:
    """What a synchronous QueryService method sees of a grpc.aio call, on a worker thread."""

    def __init__(self, call: QueryCall):
        self.call = call

    def abort(self, code: grpc.StatusCode, details: str):
        raise Aborted(code, details)

    def time_remaining(self) -> float | None:
        return None if self.call.deadline is None else max(0.0, self.call.deadline - time.monotonic())


KILL_RETRY_S = 0.25


def add_to_server(
    service: Any,
    server: grpc.aio.Server,
    executor: Executor,
    killer: Executor,
    kill: Callable[[str], None],
    new_call: Callable[[Any], QueryCall],
) -> None:
    """Serve `service` (a QueryService) as ferry.v1.Query on `server`. `kill(tag)` runs KILL
    QUERY for a call's statements on the `killer` pool; `new_call(context)` makes its QueryCall."""
    desc = query_pb2.DESCRIPTOR.services_by_name["Query"]
    killing: set[asyncio.Task] = set()  # held until done: the loop keeps only weak references

    def handler(method_name: str, request_type: Any, response_type: Any):
        method = getattr(service, method_name)

        async def handle(data: bytes, context: grpc.aio.ServicerContext):
            # parsed here, not by grpc, which answers bytes that are not the request UNKNOWN
            # (and logs a traceback): the same answer as the Ingest and Local services give
            request = request_type()
            try:
                request.ParseFromString(data)
            except DecodeError as exc:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"request of {len(data)} bytes is not a {request_type.DESCRIPTOR.full_name}: {exc}",
                )
            loop = asyncio.get_running_loop()
            call = new_call(context)

            def run():
                call.started = True
                return method(request, CallContext(call))

            work = loop.run_in_executor(executor, run)
            try:
                return await asyncio.shield(work)
            except Aborted as exc:
                if not context.done():
                    try:
                        await context.abort(exc.code, exc.details)
                    except grpc.aio.AbortError:
                        raise
                    except Exception:  # the call ended between the check and the abort
                        pass
                # the call ended first (its deadline passed, the client went away) and grpc has
                # answered it: an abort now fails in grpc's core, logged as an error with a traceback
                raise asyncio.CancelledError from None
            except asyncio.CancelledError:
                call.cancelled = True
                task = loop.create_task(_kill_until_done(loop, killer, kill, call, work))
                killing.add(task)
                task.add_done_callback(killing.discard)
                raise

        return grpc.unary_unary_rpc_method_handler(
            handle,
            response_serializer=response_type.SerializeToString,
        )

    handlers = {
        m.name: handler(m.name, getattr(query_pb2, m.input_type.name), getattr(query_pb2, m.output_type.name))
        for m in desc.methods
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(desc.full_name, handlers),))


async def _kill_until_done(
    loop, killer: Executor, kill: Callable[[str], None], call: QueryCall, work
) -> None:
    """KILL the call's statements until its worker returns: a statement it was about to start
    when the call ended is killed on the next round. A call still queued is not killed: it
    stops at its first `check`."""
    while not work.done():
        if call.started:
            try:
                await loop.run_in_executor(killer, kill, call.tag)
            except Exception as exc:  # the store may be down too; the statement's time limit holds
                log.warning("KILL QUERY for call %s failed: %s", call.tag, exc)
        await asyncio.wait([work], timeout=KILL_RETRY_S)
    exc = work.exception()
    if exc is not None and not isinstance(exc, Aborted | Cancelled):
        log.debug("cancelled call %s ended with %r", call.tag, exc)
