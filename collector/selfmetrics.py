"""The collector's own metrics, exported by prometheus-client on --metrics-listen."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from ferry.records import KINDS

FRAMES = Counter("ferry_collector_frames", "Frames answered, by ack status", ["status"])
POINTS = Counter("ferry_collector_points", "Metric points committed to the store")
# one per record kind: ferry_collector_events, ferry_collector_logs
RECORDS = {
    k.name: Counter(f"ferry_collector_{k.name}", f"{k.what.capitalize()} committed to the store")
    for k in KINDS
}
FRAME_BYTES = Counter("ferry_collector_frame_bytes", "Frame payload bytes received (as sent, compressed)")
STORE_ERRORS = Counter("ferry_collector_store_errors", "Store writes that failed (the stream is ended)")
STORE_OK = Gauge(
    "ferry_collector_store_ok",
    "1 while the store takes writes; 0 while frames get UNAVAILABLE (health NOT_SERVING)",
)
INSERT_SECONDS = Histogram(
    "ferry_collector_insert_seconds",
    "Time to commit one frame's rows",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
STREAMS = Gauge("ferry_collector_streams", "Open ingest streams")
QUERIES = Counter(
    "ferry_collector_queries", "Query RPCs answered, by method and outcome", ["method", "outcome"]
)
PENDING_BYTES = Gauge(
    "ferry_collector_pending_bytes", "Estimated bytes of frames accepted and not yet answered"
)
PENDING_BYTES_MAX = Gauge("ferry_collector_pending_bytes_max", "Highest ferry_collector_pending_bytes so far")
BACKPRESSURE = Counter(
    "ferry_collector_backpressure", "Frames or streams refused with RESOURCE_EXHAUSTED", ["reason"]
)
