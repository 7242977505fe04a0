"""OpenTelemetry SDKs → the agent's OTLP/gRPC receiver → a real collector and its store.

A service instrumented with the real opentelemetry-sdk and its OTLP gRPC exporter
(tests/apps/otlp_app.py) exports a counter, an up-down counter, a cumulative histogram (twice,
so it grows) and logs to a real agent; the values, kinds, buckets and log fields are read back
from the store through the Query service. Then bad OTLP sent with the raw opentelemetry-proto
stubs (NaN, 10,000 attributes, a huge body, bytes that are no request, a request over the size
limit) gets partial-success answers or clear statuses, and the agent still takes a good export.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mp

from ferry import transport
from ferry.collector.devrun import free_port
from ferry.collector.query.client import query_range
from ferry.series import COUNTER, GAUGE, HISTOGRAM
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.integration.procs import collector_and_agent, diagnose, wait_for

APP = Path(__file__).parent.parent / "apps" / "otlp_app.py"
EXPORT = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    otlp = f"127.0.0.1:{free_port()}"
    workdir = tmp_path_factory.mktemp("otlp")
    flags = ("--collectors", "", "--batch-max-age", "0.5s", "--otlp-listen", otlp)
    with collector_and_agent(workdir, *flags) as (collector, agent):
        yield collector, agent, otlp


def last_values(addr: str, metric: str, by: str) -> dict[str, float]:
    resp = query_range(addr, metric, agg="last", window_ms=600_000, by=[by], timeout=10)
    return {s.labels.get(by, ""): s.value[-1] for s in resp.series if s.value}


def one(addr: str, metric: str, agg: str) -> float | None:
    resp = query_range(addr, metric, agg=agg, window_ms=600_000, by=["__all__"], timeout=10)
    values = [v for s in resp.series for v in s.value]
    return sum(values) if values else None


def series(addr: str, metric: str) -> list[query_pb2.SeriesInfo]:
    with transport.channel(addr) as channel:
        return list(
            query_pb2_grpc.QueryStub(channel)
            .ListSeries(query_pb2.ListSeriesRequest(metric=metric), timeout=10)
            .series
        )


def logs(addr: str, **equals: str) -> list[query_pb2.StoredLog]:
    with transport.channel(addr) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        return list(stub.SearchLogs(query_pb2.SearchLogsRequest(equals=equals, limit=100), timeout=10).logs)


def kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def resource(service: str) -> dict:
    return {"attributes": [kv("service.name", service)]}


def gauges(*points: tuple[str, float, tuple]) -> ms.ExportMetricsServiceRequest:
    now = time.time_ns()
    metrics = [
        mp.Metric(
            name=name,
            gauge=mp.Gauge(
                data_points=[mp.NumberDataPoint(as_double=v, time_unix_nano=now, attributes=list(attrs))]
            ),
        )
        for name, v, attrs in points
    ]
    return ms.ExportMetricsServiceRequest(
        resource_metrics=[
            mp.ResourceMetrics(resource=resource("raw"), scope_metrics=[mp.ScopeMetrics(metrics=metrics)])
        ]
    )


def log_request(*records: logs_pb2.LogRecord) -> ls.ExportLogsServiceRequest:
    return ls.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource("raw"), scope_logs=[logs_pb2.ScopeLogs(log_records=records)]
            )
        ]
    )


def log(body: str, **kw) -> logs_pb2.LogRecord:
    return logs_pb2.LogRecord(
        time_unix_nano=time.time_ns(), severity_text="info", body=common_pb2.AnyValue(string_value=body), **kw
    )


def test_an_sdk_instrumented_service_arrives_exactly(running):
    collector, agent, otlp = running
    addr = collector.addr
    with diagnose(collector, agent):
        app = subprocess.run([sys.executable, str(APP), otlp], capture_output=True, text=True, timeout=60)
        assert app.returncode == 0, app.stderr
        ids = json.loads(app.stdout.splitlines()[-1])
        # metrics at each force_flush and again at shutdown (cumulative: the same totals), logs once
        assert ids["exports"] == ["SUCCESS"] * 4, app.stderr

        # a counter: COUNTER, its cumulative total as exported
        wait_for(lambda: last_values(addr, "app.orders", "shop") == {"a": 7.0, "b": 5.0}, 30, what="orders")
        orders_a, _ = sorted(series(addr, "app.orders"), key=lambda s: s.labels["shop"])
        assert (orders_a.kind, orders_a.unit) == (COUNTER, "{order}")
        labels = dict(orders_a.labels)
        assert labels["service"] == "otlp-app" and labels["deployment.environment"] == "test"
        assert labels["telemetry.sdk.language"] == "python" and labels["shop"] == "a"
        # an up-down counter: GAUGE, its level
        wait_for(
            lambda: last_values(addr, "app.inflight", "service") == {"otlp-app": 5.0}, 30, what="inflight"
        )
        assert [s.kind for s in series(addr, "app.inflight")] == [GAUGE]
        # a cumulative histogram exported twice: stored as two deltas adding up to the six observations
        wait_for(lambda: one(addr, "app.latency", "count") == 6.0, 30, what="6 observations")
        [latency] = series(addr, "app.latency")
        assert (latency.kind, latency.unit) == (HISTOGRAM, "ms")
        assert one(addr, "app.latency", "sum") == 5632.0  # 5 + 50 + 500 + 5000 + 7 + 70
        # buckets (10, 100, 1000, +Inf) hold 2, 2, 1, 1: the median interpolates inside (10, 100]
        assert one(addr, "app.latency", "p50") == pytest.approx(55.0, rel=1e-12)

        wait_for(lambda: len(logs(addr, service="otlp-app")) == 2, 30, what="two logs")
        declined, done = sorted(logs(addr, service="otlp-app"), key=lambda s: s.log.message, reverse=True)
        record = declined.log
        assert (record.level, record.message) == (
            "WARN",
            "payment declined",
        )  # the SDK's text for logging.WARNING
        assert (record.trace_id, record.span_id) == (ids["trace_id"], ids["span_id"])
        assert record.attributes["order_id"] == "42" and record.attributes["severity_number"] == "13"
        assert record.attributes["deployment.environment"] == "test"
        assert (done.log.level, done.log.message, done.log.trace_id) == ("INFO", "done", "")
        assert done.log.attributes["severity_number"] == "9"
        scraped = agent.scrape()
        assert scraped['ferry_agent_otlp_accepted_total{signal="logs"}'] >= 2


def test_bad_otlp_gets_partial_success_and_the_agent_keeps_serving(running):
    collector, agent, otlp = running
    with diagnose(collector, agent), transport.channel(otlp) as channel:
        metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        logs_stub = logs_service_pb2_grpc.LogsServiceStub(channel)
        many = tuple(kv(f"k{i}", "v") for i in range(10_000))

        answer = metrics.Export(
            gauges(("raw.ok", 1.0, ()), ("raw.nan", math.nan, ()), ("raw.wide", 2.0, many)), timeout=10
        )
        assert answer.partial_success.rejected_data_points == 2
        assert answer.partial_success.error_message == (
            "2 of 3 data points refused: metric 'raw.nan' data point 0: value nan is not finite; "
            "metric 'raw.wide' data point 0: 10001 labels > 32 allowed"
        )

        answer = logs_stub.Export(
            log_request(log("x" * 100_000), log("wide", attributes=many), log("kept")), timeout=10
        )
        assert answer.partial_success.rejected_log_records == 2
        assert answer.partial_success.error_message == (
            "2 of 3 log records refused: log record 0: message is 100000 bytes > 65536 allowed; "
            "log record 1: 10000 attributes > 64 allowed"
        )

        raw = channel.unary_unary(EXPORT)  # bytes as they are: no serializer
        with pytest.raises(grpc.RpcError) as err:
            raw(b"\xff\xff\xff", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (
            "is not a opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest"
            in err.value.details()
        )

        with pytest.raises(grpc.RpcError) as err:
            logs_stub.Export(log_request(*(log("y" * 60_000) for _ in range(80))), timeout=10)  # ~4.8 MB
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

        # the agent still serves: a good export is taken whole and stored, redacted as the Local
        # service's records are (the default rules drop a `password` label and attribute)
        secret = (kv("password", "hunter2"), kv("user", "u1"))
        answer = metrics.Export(gauges(("raw.after", 3.0, secret)), timeout=10)
        assert not answer.HasField("partial_success")
        answer = logs_stub.Export(log_request(log("after the bad ones", attributes=secret)), timeout=10)
        assert not answer.HasField("partial_success")
        addr = collector.addr
        wait_for(lambda: last_values(addr, "raw.after", "service") == {"raw": 3.0}, 30, what="raw.after")
        assert [dict(s.labels) for s in series(addr, "raw.after")] == [
            {"service": "raw", "user": "u1", "host": dict(series(addr, "raw.ok")[0].labels)["host"]}
        ]
        assert last_values(addr, "raw.ok", "service") == {"raw": 1.0}
        assert series(addr, "raw.nan") == [] and series(addr, "raw.wide") == []
        wait_for(lambda: len(logs(addr, service="raw")) == 2, 30, what="the raw logs")
        assert sorted(s.log.message for s in logs(addr, service="raw")) == ["after the bad ones", "kept"]
        [after] = logs(addr, service="raw", **{"attributes.user": "u1"})
        assert "password" not in after.log.attributes
        scraped = agent.scrape()
        assert scraped['ferry_agent_otlp_refused_total{signal="metrics"}'] == 2
        assert scraped['ferry_agent_otlp_refused_total{signal="logs"}'] == 2
