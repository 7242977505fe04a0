"""OTLP/gRPC `MetricsService/Export` and `LogsService/Export` on the agent's event loop.

A request is mapped onto the Local service's records (ferry.agent.otlp.metrics, .logs), checked
by the Local service's validator (ferry.agent.otlp.accept), and what passes goes to the pipeline
thread through the same `submit` the Local service uses, so the same redaction and the apps'
own frames apply. The answer is OTLP's partial success: `rejected_data_points` /
`rejected_log_records` and an `error_message` naming each refused metric or record, the value
and the limit. A request that is not an OTLP message answers INVALID_ARGUMENT (ferry.rpc), one
over MAX_MESSAGE_BYTES RESOURCE_EXHAUSTED (gRPC), and while more than `max_pending` records or
`max_pending_bytes` of requests wait for the pipeline thread, UNAVAILABLE, which the SDKs'
exporters retry with backoff. Other clients are not affected either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import grpc
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from ferry import rpc, transport
from ferry.agent import selfmetrics as m
from ferry.agent.intake import Intake
from ferry.agent.local.records import KnownSeries
from ferry.agent.local.server import MAX_MESSAGE_BYTES
from ferry.agent.otlp.accept import Checked, check, error_message
from ferry.agent.otlp.logs import map_logs
from ferry.agent.otlp.metrics import CumulativeHistograms, map_metrics
from ferry.limits import Limits, RecordLimits, on_arrival, records_on_arrival

log = logging.getLogger("ferry.agent.otlp")


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
    ):
        self.submit = submit
        self.pending = pending
        self.max_pending = max_pending
        self.max_pending_bytes = max_pending_bytes
        self.limits = on_arrival(limits or Limits())
        self.record_limits = records_on_arrival(RecordLimits())
        self.known = KnownSeries()
        self.cumulative = CumulativeHistograms()
        self._submitted_bytes = 0  # event loop
        self._taken_bytes = 0  # pipeline thread (or the event loop, for a job already done)
        self._taken_lock = threading.Lock()

    async def refuse_if_busy(self, signal: str, context: grpc.aio.ServicerContext) -> None:
        waiting, waiting_bytes = self.pending(), self._submitted_bytes - self._taken_bytes
        if waiting > self.max_pending or waiting_bytes > self.max_pending_bytes:
            m.OTLP_BUSY.labels(signal).inc()
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"the agent has {waiting} records ({waiting_bytes} bytes) waiting > {self.max_pending} "
                f"({self.max_pending_bytes} bytes); retry later",
            )

    def hand_over(self, intake: Intake, request: Message) -> None:
        if not len(intake):
            return
        taken = self.submit(intake)
        if taken is not None:  # the agent's Future: done when the pipeline thread took it
            size = request.ByteSize()
            self._submitted_bytes += size
            taken.add_done_callback(lambda _: self._took(size))

    def _took(self, size: int) -> None:
        with self._taken_lock:
            self._taken_bytes += size

    def metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> tuple[Checked, int, str]:
        """(what passed, data points refused, the error message) for one request."""
        mapped = map_metrics(request, self.cumulative)
        out = Checked()
        now_ns = time.time_ns()
        for name in ("metrics", "histograms"):
            check(name, getattr(mapped, name), now_ns, self.limits, self.record_limits, self.known, out)
        for row in out.accepted:
            if getattr(row, "totals", None) is not None:
                self.cumulative.keep(*row.totals)
        messages = [r.message for r in mapped.refused] + out.messages
        refused = sum(r.points for r in mapped.refused) + len(out.messages)
        return out, refused, error_message(refused, refused + len(out.accepted), "data points", messages)

    def logs(self, request: logs_service_pb2.ExportLogsServiceRequest) -> tuple[Checked, int, str]:
        """(what passed, log records refused, the error message) for one request."""
        rows = map_logs(request)
        out = Checked()
        check("logs", rows, time.time_ns(), self.limits, self.record_limits, self.known, out)
        refused = len(out.messages)
        return out, refused, error_message(refused, len(rows), "log records", out.messages)


class MetricsReceiver(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, service: OtlpService):
        self.service = service

    async def Export(self, request, context) -> metrics_service_pb2.ExportMetricsServiceResponse:
        await self.service.refuse_if_busy("metrics", context)
        out, refused, message = self.service.metrics(request)
        self.service.hand_over(out.intake, request)
        m.OTLP_ACCEPTED.labels("metrics").inc(len(out.accepted))
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if refused:
            m.OTLP_REFUSED.labels("metrics").inc(refused)
            response.partial_success.rejected_data_points = refused
            response.partial_success.error_message = message
        return response


class LogsReceiver(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, service: OtlpService):
        self.service = service

    async def Export(self, request, context) -> logs_service_pb2.ExportLogsServiceResponse:
        await self.service.refuse_if_busy("logs", context)
        out, refused, message = self.service.logs(request)
        self.service.hand_over(out.intake, request)
        m.OTLP_ACCEPTED.labels("logs").inc(len(out.accepted))
        response = logs_service_pb2.ExportLogsServiceResponse()
        if refused:
            m.OTLP_REFUSED.labels("logs").inc(refused)
            response.partial_success.rejected_log_records = refused
            response.partial_success.error_message = message
        return response


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


async def stop(server: grpc.aio.Server | None) -> None:
    if server is not None:
        await server.stop(grace=1.0)
