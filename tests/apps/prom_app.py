"""A Prometheus exporter with known values, for the scrape integration test.

    python prom_app.py PORT

Serves prometheus_client's /metrics on 127.0.0.1:PORT (OpenMetrics or text, as the client asks)
from its own registry: `app_requests_total` = 42 for code="200" and code="500", `app_temperature`
= 3.25, and `app_latency_seconds`, a histogram of the 10 OBSERVATIONS (binary fractions, so
their sum is exact). Prints "ready" and serves until stdin closes.
"""

import sys

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BOUNDS = (0.125, 0.5, 1.0, 5.0)
OBSERVATIONS = (0.0625, 0.125, 0.25, 0.25, 0.5, 0.75, 1.0, 2.5, 4.0, 8.0)

if __name__ == "__main__":
    registry = CollectorRegistry()
    requests = Counter("app_requests", "Requests served", ["code"], registry=registry)
    for code in ("200", "500"):
        for _ in range(42):
            requests.labels(code).inc()
    Gauge("app_temperature", "Temperature", registry=registry).set(3.25)
    latency = Histogram("app_latency_seconds", "Latency", buckets=BOUNDS, registry=registry)
    for value in OBSERVATIONS:
        latency.observe(value)
    start_http_server(int(sys.argv[1]), addr="127.0.0.1", registry=registry)
    print("ready", flush=True)
    sys.stdin.read()
