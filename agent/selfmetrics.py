"""The agent's own metrics, exported by prometheus-client on --metrics-listen."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

COLLECT_SECONDS = Histogram(
    "ferry_agent_collect_seconds",
    "Duration of one collector run",
    ["collector"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
COLLECT_ERRORS = Counter("ferry_agent_collect_errors", "Collector runs that failed", ["collector"])
POINTS = Counter("ferry_agent_points", "Metric points collected")
BATCHES = Counter("ferry_agent_batches", "Batches cut into frames")
FRAMES_QUEUED = Counter("ferry_agent_frames_queued", "Frames put in the outbox")
FRAMES_SENT = Counter("ferry_agent_frames_sent", "Frames written to a collector stream (resends included)")
BYTES_SENT = Counter("ferry_agent_bytes_sent", "Frame payload bytes written to collector streams")
ACKS = Counter("ferry_agent_acks", "Acks received, by status", ["status"])
FRAMES_REJECTED = Counter("ferry_agent_frames_rejected", "Frames the collector rejected as invalid (dropped)")
FRAMES_DROPPED = Counter("ferry_agent_frames_dropped", "Frames dropped unsent because the outbox was full")
POINTS_DROPPED = Counter(
    "ferry_agent_points_dropped", "Points in frames dropped unsent (outbox full or rejected)"
)
OUTBOX_FRAMES = Gauge("ferry_agent_outbox_frames", "Frames waiting for an ack")
OUTBOX_BYTES = Gauge("ferry_agent_outbox_bytes", "Compressed bytes waiting for an ack")
CONNECTED = Gauge("ferry_agent_connected", "1 while a stream to a collector is open")
RECONNECTS = Counter("ferry_agent_reconnects", "Streams that ended and were reopened")
