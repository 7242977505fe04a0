"""A service instrumented with the real OpenTelemetry SDK, exporting OTLP/gRPC to the agent.

    python otlp_app.py HOST:PORT

Records the workload below with the SDK's default (cumulative) temporality and explicit-bucket
histograms, exports it twice (a force_flush after each half, so the agent sees a cumulative
histogram grow), logs through the SDK's LoggingHandler inside a span, flushes and shuts down.
Prints one JSON line: the span's trace and span ids (hex) and what each export answered.

Workload (service.name "otlp-app"):
- `app.orders` counter {order}: 3 then 4 more, attribute shop=a (7), and 5 with shop=b;
- `app.inflight` up-down counter: +10, -3, then +2, -4 (5 at the end);
- `app.latency` histogram ms, bounds [10, 100, 1000]: 5, 50, 500 then 5000, 7, 70;
- logs: a warning "payment declined" with extra order_id=42 inside the span, an info "done".
"""

from __future__ import annotations

import json
import logging
import sys

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

BOUNDS = [10.0, 100.0, 1000.0]
RESULTS: list[str] = []  # what each export answered (SUCCESS, FAILURE), metrics and logs


class Recording:
    """Mixed into an exporter: each export's result goes to RESULTS."""

    def export(self, *args, **kwargs):
        result = super().export(*args, **kwargs)
        RESULTS.append(result.name)
        return result


class MetricExporter(Recording, OTLPMetricExporter):
    pass


class LogExporter(Recording, OTLPLogExporter):
    pass


def main(endpoint: str) -> int:
    resource = Resource.create({"service.name": "otlp-app", "deployment.environment": "test"})
    # an hour between periodic exports: the two force_flush calls below are the only ones
    reader = PeriodicExportingMetricReader(
        MetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=3_600_000
    )
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter("otlp_app")
    orders = meter.create_counter("app.orders", unit="{order}")
    inflight = meter.create_up_down_counter("app.inflight")
    latency = meter.create_histogram("app.latency", unit="ms", explicit_bucket_boundaries_advisory=BOUNDS)

    orders.add(3, {"shop": "a"})
    orders.add(5, {"shop": "b"})
    inflight.add(10)
    inflight.add(-3)
    for v in (5, 50, 500):
        latency.record(v)
    meters.force_flush(30_000)
    orders.add(4, {"shop": "a"})
    inflight.add(2)
    inflight.add(-4)
    for v in (5000, 7, 70):
        latency.record(v)
    meters.force_flush(30_000)

    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(BatchLogRecordProcessor(LogExporter(endpoint=endpoint, insecure=True)))
    log = logging.getLogger("otlp_app")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logs))
    tracer = TracerProvider(resource=resource).get_tracer("otlp_app")
    with tracer.start_as_current_span("checkout") as span:
        context = span.get_span_context()
        log.warning("payment declined", extra={"order_id": 42})
    log.info("done")
    logs.force_flush(30_000)
    logs.shutdown()
    meters.shutdown()
    print(
        json.dumps(
            {
                "trace_id": format(context.trace_id, "032x"),
                "span_id": format(context.span_id, "016x"),
                "exports": RESULTS,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
