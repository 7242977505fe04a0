"""Build payloads and frames for tests: a few series with known values."""

from __future__ import annotations

import time

import numpy as np

from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import GAUGE, HISTOGRAM, MetricBatch, SeriesDef
from ferry.wire.frames import pack_frame


def gauge_batch(
    name: str = "test.gauge",
    n_series: int = 3,
    points: int = 5,
    t0_ms: int | None = None,
    value0: float = 1.0,
    labels: dict[str, str] | None = None,
) -> MetricBatch:
    """n_series gauges `name{idx="i"}` with `points` points each, one per second from t0.

    Point j of series i has value value0 + i * 100 + j.
    """
    t0 = t0_ms if t0_ms is not None else (int(time.time()) - points) * 1000
    extra = tuple(sorted((labels or {}).items()))
    series = [SeriesDef(name, GAUGE, "1", tuple(sorted((("idx", str(i)), *extra)))) for i in range(n_series)]
    refs = np.repeat(np.arange(n_series, dtype=np.uint32), points)
    times = np.tile(t0 + np.arange(points, dtype=np.int64) * 1000, n_series)
    values = value0 + refs.astype(np.float64) * 100 + np.tile(np.arange(points, dtype=np.float64), n_series)
    return MetricBatch(series=series, series_ref=refs, time_ms=times, value=values)


def histogram_batch(name: str = "test.hist", t_ms: int | None = None) -> MetricBatch:
    t = t_ms if t_ms is not None else int(time.time() * 1000) - 1000
    s = SeriesDef(name, HISTOGRAM, "ms", (("route", "/a"),), bounds=(1.0, 5.0, 10.0))
    return MetricBatch(
        series=[s],
        series_ref=np.array([0, 0], dtype=np.uint32),
        time_ms=np.array([t, t + 1000], dtype=np.int64),
        value=np.array([12.5, 30.0]),
        bucket_counts=np.array([1, 2, 3, 0, 0, 1, 4, 2], dtype=np.uint64),
    )


def resource(agent_id: str = "agent-test", host: str = "host-test") -> payload_pb2.Resource:
    return payload_pb2.Resource(host=host, agent_id=agent_id)


def frame(
    batch: MetricBatch,
    seq: int,
    agent_id: str = "agent-test",
    epoch: int = 42,
    host: str = "host-test",
    compress: bool = True,
) -> ingest_pb2.Frame:
    payload = encode_payload(resource(agent_id, host), batch)
    return pack_frame(agent_id, epoch, seq, payload, len(batch), compress=compress)


def event(type_: str = "click", t_ns: int | None = None, **fields) -> payload_pb2.Event:
    """An event at `t_ns` (default: a second ago); `value=` sets has_value too."""
    if "value" in fields:
        fields["has_value"] = True
    return payload_pb2.Event(time_unix_ns=t_ns or time.time_ns() - 10**9, type=type_, **fields)


def log_record(message: str, level: str = "info", t_ns: int | None = None, **fields) -> payload_pb2.LogRecord:
    """A log record at `t_ns` (default: a second ago)."""
    return payload_pb2.LogRecord(
        time_unix_ns=t_ns or time.time_ns() - 10**9, level=level, message=message, **fields
    )


def records_frame(
    seq: int,
    events: list[payload_pb2.Event] = (),
    logs: list[payload_pb2.LogRecord] = (),
    batch: MetricBatch | None = None,
    agent_id: str = "agent-test",
    epoch: int = 42,
    host: str = "host-test",
) -> ingest_pb2.Frame:
    """A frame carrying events and logs, and metric points when `batch` is given."""
    payload = encode_payload(resource(agent_id, host), batch, events=list(events), logs=list(logs))
    return pack_frame(agent_id, epoch, seq, payload, len(batch) if batch is not None else 0)


def varint(v: int) -> bytes:
    """A protobuf base-128 varint, for tests that write payload bytes by hand."""
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)
