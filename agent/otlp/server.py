"""OTLP/gRPC `MetricsService/Export` and `LogsService/Export`, served on the agent's event loop.

A request is mapped onto the Local service's records (ferry.agent.otlp.metrics, .logs) and
checked by the Local service's validator (ferry.agent.otlp.accept) on the receiver's own thread,
and what passes goes to the pipeline thread, from the event loop, through the same `submit` the
Local service uses, so the same redaction and the apps' own frames apply. A request is handed
over whole or not at all: its accepted chunks are kept until it is mapped, then handed over in
one event-loop callback only if the RPC is still alive then (not cancelled by the client, by its
deadline or by a shutdown whose grace ran out), since a client told that an export failed sends
it again. Only then do the cumulative histograms' totals of the request count as kept. The answer is OTLP's
partial success: `rejected_data_points` / `rejected_log_records` and an `error_message` naming
each refused metric or record, the value and the limit. A request that is not an OTLP message
answers INVALID_ARGUMENT (ferry.rpc), one over MAX_MESSAGE_BYTES RESOURCE_EXHAUSTED (gRPC), and
while more than `max_pending` records or `max_pending_bytes` of requests wait for the pipeline
thread, UNAVAILABLE, which the SDKs' exporters retry with backoff. Other clients are not
affected either way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from ferry import rpc, transport
from ferry.agent import selfmetrics as m
from ferry.agent.intake import Intake
from ferry.agent.local.records import KnownSeries
from ferry.agent.local.server import MAX_MESSAGE_BYTES
from ferry.agent.otlp.accept import Rules, check
from ferry.agent.otlp.logs import map_logs
from ferry.agent.otlp.metrics import CumulativeHistograms, Row, Run, map_metrics, to_growth
from ferry.agent.scrape.histograms import Totals
from ferry.limits import Limits, RecordLimits, on_arrival, records_on_arrival

log = logging.getLogger("ferry.agent.otlp")
Chunks = list[tuple[Intake, int]]  # a request's checked chunks and the bytes of their records
HandOver = Callable[[Chunks], bool]  # hands a whole request's chunks over; False: not at all
HAND_OVER_WAIT_S = 30.0  # how long the worker waits for the event loop to take a request


class OtlpService:
    """What both Export methods share: the limits, the series seen, the cumulative histograms'
    last totals and the count of request bytes waiting for the pipeline thread."""

    def __init__(
        self,
        submit: Callable[[Intake], Future | None],
        pending: Callable[[], int],
        max_pending: int = 1_000_000,
        max_pending_bytes: int = 16 * 1024 * 1024,
        limits: Limits | None = None,
        cumulative: CumulativeHistograms | None = None,
    ):
        self.submit = submit
        self.pending = pending
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        # the Local service's rules: the collector's, the time window narrowed by the delivery margin
        self.rules = Rules(on_arrival(limits or Limits()), records_on_arrival(RecordLimits()), KnownSeries())
        self.cumulative = CumulativeHistograms() if cumulative is None else cumulative
        self._submitted_bytes = 0  # event loop
        self._taken_bytes = 0  # pipeline thread (or the event loop, for a job already done)
        self._taken_lock = threading.Lock()
        # Mapping and checking cost ~20 us a point, and a 4 MiB request may hold 200,000 small
        # ones: they run here, one request at a time (the series cache and the cumulative
        # histograms are this thread's alone), so the event loop (the sender, the Local service)
        # keeps its turns while a big export is read.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="otlp")

    async def refuse_if_busy(self, signal: str, context: grpc.aio.ServicerContext) -> None:
        waiting, waiting_bytes = self.pending(), self._submitted_bytes - self._taken_bytes
        if waiting > self.max_pending or waiting_bytes > self.max_pending_bytes:
            m.OTLP_BUSY.labels(signal).inc()
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the agent has {waiting} records ({waiting_bytes} bytes) waiting > {self.max_pending} "
                f"({self.max_pending_bytes} bytes); retry later",
            )

    def _hand_over(self, intake: Intake, size: int) -> None:
        """One chunk's Intake to the pipeline thread; `size`: the bytes of its Local records."""
        if not len(intake):
            return
        taken = self.submit(intake)
        if taken is not None:  # the agent's Future: done when the pipeline thread took it
            self._submitted_bytes += size
            taken.add_done_callback(lambda _: self._took(size))

    def _hand_over_all(self, chunks: Chunks) -> bool:
        for intake, size in chunks:
            self._hand_over(intake, size)
        return True

    def _took(self, size: int) -> None:
        with self._taken_lock:
            self._taken_bytes += size

    def metrics(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, hand_over: HandOver | None = None
    ) -> tuple[int, int, str]:
        """Take what passes of one request: (data points accepted, refused, the error message).
        The accepted chunks go to `hand_over` together at the end (default: to `submit`, from
        this thread); the request's cumulative totals are kept only if it took them."""
        chunks: Chunks = []
        pending: dict[Run, Totals] = {}  # this request's cumulative histogram totals

        def take(intake: Intake, size: int, rows: list[Row]) -> None:
            to_growth(intake, rows, self.cumulative, pending)
            chunks.append((intake, size))

        tally = check(map_metrics(request, self.rules.limits), self.rules, take)
        if (hand_over or self._hand_over_all)(chunks):
            for run, totals in pending.items():
                self.cumulative.keep(run, totals)
        return tally.accepted, tally.refused, tally.error_message("data points")

    def logs(
        self, request: logs_service_pb2.ExportLogsServiceRequest, hand_over: HandOver | None = None
    ) -> tuple[int, int, str]:
        """Take what passes of one request: (log records accepted, refused, the error message)."""
        chunks: Chunks = []
        tally = check(
            map_logs(request, self.rules.record_limits),
            self.rules,
            lambda intake, size, _rows: chunks.append((intake, size)),
        )
        (hand_over or self._hand_over_all)(chunks)
        return tally.accepted, tally.refused, tally.error_message("log records")

    async def off_the_loop(
        self, work: Callable, request, context: grpc.aio.ServicerContext
    ) -> tuple[int, int, str]:
        """`work` (metrics or logs) on the receiver's own thread, its hand-over back on the event
        loop, where `submit` must be called (the agent counts what it was handed there), and
        only while the RPC is alive."""
        loop = asyncio.get_running_loop()
        rpc_task = asyncio.current_task()

        def alive() -> bool:
            # grpc.aio does not mark the context done when the client cancels or its deadline
            # passes: it cancels the RPC's task (checked on the event loop, where it happens)
            remaining = context.time_remaining()
            if rpc_task is None or rpc_task.done() or rpc_task.cancelling():
                return False
            return remaining is None or remaining > 0

        def hand_over(chunks: Chunks) -> bool:
            verdict: Future[bool] = Future()

            def on_the_loop() -> None:
                if not verdict.set_running_or_notify_cancel():
                    return  # the worker gave up waiting: it answered "not handed over"
                try:
                    verdict.set_result(alive() and self._hand_over_all(chunks))
                except BaseException as exc:
                    verdict.set_exception(exc)
                    raise

            try:
                loop.call_soon_threadsafe(on_the_loop)
            except RuntimeError:  # the event loop is closed: nothing can be taken any more
                return False
            try:
                return verdict.result(timeout=HAND_OVER_WAIT_S)
            except TimeoutError:
                if verdict.cancel():  # the callback has not started, and now never will
                    return False
                return verdict.result()

        return await loop.run_in_executor(self._worker, work, request, hand_over)

    def close(self) -> None:
        """Wait for the request being mapped, if any (its RPC was cancelled when the server's
        grace ran out, so nothing of it is handed over)."""
        self._worker.shutdown(wait=True)


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, service: OtlpService):
        self.service = service

    async def Export(self, request, context) -> metrics_service_pb2.ExportMetricsServiceResponse:
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        await answer(self.service, "metrics", request, context, response, "rejected_data_points")
        return response


class LogsReceiver(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, service: OtlpService):
        self.service = service

    async def Export(self, request, context) -> logs_service_pb2.ExportLogsServiceResponse:
        response = logs_service_pb2.ExportLogsServiceResponse()
        await answer(self.service, "logs", request, context, response, "rejected_log_records")
        return response


async def answer(service: OtlpService, signal: str, request, context, response, rejected: str) -> None:
    """Either Export: take what passes of `request` ("metrics" or "logs": the `signal`) and fill
    `response`'s partial success (its `rejected` count and the message) when something was not."""
    await service.refuse_if_busy(signal, context)
    work = service.metrics if signal == "metrics" else service.logs
    accepted, refused, message = await service.off_the_loop(work, request, context)
    m.OTLP_ACCEPTED.labels(signal).inc(accepted)
    if refused:
        m.OTLP_REFUSED.labels(signal).inc(refused)
        setattr(response.partial_success, rejected, refused)
        response.partial_success.error_message = message


async def start(
    service: OtlpService, listen: str, *, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> grpc.aio.Server:
    server = transport.server(max_receive_bytes=MAX_MESSAGE_BYTES, interceptors=interceptors)
    # requests parsed by ferry.rpc: bytes that are not the request answer INVALID_ARGUMENT, not UNKNOWN
    rpc.add_servicer(
        server, MetricsReceiver(service), metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"]
    )
    rpc.add_servicer(
        server, LogsReceiver(service), logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"]
    )
    try:
        transport.bind(server, listen)
    except OSError as exc:
        raise OSError(f"{exc} (--otlp-listen)") from None
    await server.start()
    log.info("OTLP/gRPC receiver (metrics, logs) on %s", listen)
    return server


async def stop(server: grpc.aio.Server | None, service: OtlpService) -> None:
    if server is not None:
        await server.stop(grace=1.0)
    await asyncio.get_running_loop().run_in_executor(None, service.close)
