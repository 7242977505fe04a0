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
AUTH_FAILURES = Counter(
    "ferry_collector_auth_failures",
    "Calls and frames refused by authentication or authorization, by reason (docs/security.md)",
    ["reason"],
)
STORE_ERRORS = Counter(
    "ferry_collector_store_errors", "Groups whose store writes failed (their frames get UNAVAILABLE)"
)
STORE_OK = Gauge(
    "ferry_collector_store_ok",
    "1 while the store takes writes; 0 while frames get UNAVAILABLE (health NOT_SERVING)",
)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
INSERT_SECONDS = Histogram(
    "ferry_collector_insert_seconds", "Time of one group's insert into a table", ["table"], buckets=_SECONDS
)
GROUPS = Counter(
    "ferry_collector_groups", "Groups written (one insert per table each), by outcome", ["outcome"]
)
GROUP_SECONDS = Histogram(
    "ferry_collector_group_seconds", "Time to write one group, every table", buckets=_SECONDS
)
GROUP_FRAMES = Histogram(
    "ferry_collector_group_frames",
    "Frames per group written",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
GROUP_ROWS = Histogram(
    "ferry_collector_group_rows",
    "Rows (points and records) per group written",
    buckets=(100, 1_000, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000),
)
MARKS = Gauge(
    "ferry_collector_dedup_marks",
    "Dedup marks held: (agent, epoch, table, day) units the store holds frames of",
)
LEDGER_SECONDS = Gauge(
    "ferry_collector_ledger_load_seconds", "Time the dedup marks took to rebuild from the store at start"
)
STREAMS = Gauge("ferry_collector_streams", "Open ingest streams")
STREAMS_ENCODED = Gauge("ferry_collector_streams_encoded", "Open ingest streams in the stream encoding")
STREAM_FRAMES = Counter(
    "ferry_collector_stream_frames", "STREAM_ZSTD frames read against their stream's state (duplicates too)"
)
STREAMS_BROKEN = Counter(
    "ferry_collector_streams_broken",
    "Ingest streams ended because a frame did not fit their stream-encoding state",
)
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
NOTIFICATIONS = Counter(
    "ferry_collector_notifications",
    "Alert notifications by receiver and outcome: sent; retried (an attempt failed, another follows); "
    "failed (given up after max_retries, or refused for good: lost); dropped (its receiver's queue was "
    "full: the oldest waiting is dropped) (docs/alerting.md)",
    ["receiver", "outcome"],
)
NOTIFICATION_SECONDS = Histogram(
    "ferry_collector_notification_seconds",
    "Time of one attempt to send a notification, by receiver",
    ["receiver"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERTS_UNROUTED = Counter(
    "ferry_collector_alerts_unrouted", "Alerts no [[routes]] table matched (not sent; logged once each)"
)
