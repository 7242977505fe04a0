"""An OTLP `ExportLogsServiceRequest` → Ferry log records (payload.proto `LogRecord`).

Called by the OTLP receiver (ferry.agent.otlp.server); the records are validated, limited and
redacted with every other app record (ferry.agent.otlp.accept). The fields (docs/otlp.md):

- `time_unix_ns`: the record's time, else its observed time, else 0 (the agent stamps it).
- `level`: the severity text as sent ("WARNING" from Python's logging), else the short name of
  the severity number ("WARN", "INFO2"), else "UNSPECIFIED"; the number itself is kept as the
  attribute `severity_number` (when not 0).
- `message`: the body: a string as it is, any other value as ferry.agent.otlp.names.text renders
  it (JSON for maps and arrays).
- `service`: the resource's `service.name`.
- `attributes`: the resource's other attributes, then the record's (over them), keys mapped as
  labels are (ferry.agent.otlp.names), then `severity_number` and, when set, `event.name`.
- `trace_id`, `span_id`: lowercase hex, '' when absent or all zero.

A resource whose other attributes alone break the log attribute limits (count, keys) is refused
whole, with one refusal, before they are copied onto any record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from ferry.agent.otlp.accept import Refusal, resource_refusal
from ferry.agent.otlp.names import SERVICE_LABEL, attributes, text
from ferry.limits import RecordLimits, check_attributes
from ferry.v1 import payload_pb2

_PREFIX = "SEVERITY_NUMBER_"
SEVERITY_NAMES = {
    v.number: v.name.removeprefix(_PREFIX) for v in logs_pb2.SeverityNumber.DESCRIPTOR.values if v.number
}
NO_LEVEL = "UNSPECIFIED"


@dataclass
class LogRow:
    record: payload_pb2.LogRecord
    where: str  # "log record 3" (its place in the request, from 0), for a refusal
    field: str = "logs"  # its Records field


def level(record: logs_pb2.LogRecord) -> str:
    if record.severity_text:
        return record.severity_text
    return SEVERITY_NAMES.get(record.severity_number, str(record.severity_number or NO_LEVEL))


def _hex_id(raw: bytes) -> str:
    return raw.hex() if raw.strip(b"\0") else ""


def map_logs(
    request: logs_service_pb2.ExportLogsServiceRequest, limits: RecordLimits
) -> Iterator[LogRow | Refusal]:
    """The request's log records, in order (lazily: validated a chunk at a time), and what is
    refused. `limits`: the validator's, by which a resource's attributes are checked once."""
    i = 0
    for r, resource_logs in enumerate(request.resource_logs):
        resource_attrs = attributes(resource_logs.resource.attributes)
        service = resource_attrs.pop(SERVICE_LABEL, "")
        records = sum(len(scope_logs.log_records) for scope_logs in resource_logs.scope_logs)
        refusal = resource_refusal(r, resource_attrs, records, "log records", _check_resource(limits))
        if refusal is not None:
            yield refusal
            i += records
            continue
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                attrs = {**resource_attrs, **attributes(record.attributes)}
                if record.severity_number:
                    attrs["severity_number"] = str(record.severity_number)
                if record.event_name:
                    attrs["event.name"] = record.event_name
                log = payload_pb2.LogRecord(
                    time_unix_ns=record.time_unix_nano or record.observed_time_unix_nano,
                    level=level(record),
                    message=text(record.body),
                    service=service,
                    attributes=attrs,
                    trace_id=_hex_id(record.trace_id),
                    span_id=_hex_id(record.span_id),
                )
                yield LogRow(log, f"log record {i}")
                i += 1


def _check_resource(limits: RecordLimits):
    # a record's attributes hold every key of its resource's (its own only add or replace
    # values): a count or a key the validator refuses is refused for every record
    return lambda attrs, where: check_attributes(dict.fromkeys(attrs, ""), "attributes", limits, where)
