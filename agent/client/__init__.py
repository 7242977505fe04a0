"""Ferry's client library: apps send metrics, events and logs to the local agent.

    from agent.client import Telemetry
    telemetry = Telemetry("unix:/run/ferry/agent.sock", service="checkout")
    telemetry.counter("http.requests", labels={"route": "/pay"})
    telemetry.histogram("http.latency", 0.042, labels={"route": "/pay"})
    telemetry.event("purchase", "shop", "pay", value=19.9, user_id="u1")
    telemetry.log("error", "payment declined", order="o-17")

Recording never raises and never blocks on the agent; what cannot be kept is dropped and
counted (`telemetry.stats()`). See docs/local-api.md.
"""

from agent.client.aio import AsyncTelemetry
from agent.client.handler import TelemetryHandler
from agent.client.stats import Stats
from agent.client.sync import Telemetry

__all__ = ["AsyncTelemetry", "Stats", "Telemetry", "TelemetryHandler"]
