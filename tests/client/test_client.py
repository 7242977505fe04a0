"""ferry.client against the agent's real Local service (gRPC on a unix socket, in this process):
what it sends, how it aggregates, what it drops and counts, and that it never raises."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ferry.agent.intake import Intake
from ferry.agent.local import server as local_server
from ferry.agent.local.server import LocalService
from ferry.client import AsyncTelemetry, Telemetry, TelemetryHandler
from ferry.client.buffer import MAX_REQUEST_BYTES, Buffer
from ferry.limits import MAX_RECORDS
from ferry.series import DELTA, GAUGE, HISTOGRAM


class FakeAgentLoop:
    """The real LocalService on its own event loop thread; what it accepts lands in `intakes`."""

    def __init__(self, socket_path: Path):
        self.socket_path = socket_path
        self.intakes: list[Intake] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = None

    def start(self) -> None:
        service = LocalService(self.intakes.append, lambda: 0)
        self.server = self._run(local_server.start(service, "", str(self.socket_path)))

    def stop(self) -> None:
        self._run(local_server.stop(self.server, str(self.socket_path)))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def merged(self) -> Intake:
        out = Intake()
        for i in list(self.intakes):
            for name in ("points", "deltas", "histograms", "events", "logs"):
                getattr(out, name).extend(getattr(i, name))
        return out


@pytest.fixture
def agent():
    d = Path(tempfile.mkdtemp(prefix="ferry-client-"))
    a = FakeAgentLoop(d / "agent.sock")
    a.start()
    yield a
    a.stop()
    a.loop.call_soon_threadsafe(a.loop.stop)
    a.thread.join(5)


def sums(deltas) -> dict:
    out: dict = {}
    for series, _t, value in deltas:
        key = (series.name, series.labels)
        out[key] = out.get(key, 0.0) + value
    return out


def test_counters_gauges_histograms_events_and_logs_arrive(agent):
    t = Telemetry(f"unix:{agent.socket_path}", service="shop", flush_interval=60)
    for i in range(1000):
        t.counter("http.requests", labels={"route": f"/r{i % 4}"})
    t.counter("http.bytes", 2.5)
    t.gauge("queue.depth", 7, labels={"q": "a"})
    for v in (0.003, 0.02, 0.02, 0.3, 20.0):
        t.histogram("http.latency", v)
    t.histogram("size", 5, buckets=[1, 10])
    t.event("purchase", "shop", "pay", value=19.5, properties={"plan": "pro"}, user_id="u1")
    t.log("error", "card declined", order="o-17", trace_id="abc")
    assert t.flush(5)
    got = agent.merged()
    assert sums(got.deltas) == {
        **{("http.requests", (("route", f"/r{i}"),)): 250.0 for i in range(4)},
        ("http.bytes", ()): 2.5,
    }
    assert all(s.kind == DELTA for s, _, _ in got.deltas)
    (gauge,) = got.points
    assert (gauge[0].name, gauge[0].kind, gauge[0].labels, gauge[2]) == (
        "queue.depth",
        GAUGE,
        (("q", "a"),),
        7.0,
    )
    assert abs(gauge[1] - time.time() * 1000) < 60_000
    hist = {s.name: (s.kind, s.bounds, total, counts) for s, _t, total, counts in got.histograms}
    assert hist["size"] == (HISTOGRAM, (1.0, 10.0), 5.0, (0, 1, 0))
    _kind, bounds, total, counts = hist["http.latency"]
    assert bounds[:3] == (0.005, 0.01, 0.025) and total == pytest.approx(20.343)
    assert counts[0] == 1 and counts[2] == 2 and counts[bounds.index(0.5)] == 1 and counts[-1] == 1
    assert sum(counts) == 5
    (event,) = got.events
    assert (event.type, event.category, event.action, event.value, event.has_value) == (
        "purchase",
        "shop",
        "pay",
        19.5,
        True,
    )
    assert (event.user_id, event.service, dict(event.properties)) == ("u1", "shop", {"plan": "pro"})
    (log,) = got.logs
    assert (log.level, log.message, log.service, log.trace_id, dict(log.attributes)) == (
        "error",
        "card declined",
        "shop",
        "abc",
        {"order": "o-17"},
    )
    stats = t.stats()
    assert (stats.dropped, stats.queued) == (0, 0)
    assert stats.sent == len(got)  # records the agent accepted: 5 counter series, 1 gauge, 2 hists, ...
    assert t.close()


def test_bad_records_are_dropped_and_counted_without_raising(agent, caplog):
    t = Telemetry(f"unix:{agent.socket_path}", flush_interval=60)
    with caplog.at_level(logging.WARNING, logger="ferry.client"):
        t.counter("bad name")
        t.counter("ok", -1)  # a counter only goes up
        t.gauge("g", float("nan"))
        t.gauge("g", "not a number")  # wrong type: counted, not raised
        t.histogram("h", 1, buckets=[2, 1])
        t.event("")  # no type
        t.event("x", nonsense=1)
        t.log("info", "x" * 70_000)
        t.counter("ok", labels={f"k{i}": "v" for i in range(40)})
    assert "metric name 'bad name' does not match" in caplog.text  # the first, then rate-limited
    t.counter("ok")
    assert t.flush(5)
    assert sums(agent.merged().deltas) == {("ok", ()): 1.0}
    stats = t.stats()
    assert stats.dropped == 9 and set(stats.dropped_by_reason) <= {"invalid", "error"}
    t.close()


def test_a_full_queue_drops_and_counts(agent):
    t = Telemetry(f"unix:{agent.socket_path}", flush_interval=60, max_queue=10, batch_size=10**9)
    for i in range(25):
        t.gauge("g", i)
    for _ in range(5):
        t.counter("c")  # counters are summed in place: they never fill the queue
    assert t.flush(5)
    got = agent.merged()
    assert [p[2] for p in got.points] == list(range(10))
    assert sums(got.deltas) == {("c", ()): 5.0}
    assert t.stats().dropped_by_reason == {"queue_full": 15}
    t.close()


def test_series_limit(agent):
    t = Telemetry(f"unix:{agent.socket_path}", flush_interval=60, max_series=3)
    for i in range(5):
        t.counter("c", labels={"i": i})
    t.histogram("h", 1.0)  # a 4th series in this interval
    assert t.flush(5)
    assert len(agent.merged().deltas) == 3
    assert t.stats().dropped_by_reason == {"series_limit": 3}
    t.close()


def test_agent_down_then_back_keeps_the_retry_buffer_and_counts_the_rest(agent):
    t = Telemetry(f"unix:{agent.socket_path}", flush_interval=0.1, max_queue=100)
    agent.stop()
    for i in range(300):  # far more than the buffer holds while nobody listens
        t.gauge("g", i)
        t.counter("c")
        time.sleep(0.001)
    assert not t.flush(1)
    stats = t.stats()
    assert stats.dropped > 0 and "UNAVAILABLE" in stats.last_error
    agent.start()
    assert t.flush(10)
    got = agent.merged()
    delivered = len(got.points)
    assert delivered + t.stats().dropped == 300  # every gauge is either delivered or counted
    assert t.stats().dropped_by_reason == {"undelivered": 300 - delivered}
    assert sums(got.deltas) == {("c", ()): 300.0}  # summed counters are kept whole through the outage
    t.close()


def test_requests_stay_within_the_agents_limits(agent):
    t = Telemetry(f"unix:{agent.socket_path}", flush_interval=60)
    for i in range(25_000):
        t.gauge("g", i)
    for i in range(100):
        t.log("info", "x" * 60_000, i=i)  # 6 MB of logs: more than one 4 MiB request
    assert t.flush(20)
    got = agent.merged()
    assert len(got.points) == 25_000 and len(got.logs) == 100
    records = [len(i.points) + len(i.logs) for i in agent.intakes]
    # gauges and logs may share a request: 25,100 records need at least 3 of at most MAX_RECORDS
    assert len(records) >= 3 and max(records) <= MAX_RECORDS
    # and at most MAX_REQUEST_BYTES each: no request carries more than 3 MiB / 60 kB = 52 of these logs
    assert max(len(i.logs) for i in agent.intakes) <= MAX_REQUEST_BYTES // 60_000
    t.close()


def test_records_after_close_are_counted(agent):
    t = Telemetry(f"unix:{agent.socket_path}")
    assert t.close()
    t.counter("c")
    t.log("info", "late")
    assert t.stats().dropped_by_reason == {"closed": 2}


def test_logging_handler(agent):
    t = Telemetry(f"unix:{agent.socket_path}", service="api", flush_interval=60)
    logger = logging.getLogger("test.client.handler")
    logger.propagate = False
    logger.addHandler(TelemetryHandler(t))
    try:
        logger.warning("disk %s at %d%%", "sda", 91, extra={"trace_id": "t1", "tenant": "acme"})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("boom")
    finally:
        logger.handlers.clear()
    assert t.flush(5)
    first, second = agent.merged().logs
    assert (first.level, first.message, first.service, first.trace_id) == (
        "warning",
        "disk sda at 91%",
        "api",
        "t1",
    )
    assert first.attributes["tenant"] == "acme" and first.attributes["logger"] == "test.client.handler"
    assert second.level == "error" and "ZeroDivisionError" in second.attributes["exception"]
    t.close()


def test_async_client(agent):
    async def main() -> tuple:
        async with AsyncTelemetry(f"unix:{agent.socket_path}", flush_interval=60) as t:
            for _ in range(100):
                t.counter("c", labels={"k": "v"})
            t.event("signup")
            ok = await t.flush(5)
        return ok, t.stats()

    ok, stats = asyncio.run(main())
    got = agent.merged()
    assert ok and sums(got.deltas) == {("c", (("k", "v"),)): 100.0} and got.events[0].type == "signup"
    assert stats.dropped == 0


def test_buffer_never_raises_on_a_clock_failure():
    def broken_clock() -> int:
        raise OSError("clock")

    t = Telemetry("127.0.0.1:1", flush_interval=60)
    t._buffer = Buffer(clock_ns=broken_clock)
    t.gauge("g", 1)  # the error is ours: counted, not raised into the app
    assert t.stats().dropped_by_reason == {"error": 1}
    t.close(0.1)
