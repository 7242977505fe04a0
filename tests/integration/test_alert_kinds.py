"""The other kinds of rule with real processes: a ratio of two counters at the right error
rate, an absent rule for an agent SIGKILLed (and back), an anomaly over a generated 7-day
baseline (not judged before the baseline exists), and 20 hosts crossing at once grouped into
one notification per group."""

from __future__ import annotations

import signal
import time

import grpc
import numpy as np

from ferry import transport
from ferry.client import Telemetry
from ferry.v1 import alerts_pb2, alerts_pb2_grpc, ingest_pb2_grpc
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests import framegen
from tests.collector.notify_sink import Sink
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for

HOOK = """
[[receivers]]
name = "hook"
type = "webhook"
url = "{url}/hook"

[[routes]]
receiver = "hook"
group_by = {group_by}
group_wait = "1s"
group_interval = "1s"
repeat_interval = "{repeat}"
"""


def rules_file(tmp_path, sink: Sink, alerts: str, group_by: str = '["alertname"]', repeat: str = "1h"):
    path = tmp_path / "rules.toml"
    path.write_text(
        "builtin_rules = false\n" + alerts + HOOK.format(url=sink.url, group_by=group_by, repeat=repeat)
    )
    return path


def sent(sink: Sink, status: str) -> list:
    return [r for r in sink.requests if r.body["status"] == status]


def status(addr: str) -> tuple[dict, dict]:
    """(instance id → (labels, state), rule → (health, message))."""
    with transport.channel(addr) as channel:
        resp = alerts_pb2_grpc.AlertsStub(channel).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10)
    return {a.id: (dict(a.labels), a.state) for a in resp.alerts}, {
        r.name: (r.health, r.message) for r in resp.rules
    }


RATIO = """
[[alerts]]
name = "ErrorRate"
ratio = { numerator = "http.errors", denominator = "http.requests" }
agg = "increase"
by = ["service"]
window = "4s"
condition = "> 5%"
severity = "critical"
annotations = { summary = "{{service}} errors at {{value}}" }
"""


def test_a_ratio_of_two_counters_fires_at_the_right_rate(tmp_path):
    with Sink() as sink:
        rules = rules_file(tmp_path, sink, RATIO)
        collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
        sock = tmp_path / "agent.sock"
        agent = start_agent(tmp_path, collector.addr, "--collectors", "", "--batch-max-age", "200ms",
                            "--local-socket", str(sock))  # fmt: skip
        app = Telemetry(f"unix:{sock}")
        try:
            with diagnose(collector, agent):
                end = time.monotonic() + 6
                while time.monotonic() < end:  # web: 10% errors, api: 2%
                    app.counter("http.requests", 50, {"service": "web"})
                    app.counter("http.errors", 5, {"service": "web"})
                    app.counter("http.requests", 50, {"service": "api"})
                    app.counter("http.errors", 1, {"service": "api"})
                    app.flush()
                    time.sleep(0.2)
                (note,) = wait_for(lambda: sent(sink, "firing"), timeout=10, what="the error-rate alert")
                (alert,) = note.body["alerts"]
                assert alert["labels"]["service"] == "web"
                assert alert["value"] == 0.1
                assert alert["annotations"] == {"summary": "web errors at 0.1"}
                assert {labels["service"] for labels, _ in status(collector.addr)[0].values()} == {"web"}
        finally:
            app.close()
            agent.stop()
            collector.stop()


ABSENT = """
[[alerts]]
name = "NoMemory"
query = "system.memory.usage"
by = ["agent"]
window = "3s"
absent = true
severity = "critical"
"""


def test_an_absent_rule_fires_for_a_killed_agent_and_resolves_when_it_returns(tmp_path):
    with Sink() as sink:
        rules = rules_file(tmp_path, sink, ABSENT.replace('by = ["agent"]', 'by = ["host"]'))
        collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
        args = ("--interval", "1s", "--batch-max-age", "1s", "--host", "box-1")
        agent = start_agent(tmp_path, collector.addr, *args, agent_id="box-1")
        try:
            with diagnose(collector, agent):
                wait_for(
                    lambda: status(collector.addr)[1].get("NoMemory", ("",))[0] == "ok", what="data seen"
                )
                assert sent(sink, "firing") == []
                agent.stop(signal.SIGKILL)
                (note,) = wait_for(lambda: sent(sink, "firing"), timeout=20, what="absent fires")
                assert note.body["alerts"][0]["labels"]["host"] == "box-1"
                agent = start_agent(tmp_path, collector.addr, *args, agent_id="box-1")
                wait_for(lambda: sent(sink, "resolved"), timeout=20, what="resolved when it returns")
        finally:
            agent.stop()
            collector.stop()


ANOMALY = """
[[alerts]]
name = "LatencySpike"
query = "svc.latency"
agg = "avg"
window = "10m"
anomaly = { method = "zscore", baseline = "7d", threshold = 4 }
severity = "warning"
"""


def _push_history(addr: str, start_ms: int, end_ms: int, seq0: int, rng) -> int:
    """One point every 10 minutes from start to end, around 100 ms; returns the next seq."""
    times = np.arange(start_ms, end_ms, 600_000, dtype=np.int64)
    seq = seq0
    with transport.channel(addr) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        for chunk in np.array_split(times, max(1, len(times) // 500)):
            batch = MetricBatch(
                series=[SeriesDef("svc.latency", GAUGE, "ms", ())],
                series_ref=np.zeros(len(chunk), dtype=np.uint32),
                time_ms=chunk,
                value=100 + rng.normal(0, 2, len(chunk)),
            )
            stub.Push(framegen.frame(batch, seq, agent_id="history"), timeout=30)
            seq += 1
    return seq


def test_an_anomaly_rule_waits_for_its_baseline_then_fires_on_a_spike(tmp_path):
    with Sink() as sink:
        rules = rules_file(tmp_path, sink, ANOMALY)
        collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
        try:
            with diagnose(collector):
                rng = np.random.default_rng(7)
                now = int(time.time() * 1000)
                seq = _push_history(collector.addr, now - 2 * 86_400_000, now - 60_000, 1, rng)
                health = wait_for(lambda: "baseline holds" in status(collector.addr)[1]["LatencySpike"][1],
                                  what="not judged on 2 of 7 days")  # fmt: skip
                assert status(collector.addr)[1]["LatencySpike"][0] == "nodata", health
                seq = _push_history(collector.addr, now - 7 * 86_400_000, now - 2 * 86_400_000, seq, rng)
                wait_for(
                    lambda: status(collector.addr)[1]["LatencySpike"][0] == "ok", what="judged on 7 days"
                )
                time.sleep(1.5)
                assert sent(sink, "firing") == []
                spike = MetricBatch(
                    series=[SeriesDef("svc.latency", GAUGE, "ms", ())],
                    series_ref=np.zeros(3, dtype=np.uint32),
                    time_ms=np.array([int(time.time() * 1000) - i * 1000 for i in range(3)], dtype=np.int64),
                    value=np.array([400.0, 410.0, 420.0]),
                )
                with transport.channel(collector.addr) as channel:
                    ingest_pb2_grpc.IngestStub(channel).Push(framegen.frame(spike, seq, agent_id="history"))
                (note,) = wait_for(lambda: sent(sink, "firing"), timeout=10, what="the spike")
                assert note.body["alerts"][0]["labels"]["alertname"] == "LatencySpike"
        finally:
            collector.stop()


CROWD = """
[[alerts]]
name = "HotHost"
query = "app.temp"
agg = "max"
by = ["node", "zone"]
window = "3s"
condition = "> 50"
severity = "warning"
"""


def test_twenty_hosts_at_once_make_one_notification_per_group_then_repeats(tmp_path):
    """group_by zone: 20 hosts (`node`: pushed frames carry one resource host) in 2 zones
    crossing at once → 2 notifications of 10 alerts each; repeat_interval 3 s sends them
    again; an acked alert is left out of the repeats."""
    with Sink() as sink:
        rules = rules_file(tmp_path, sink, CROWD, group_by='["alertname", "zone"]', repeat="3s")
        collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
        try:
            with diagnose(collector):
                seq = 1
                stop_at = time.monotonic() + 12
                acked = None
                with transport.channel(collector.addr) as channel:
                    stub = ingest_pb2_grpc.IngestStub(channel)
                    while time.monotonic() < stop_at:
                        now = int(time.time() * 1000)
                        series = [
                            SeriesDef("app.temp", GAUGE, "C", (("node", f"n{i:02d}"), ("zone", f"z{i % 2}")))
                            for i in range(20)
                        ]
                        batch = MetricBatch(
                            series=series,
                            series_ref=np.arange(20, dtype=np.uint32),
                            time_ms=np.full(20, now, dtype=np.int64),
                            value=np.full(20, 80.0),
                        )
                        stub.Push(framegen.frame(batch, seq, agent_id="crowd"), timeout=10)
                        seq += 1
                        firing = sent(sink, "firing")
                        if len(firing) >= 2 and acked is None:
                            acked = _ack_one(collector.addr)
                        time.sleep(0.25)
                firing = sent(sink, "firing")
                first = firing[:2]
                assert sorted(len(r.body["alerts"]) for r in first) == [10, 10]
                assert {r.body["groupLabels"]["zone"] for r in first} == {"z0", "z1"}
                repeats = firing[2:]
                assert repeats, "repeat_interval 3 s: the groups are sent again"
                for r in repeats:
                    assert acked not in {a["id"] for a in r.body["alerts"]}
        finally:
            collector.stop()


def _ack_one(addr: str) -> str:
    with transport.channel(addr) as channel:
        stub = alerts_pb2_grpc.AlertsStub(channel)
        first = sorted(a.id for a in stub.ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10).alerts)[0]
        try:
            stub.Ack(alerts_pb2.AckRequest(id=first, note="on it"), timeout=10)
        except grpc.RpcError as exc:  # pragma: no cover - shown if it happens
            raise AssertionError(f"ack failed: {exc.code()} {exc.details()}") from None
    return first
