"""Ferry's client library: apps send metrics, events and logs to the local agent.

    from ferry.client import Telemetry
    telemetry = Telemetry("unix:/run/ferry/agent.sock", service="checkout")
    telemetry.counter("http.requests", labels={"route": "/pay"})
    telemetry.histogram("http.latency", 0.042, labels={"route": "/pay"})
    telemetry.event("purchase", "shop", "pay", value=19.9, user_id="u1")
    telemetry.log("error", "payment declined", order="o-17")

Recording never raises and never blocks on the agent; what cannot be kept is dropped and
counted (`telemetry.stats()`). An agent with a local token wants it on every call: pass
`token=` or `token_file=`, or set FERRY_LOCAL_TOKEN. See docs/local-api.md.
"""

if __name__ != "ferry.client":  # the folder client/ is the package ferry.client; never a top-level `client`
    raise ImportError(f"no package {__name__!r} (the folder client/ is imported as ferry.client)")

from ferry.client.aio import AsyncTelemetry
from ferry.client.handler import TelemetryHandler
from ferry.client.stats import Stats
from ferry.client.sync import Telemetry

__all__ = ["AsyncTelemetry", "Stats", "Telemetry", "TelemetryHandler"]
