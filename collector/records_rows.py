"""A validated frame's events and logs → Native blocks for the `events` and `logs` tables.

Called by the ingest pipeline next to `rows.RowBuilder` (which handles the metric columns).
Events and logs arrive as protobuf messages, one per record, so each column is gathered with
one pass over the records; host and agent_id come from the frame and are the same on every row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ferry.collector.storage import native
from ferry.v1 import payload_pb2


def _constant(name: str, value: str, n: int) -> native.Column:
    return native.low_cardinality(name, [value], np.zeros(n, dtype=np.uint8))


def _ts(records: Sequence) -> native.Column:
    times = np.fromiter((r.time_unix_ns for r in records), dtype=np.int64, count=len(records))
    return native.fixed("ts", "DateTime64(9, 'UTC')", times, "<i8")


def _map(name: str, maps: Sequence) -> native.Column:
    return native.map_column(name, [sorted(m.items()) for m in maps])


def events_block(events: Sequence[payload_pb2.Event], host: str, agent_id: str) -> bytes | None:
    """The `events` rows; a value without `has_value` is stored as NULL. None when no events."""
    n = len(events)
    if not n:
        return None
    has_value = np.fromiter((e.has_value for e in events), dtype=bool, count=n)
    values = np.fromiter((e.value if e.has_value else 0.0 for e in events), dtype=np.float64, count=n)
    columns = [
        _ts(events),
        _constant("host", host, n),
        _constant("agent_id", agent_id, n),
        native.low_cardinality_of("service", [e.service for e in events]),
        native.low_cardinality_of("type", [e.type for e in events]),
        native.low_cardinality_of("category", [e.category for e in events]),
        native.low_cardinality_of("action", [e.action for e in events]),
        native.string_column("label", [e.label for e in events]),
        native.nullable(native.fixed("value", "Float64", values, "<f8"), ~has_value),
        native.string_column("user_id", [e.user_id for e in events]),
        native.string_column("session_id", [e.session_id for e in events]),
        _map("properties", [e.properties for e in events]),
    ]
    return native.block(columns, n)


def logs_block(logs: Sequence[payload_pb2.LogRecord], host: str, agent_id: str) -> bytes | None:
    """The `logs` rows. None when there are no log records."""
    n = len(logs)
    if not n:
        return None
    columns = [
        _ts(logs),
        _constant("host", host, n),
        _constant("agent_id", agent_id, n),
        native.low_cardinality_of("service", [r.service for r in logs]),
        native.low_cardinality_of("level", [r.level for r in logs]),
        native.string_column("message", [r.message for r in logs]),
        _map("attributes", [r.attributes for r in logs]),
        native.string_column("trace_id", [r.trace_id for r in logs]),
        native.string_column("span_id", [r.span_id for r in logs]),
    ]
    return native.block(columns, n)
