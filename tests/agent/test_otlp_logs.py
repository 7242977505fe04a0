"""ferry.agent.otlp: OTLP log records → Ferry log records, refusals and partial success."""

from __future__ import annotations

import time

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from ferry.agent.intake import Intake
from ferry.agent.otlp.logs import level
from ferry.agent.otlp.server import OtlpService
from ferry.v1 import payload_pb2
from tests.agent.test_otlp_metrics import kv, receiver

NOW_NS = time.time_ns()
TRACE = bytes(range(16))
SPAN = bytes(range(8, 16))
RESOURCE = (("service.name", "shop"), ("telemetry.sdk.language", "python"))


def request(*records: logs_pb2.LogRecord, resource=RESOURCE) -> ls.ExportLogsServiceRequest:
    return ls.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource={"attributes": [kv(k, v) for k, v in resource]},
                scope_logs=[logs_pb2.ScopeLogs(log_records=list(records))],
            )
        ]
    )


def body(text: str) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(string_value=text)


@pytest.fixture
def service() -> OtlpService:
    return receiver()


def export(service: OtlpService, *records: logs_pb2.LogRecord) -> tuple[Intake, int, str]:
    accepted, refused, message = service.logs(request(*records))
    intake = service.submit.taken()
    assert accepted == len(intake)
    return intake, refused, message


def test_every_field_is_kept(service):
    record = logs_pb2.LogRecord(
        time_unix_nano=NOW_NS,
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
        severity_text="WARNING",
        body=body("disk almost full"),
        attributes=[kv("code.lineno", 12), kv("user-id", "u1")],
        trace_id=TRACE,
        span_id=SPAN,
    )
    intake, refused, message = export(service, record)
    assert (refused, message) == (0, "")
    assert intake.logs == [
        payload_pb2.LogRecord(
            time_unix_ns=NOW_NS,
            level="WARNING",
            message="disk almost full",
            service="shop",
            attributes={
                "telemetry.sdk.language": "python",
                "code.lineno": "12",
                "user_id": "u1",
                "severity_number": "13",
            },
            trace_id="000102030405060708090a0b0c0d0e0f",
            span_id="08090a0b0c0d0e0f",
        )
    ]


def test_levels_times_bodies_and_absent_ids(service):
    structured = common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=[kv("order", 7)]))
    records = [
        logs_pb2.LogRecord(observed_time_unix_nano=NOW_NS, severity_number=10, body=structured),
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, trace_id=bytes(16), span_id=b"", event_name="login"),
    ]
    intake, refused, _ = export(service, *records)
    assert refused == 0
    first, second = intake.logs
    assert (first.time_unix_ns, first.level, first.message) == (NOW_NS, "INFO2", '{"order":7}')
    assert first.attributes["severity_number"] == "10"
    assert (second.level, second.trace_id, second.span_id) == ("UNSPECIFIED", "", "")
    assert "severity_number" not in second.attributes and second.attributes["event.name"] == "login"
    assert level(logs_pb2.LogRecord(severity_number=logs_pb2.SEVERITY_NUMBER_FATAL4)) == "FATAL4"


def test_a_log_without_a_time_is_stamped_on_receipt(service):
    before = time.time_ns()
    intake, _, _ = export(service, logs_pb2.LogRecord(severity_text="info", body=body("x")))
    assert before <= intake.logs[0].time_unix_ns <= time.time_ns()


def test_bad_records_are_refused_one_by_one_with_the_validators_messages(service):
    records = [
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body("fine")),
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body("x" * 70_000)),
        logs_pb2.LogRecord(
            time_unix_nano=NOW_NS, severity_text="info", attributes=[kv(f"a{i}", i) for i in range(10_000)]
        ),
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="i" * 300),
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", attributes=[kv("big", "v" * 5000)]),
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body("also fine")),
    ]
    intake, refused, message = export(service, *records)
    assert [r.message for r in intake.logs] == ["fine", "also fine"]
    assert refused == 4
    assert message == (
        "4 of 6 log records refused: "
        "log record 1: message is 70000 bytes > 65536 allowed; "
        "log record 2: 10001 attributes > 64 allowed; "  # 10,000 and the resource's one
        "log record 3: level is 300 bytes > 256 allowed; "
        "log record 4: attributes 'big' is 5000 bytes > 4096 allowed"
    )


def test_a_resource_over_the_attribute_limit_is_refused_once(service):
    wide = (*RESOURCE, *((f"r{i}", "v") for i in range(100)))
    records = [
        logs_pb2.LogRecord(time_unix_nano=NOW_NS, severity_text="info", body=body(f"{i}")) for i in range(3)
    ]
    both = ls.ExportLogsServiceRequest(
        resource_logs=[
            request(*records, resource=wide).resource_logs[0],
            request(
                records[0], logs_pb2.LogRecord(time_unix_nano=NOW_NS, body=body("x" * 70_000))
            ).resource_logs[0],
        ]
    )
    accepted, refused, message = service.logs(both)
    assert [r.message for r in service.submit.taken().logs] == ["0"]
    assert (accepted, refused) == (1, 4)
    assert message == (
        "4 of 5 log records refused: resource 0 (its 3 log records): 101 attributes > 64 allowed; "
        "log record 4: message is 70000 bytes > 65536 allowed"  # records are numbered across resources
    )
