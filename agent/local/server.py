"""`ferry.v1.Local` on a unix socket and loopback TCP, served on the agent's event loop.

Who may call it is decided before a request is read: the socket file's mode and group
(ferry.agent.local.access), and the token check (ferry.agent.local.auth, an interceptor).

A request is validated whole (`records.convert`) and answered at once; its points go to the
pipeline thread, which owns the batcher. Refusals: INVALID_ARGUMENT for a bad record (its index
and reason), RESOURCE_EXHAUSTED for a request over the record limit or while more than
`max_pending` records, or `max_pending_bytes` of requests, wait for the pipeline thread (a
count alone bounds nothing: a log record may be 64 KiB). Other clients are not affected either
way.
"""

from __future__ import annotations

import contextlib
import logging
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

import grpc

from ferry import rpc, transport
from ferry.agent import selfmetrics as m
from ferry.agent.intake import Intake
from ferry.agent.local.access import apply_to_socket
from ferry.agent.local.records import KnownSeries, RecordError, convert
from ferry.limits import Limits, RecordLimits, on_arrival, records_on_arrival
from ferry.records import count
from ferry.v1 import local_pb2, local_pb2_grpc

log = logging.getLogger("ferry.agent.local")
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class LocalService(local_pb2_grpc.LocalServicer):
    def __init__(
        self,
        submit: Callable[[Intake], Future | None],
        pending: Callable[[], int],
        max_pending: int = 1_000_000,
        limits: Limits | None = None,
        max_pending_bytes: int = 16 * 1024 * 1024,
    ):
        self.submit = submit
        self.pending = pending
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        # request bytes handed to the pipeline thread, and taken by it (the callback runs on
        # the pipeline thread, or on the event loop when the job was already done)
        self._submitted_bytes = 0
        self._taken_bytes = 0
        self._taken_lock = threading.Lock()
        # the collector's rules, the time window narrowed by the delivery margin
        self.limits = on_arrival(limits or Limits())
        self.record_limits = records_on_arrival(RecordLimits())
        self.known = KnownSeries()

    async def Send(self, request: local_pb2.Records, context) -> local_pb2.SendResponse:
        return local_pb2.SendResponse(accepted=await self._accept(request, context))

    async def SendStream(self, request_iterator, context) -> local_pb2.SendResponse:
        accepted = 0
        async for records in request_iterator:
            accepted += await self._accept(records, context)
        return local_pb2.SendResponse(accepted=accepted)

    async def _accept(self, records: local_pb2.Records, context) -> int:
        try:
            intake = convert(records, time.time_ns(), self.limits, self.record_limits, self.known)
            waiting, waiting_bytes = self.pending(), self._submitted_bytes - self._taken_bytes
            if waiting > self.max_pending or waiting_bytes > self.max_pending_bytes:
                raise RecordError(
                    f"the agent has {waiting} records ({waiting_bytes} bytes) waiting > "
                    f"{self.max_pending} ({self.max_pending_bytes} bytes); retry later",
                    "RESOURCE_EXHAUSTED",
                    "busy",
                )
        except RecordError as exc:
            m.LOCAL_REJECTED.labels(exc.code).inc()
            m.RECORDS_DROPPED.labels(exc.reason).inc(
                len(records.metrics) + len(records.histograms) + count(records)
            )
            await context.abort(grpc.StatusCode[exc.code], str(exc))
        taken = self.submit(intake)
        if taken is not None:  # the agent's Future: done when the pipeline thread took it
            size = records.ByteSize()
            self._submitted_bytes += size
            taken.add_done_callback(lambda _: self._took(size))
        n = len(intake)
        m.LOCAL_RECORDS.inc(n)
        return n

    def _took(self, size: int) -> None:
        with self._taken_lock:
            self._taken_bytes += size


def _unlink_stale_socket(path: Path) -> None:
    """A socket file left by a previous run (nothing listens on it after a crash)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.stat().st_mode):
            path.unlink()
        else:
            raise OSError(f"{path} exists and is not a socket")


async def start(
    service: LocalService,
    listen: str,
    socket_path: str,
    *,
    socket_mode: str = "0660",
    socket_group: str = "",
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> grpc.aio.Server | None:
    """Serve on the addresses that are set ('' disables one); None when both are off. The socket
    file gets `socket_group` and `socket_mode` (ferry.agent.local.access) before the server
    starts, so no connection is taken under other permissions."""
    if not listen and not socket_path:
        return None
    server = transport.server(
        max_receive_bytes=MAX_MESSAGE_BYTES, options=[("grpc.so_reuseport", 0)], interceptors=interceptors
    )
    # requests parsed by ferry.rpc: bytes that are not Records answer INVALID_ARGUMENT, not UNKNOWN
    rpc.add_servicer(server, service, local_pb2.DESCRIPTOR.services_by_name["Local"])
    if socket_path:
        path = Path(socket_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _unlink_stale_socket(path)
        transport.bind(server, f"unix:{path}")  # the socket file exists once bound
        try:
            apply_to_socket(socket_path, socket_mode, socket_group)
        except OSError:
            path.unlink(missing_ok=True)  # never left behind open to the wrong users
            raise
    if listen:
        try:
            transport.bind(server, listen)
        except OSError as exc:
            raise OSError(f"{exc} (--local-listen)") from None
    await server.start()
    where = f"unix:{socket_path} (mode {socket_mode}{', group ' + socket_group if socket_group else ''})"
    log.info("local service on %s", ", ".join(a for a in (where if socket_path else "", listen) if a))
    return server


async def stop(server: grpc.aio.Server | None, socket_path: str) -> None:
    if server is None:
        return
    await server.stop(grace=1.0)
    if socket_path:
        with contextlib.suppress(FileNotFoundError):
            Path(socket_path).unlink()
