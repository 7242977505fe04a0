"""The agent's own metrics, exported by prometheus-client on --metrics-listen."""

from __future__ import annotations

import functools

from prometheus_client import Counter, Gauge, Histogram

COLLECT_SECONDS = Histogram(
    "ferry_agent_collect_seconds",
    "Duration of one collector run",
    ["collector"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1),
)
COLLECT_ERRORS = Counter("ferry_agent_collect_errors", "Collector runs that failed", ["collector"])
POINTS = Counter(
    "ferry_agent_points", "Metric points produced, by collector (checks and scrape included)", ["collector"]
)
BATCHES = Counter("ferry_agent_batches", "Batches cut into frames")
FRAMES_QUEUED = Counter("ferry_agent_frames_queued", "Frames written to the spool")
FRAMES_SENT = Counter("ferry_agent_frames_sent", "Frames written to a collector stream (resends included)")
BYTES_SENT = Counter("ferry_agent_bytes_sent", "Frame payload bytes written to collector streams")
FRAMES_STREAM_ENCODED = Counter(
    "ferry_agent_frames_stream_encoded", "Frames sent in the stream encoding (STREAM_ZSTD), of frames_sent"
)
STREAM_ENCODED = Gauge(
    "ferry_agent_stream_encoded", "1 while the open stream's collector took the stream encoding"
)
ACKS = Counter("ferry_agent_acks", "Acks received, by status", ["status"])
FRAMES_REJECTED = Counter(
    "ferry_agent_frames_rejected",
    "Frames dropped because no collector can take them: rejected as invalid, or too large to send",
)
POINTS_REJECTED = Counter(
    "ferry_agent_points_rejected", "Points in frames dropped because no collector can take them"
)
CONNECTED = Gauge("ferry_agent_connected", "1 while a stream to a collector is open")
RECONNECTS = Counter("ferry_agent_reconnects", "Streams that ended and were reopened")
BUFFERED_POINTS = Gauge("ferry_agent_buffered_points", "Points collected and not yet cut into a frame")
SPOOL_FRAMES = Gauge("ferry_agent_spool_frames", "Frames in the spool waiting for an ack")
SPOOL_BYTES = Gauge("ferry_agent_spool_bytes", "Bytes of spool segments holding unacked frames")
SPOOL_DROPPED_FRAMES = Counter(
    "ferry_agent_spool_dropped_frames",
    "Unacked frames dropped because the spool exceeded its bound or its disk was full",
)
SPOOL_DROPPED_POINTS = Counter(
    "ferry_agent_spool_dropped_points",
    "Points in frames dropped because the spool exceeded its bound or its disk was full",
)
SPOOL_TORN_BYTES = Counter(
    "ferry_agent_spool_torn_bytes", "Bytes of torn or corrupt records cut from the spool"
)
BACKPRESSURE = Counter(
    "ferry_agent_backpressure", "Times a collector answered RESOURCE_EXHAUSTED (retry later)"
)
SYNTHETIC_POINTS = Counter("ferry_agent_synthetic_points", "Points the synthetic source produced in this run")
RELOADS = Counter("ferry_agent_config_reloads", "SIGHUP reloads, by result (ok, error)", ["result"])
REDACTIONS = Counter(
    "ferry_agent_redactions",
    "Values redacted at the source, by [[redact]] rule: keys dropped, masked or hashed, pattern matches "
    "replaced (a metric series' labels: once per frame carrying the series)",
    ["rule"],
)


@functools.cache
def per_collector(name: str) -> tuple:
    """(collect seconds, points) children for one collector, looked up once."""
    return COLLECT_SECONDS.labels(name), POINTS.labels(name)


LOCAL_RECORDS = Counter(
    "ferry_agent_local_records", "Records apps sent to the Local service and the agent accepted"
)
LOCAL_REJECTED = Counter(
    "ferry_agent_local_rejected", "Local requests refused whole, by gRPC status", ["code"]
)
LOCAL_AUTH_FAILURES = Counter(
    "ferry_agent_local_auth_failures",
    "Local calls refused UNAUTHENTICATED (local_token_file is set), by reason: missing, malformed, wrong",
    ["reason"],
)
RECORDS_DROPPED = Counter(
    "ferry_agent_records_dropped",
    "App records the agent did not take, by reason: the records of Local requests refused whole "
    "(by the rule their first bad record broke: series, kind, value, time, histogram, events, "
    "logs, size, busy), and DELTA increments whose sum would overflow (overflow)",
    ["reason"],
)

SCRAPE_SAMPLES = Counter(
    "ferry_agent_scrape_samples", "Samples read from scraped Prometheus expositions, by job", ["job"]
)
SCRAPE_SKIPPED = Counter(
    "ferry_agent_scrape_skipped",
    "Scraped samples not sent because Ferry refuses them, by job and reason "
    "(name, labels, value, time, histogram)",
    ["job", "reason"],
)
SCRAPE_FAILURES = Counter(
    "ferry_agent_scrape_failures",
    "Scrapes that produced no exposition (refused, timeout, HTTP error, parse error), by job",
    ["job"],
)

OTLP_ACCEPTED = Counter(
    "ferry_agent_otlp_accepted",
    "Data points (metrics) and log records (logs) the OTLP receiver took, by signal",
    ["signal"],
)
OTLP_REFUSED = Counter(
    "ferry_agent_otlp_refused",
    "Data points and log records the OTLP receiver refused in a partial-success answer, by signal "
    "(metrics, logs)",
    ["signal"],
)
OTLP_BUSY = Counter(
    "ferry_agent_otlp_busy",
    "OTLP export requests answered UNAVAILABLE while the pipeline thread was behind, by signal",
    ["signal"],
)
