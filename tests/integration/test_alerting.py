"""Alerting end to end: a collector with --rules, an agent, an app sending a gauge through
ferry.client, and a webhook receiver (a local HTTP server): pending, firing after `for`, one
notification with the labels and the templated summary, resolved once; keep_firing_for; the
built-in FerryAgentDown for an agent SIGKILLed; a restart while firing sends no duplicate;
a bad rules file on SIGHUP keeps the old rules."""

from __future__ import annotations

import signal
import time

import pytest

from ferry import transport
from ferry.client import Telemetry
from ferry.v1 import alerts_pb2, alerts_pb2_grpc
from tests.collector.notify_sink import Sink
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for

RULES = """
[[alerts]]
name = "HotRoom"
query = "app.temp"
agg = "max"
by = ["room"]
window = "3s"
condition = "> 50"
for = "2s"
keep_firing_for = "{keep}"
severity = "critical"
labels = {{ team = "facilities" }}
annotations = {{ summary = "room {{{{room}}}} at {{{{value}}}} ({{{{threshold}}}})" }}

[[receivers]]
name = "hook"
type = "webhook"
url = "{url}/hook"

[[routes]]
receiver = "hook"
group_by = ["alertname", "room"]
group_wait = "0s"
group_interval = "1s"
repeat_interval = "1h"
"""


def alerts(addr: str) -> list:
    with transport.channel(addr) as channel:
        return list(
            alerts_pb2_grpc.AlertsStub(channel).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10).alerts
        )


def sent(sink: Sink, status: str) -> list:
    """The notifications of `status` the webhook received so far."""
    return [r for r in sink.requests if r.body["status"] == status]


def states(addr: str) -> dict[str, str]:
    return {a.labels.get("room", a.rule): a.state for a in alerts(addr)}


@pytest.fixture
def stack(tmp_path):
    sink = Sink().__enter__()
    rules = tmp_path / "rules.toml"
    rules.write_text("builtin_rules = false\n" + RULES.format(url=sink.url, keep="0s"))
    collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
    sock = tmp_path / "agent.sock"
    agent = start_agent(tmp_path, collector.addr, "--collectors", "", "--batch-max-age", "200ms",
                        "--local-socket", str(sock))  # fmt: skip
    app = Telemetry(f"unix:{sock}")
    try:
        yield collector, agent, app, sink, rules
    finally:
        app.close()
        agent.stop()
        collector.stop()
        sink.__exit__(None, None, None)


def send_for(app: Telemetry, seconds: float, **rooms: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for room, value in rooms.items():
            app.gauge("app.temp", value, {"room": room})
        app.flush()
        time.sleep(0.2)


def test_threshold_pending_firing_one_notification_then_resolved(stack):
    collector, agent, app, sink, _rules = stack
    with diagnose(collector, agent):
        send_for(app, 1.5, kitchen=20.0, lab=21.0)
        assert sink.requests == []
        send_for(app, 1.0, kitchen=80.0, lab=21.0)
        wait_for(lambda: any(a.labels.get("room") == "kitchen" for a in alerts(collector.addr)),
                 what="kitchen pending")  # fmt: skip
        send_for(app, 3.0, kitchen=80.0, lab=21.0)
        firing = wait_for(lambda: sent(sink, "firing"), timeout=10,
                          what="the firing notification")  # fmt: skip
        (note,) = firing
        (alert,) = note.body["alerts"]
        assert alert["labels"] == {"alertname": "HotRoom", "severity": "critical", "room": "kitchen",
                                   "team": "facilities"}  # fmt: skip
        assert alert["annotations"] == {"summary": "room kitchen at 80 (> 50)"}
        # cooler: resolved, notified once
        send_for(app, 4.0, kitchen=20.0, lab=21.0)
        resolved = wait_for(lambda: sent(sink, "resolved"), timeout=10,
                            what="the resolved notification")  # fmt: skip
        time.sleep(1.5)
        assert len(sent(sink, "firing")) == 1
        assert len(resolved) == 1 and resolved[0].body["alerts"][0]["labels"]["room"] == "kitchen"
        assert not any(a.labels.get("room") == "lab" for a in alerts(collector.addr))


def test_keep_firing_for_a_restart_and_a_bad_reload(tmp_path):
    """keep_firing_for holds the alert past its condition; a collector restarted while it fires
    resumes it firing and sends no second firing notification; a rules file broken on SIGHUP
    keeps the rules running."""
    with Sink() as sink:
        rules = tmp_path / "rules.toml"
        rules.write_text("builtin_rules = false\n" + RULES.format(url=sink.url, keep="4s"))
        flags = ("--rules", str(rules), "--alert-eval-interval", "500ms")
        collector = start_collector(tmp_path, *flags)
        sock = tmp_path / "agent.sock"
        agent = start_agent(tmp_path, collector.addr, "--collectors", "", "--batch-max-age", "200ms",
                            "--local-socket", str(sock))  # fmt: skip
        app = Telemetry(f"unix:{sock}")
        try:
            with diagnose(collector, agent):
                send_for(app, 3.5, kitchen=80.0)
                wait_for(lambda: sent(sink, "firing"), timeout=10, what="firing")
                cooled = time.monotonic()
                send_for(app, 2.0, kitchen=20.0)
                assert states(collector.addr) == {"kitchen": "firing"}  # held for 4 s after it last held
                wait_for(lambda: sent(sink, "resolved"), timeout=10, what="resolved after keep_firing_for")
                assert time.monotonic() - cooled >= 3.0
                send_for(app, 3.5, kitchen=80.0)  # fires again: a second episode
                wait_for(lambda: len(sent(sink, "firing")) == 2, timeout=10, what="firing again")
                port = int(collector.addr.rpartition(":")[2])
                collector.stop()
                collector = start_collector(tmp_path, *flags, store=tmp_path / "store", port=port)
                assert states(collector.addr) == {"kitchen": "firing"}  # resumed, not pending again
                send_for(app, 7.0, kitchen=80.0)  # past the restart's grace: evaluated again
                assert states(collector.addr) == {"kitchen": "firing"}
                assert len(sent(sink, "firing")) == 2  # no duplicate of the one before the restart
                rules.write_text(rules.read_text() + '\n[[alerts]]\nname = "Broken"\nquery = "m"\n')
                collector.popen.send_signal(signal.SIGHUP)
                wait_for(lambda: "rules not reloaded, the old rules keep running" in collector.output(),
                         what="the refused reload")  # fmt: skip
                assert "needs one of condition" in collector.output()
                send_for(app, 1.0, kitchen=80.0)
                assert states(collector.addr) == {"kitchen": "firing"}
        finally:
            app.close()
            agent.stop()
            collector.stop()


def test_builtin_agent_down_fires_for_a_killed_agent_and_resolves_when_it_returns(tmp_path):
    with Sink() as sink:
        rules = tmp_path / "rules.toml"
        rules.write_text(
            'agent_down_after = "3s"\n\n[[receivers]]\nname = "hook"\ntype = "webhook"\n'
            f'url = "{sink.url}/hook"\n\n[[routes]]\nreceiver = "hook"\ngroup_wait = "0s"\n'
            'group_interval = "1s"\n'
        )
        collector = start_collector(tmp_path, "--rules", str(rules), "--alert-eval-interval", "500ms")
        agent = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                            agent_id="doomed")  # fmt: skip
        try:
            with diagnose(collector, agent):
                wait_for(
                    lambda: "doomed" in {a.agent_id for a in _agents(collector.addr)}, what="the agent seen"
                )
                agent.stop(signal.SIGKILL)
                fired = wait_for(lambda: sent(sink, "firing"), 20, what="FerryAgentDown")
                labels = fired[0].body["alerts"][0]["labels"]
                assert (labels["alertname"], labels["agent_id"], labels["severity"]) == (
                    "FerryAgentDown", "doomed", "critical",
                )  # fmt: skip
                agent = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                                    agent_id="doomed")  # fmt: skip
                wait_for(lambda: sent(sink, "resolved"), timeout=20,
                         what="resolved when it returns")  # fmt: skip
        finally:
            agent.stop()
            collector.stop()


def _agents(addr: str):
    from ferry.v1 import query_pb2, query_pb2_grpc

    with transport.channel(addr) as channel:
        return query_pb2_grpc.QueryStub(channel).ListAgents(query_pb2.ListAgentsRequest(), timeout=10).agents


def test_a_silence_holds_notifications_back_until_it_expires(stack):
    collector, agent, app, sink, _rules = stack
    with transport.channel(collector.addr) as channel:
        alerts_pb2_grpc.AlertsStub(channel).AddSilence(
            alerts_pb2.AddSilenceRequest(matchers='{alertname="HotRoom",room="kitchen"}', duration_ms=8000,
                                         comment="oven test"),
            timeout=10,
        )  # fmt: skip
    silenced_until = time.monotonic() + 8
    with diagnose(collector, agent):
        send_for(app, 4.0, kitchen=80.0, lab=90.0)
        wait_for(lambda: states(collector.addr) == {"kitchen": "firing", "lab": "firing"}, what="both firing")
        (lab,) = wait_for(lambda: sent(sink, "firing"), timeout=10, what="lab notified")
        assert [a["labels"]["room"] for a in lab.body["alerts"]] == ["lab"]  # kitchen held back
        while time.monotonic() < silenced_until - 1.5:  # (well before it ends)
            send_for(app, 0.5, kitchen=80.0, lab=90.0)
        assert [a["labels"]["room"] for r in sent(sink, "firing") for a in r.body["alerts"]] == ["lab"]
        send_for(app, 2.5, kitchen=80.0, lab=90.0)  # the silence has expired: kitchen is new
        rooms = wait_for(
            lambda: [a["labels"]["room"] for r in sent(sink, "firing") for a in r.body["alerts"]][1:],
            what="kitchen notified after the silence",
        )
        assert rooms == ["kitchen"]
