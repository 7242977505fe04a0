"""`ferry alerts` and `ferry silence` as a user runs them against a real collector (TLS, an
auth file, --rules) with a real agent and an app sending a gauge: the firing instance listed,
an ack refused to the query role and taken from admin (recorded as its principal), a silence
added, the history of transitions; then a restart of the collector on the same store keeps the
instance firing with its ack and the silence; without --rules the collector says so."""

from __future__ import annotations

import json
import threading
import time

import pytest

from ferry.client import Telemetry
from ferry.collector.alerting.service import NO_RULES
from ferry.collector.auth.tokens import new_token, principal_table
from ferry.collector.devcerts import DevCA
from ferry.transport import ClientTLS
from tests.integration.procs import diagnose, ferry_cli, start_agent, start_collector, wait_for

RULES = """builtin_rules = false

[[alerts]]
name = "HotRoom"
query = "app.temp"
agg = "max"
by = ["room"]
window = "3s"
condition = "> 50"
for = "1s"
severity = "critical"
"""


class Site:
    """A CA and the collector's certificate; tokens for the agent (ingest), a reader (query)
    and ops (admin); the auth file and the rules file."""

    def __init__(self, root):
        self.root = root
        ca = DevCA.create("alerts CA")
        ca.write_ca(root / "ca.pem")
        ca.issue("collector", ["localhost", "127.0.0.1"]).write(root / "collector")
        tokens = {name: new_token() for name in ("agent", "reader", "ops")}
        for name, token in tokens.items():
            (root / f"{name}.token").write_text(token + "\n")
        (root / "auth.toml").write_text(
            principal_table("agent", tokens["agent"], ["ingest"], ["*"], ["*"])
            + "\n" + principal_table("reader", tokens["reader"], ["query"], [])
            + "\n" + principal_table("ops", tokens["ops"], ["admin"], [])
        )  # fmt: skip
        (root / "rules.toml").write_text(RULES)

    def path(self, name: str) -> str:
        return str(self.root / name)

    def collector_flags(self, rules: bool = True) -> list[str]:
        flags = ["--tls-cert", self.path("collector.pem"), "--tls-key", self.path("collector.key")]
        flags += ["--auth", self.path("auth.toml"), "--alert-eval-interval", "500ms"]
        return flags + (["--rules", self.path("rules.toml")] if rules else [])

    def tls(self) -> ClientTLS:
        return ClientTLS.from_files(self.path("ca.pem"))

    def ferry(self, who: str, addr: str, *args: str):
        env = {"FERRY_TLS_CA": self.path("ca.pem"), "FERRY_TOKEN_FILE": self.path(f"{who}.token")}
        return ferry_cli(*args, "--addr", addr, env=env)

    def json(self, who: str, addr: str, *args: str) -> list[dict]:
        out = self.ferry(who, addr, *args, "--format", "json")
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]


class Hot:
    """The app's gauge on a thread of its own: the kitchen at 80, the lab at 20, every 0.2 s
    until stopped (through the restarts: the rule's window is 3 s)."""

    def __init__(self, app: Telemetry):
        self.app, self.stopped = app, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.app.gauge("app.temp", 80.0, {"room": "kitchen"})
            self.app.gauge("app.temp", 20.0, {"room": "lab"})
            self.app.flush()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture
def site(tmp_path):
    return Site(tmp_path)


def test_ack_silence_and_history_survive_a_restart(tmp_path, site):
    collector = start_collector(tmp_path, *site.collector_flags(), tls=site.tls())
    sock = tmp_path / "agent.sock"
    agent_flags = ("--collectors", "", "--batch-max-age", "200ms", "--local-socket", str(sock),
                   "--tls-ca", site.path("ca.pem"), "--token-file", site.path("agent.token"))  # fmt: skip
    agent = start_agent(tmp_path, collector.addr, *agent_flags)
    app = Telemetry(f"unix:{sock}")
    hot = Hot(app)
    try:
        with diagnose(collector, agent):
            addr = collector.addr

            def firing() -> list[dict]:
                return site.json("reader", addr, "alerts", "--state", "firing")

            (kitchen,) = wait_for(firing, timeout=30, what="HotRoom firing for the kitchen")
            assert (kitchen["rule"], kitchen["labels"]["room"], kitchen["severity"], kitchen["acked_by"]) == (
                "HotRoom", "kitchen", "critical", "",
            )  # fmt: skip
            assert kitchen["value"] == 80.0 and kitchen["fired_at_ms"] >= kitchen["active_since_ms"] > 0

            refused = site.ferry("reader", addr, "alerts", "ack", kitchen["id"], "--note", "mine")
            assert refused.returncode == 1
            assert "PERMISSION_DENIED: principal 'reader' may not call /ferry.v1.Alerts/Ack" in refused.stderr
            (acked,) = site.json("ops", addr, "alerts", "ack", kitchen["id"], "--note", "fan on order")
            assert (acked["id"], acked["acked_by"], acked["ack_note"]) == (
                kitchen["id"],
                "ops",
                "fan on order",
            )
            missing = site.ferry("ops", addr, "alerts", "ack", "0000000000000000")
            assert missing.returncode == 1
            assert "NOT_FOUND: no pending or firing alert '0000000000000000'" in missing.stderr

            matchers = '{alertname="HotRoom",room=~"lab|store-\\\\d+"}'
            (silence,) = site.json(
                "ops", addr, "silence", "add", matchers, "--for", "1h", "--comment", "drill"
            )
            assert (silence["matchers"], silence["created_by"], silence["comment"]) == (
                matchers,
                "ops",
                "drill",
            )
            assert silence["ends_ms"] - silence["starts_ms"] == 3_600_000
            bad = site.ferry("ops", addr, "silence", "add", "{room=}", "--for", "1h")
            assert bad.returncode == 2 and "matchers '{room=}'" in bad.stderr

            history = site.json("reader", addr, "alerts", "history", "--since", "10m")
            steps = [(t["previous"], t["state"]) for t in history if t["id"] == kitchen["id"]]
            assert steps[::-1] == [("inactive", "pending"), ("pending", "firing")]

            port = int(addr.rpartition(":")[2])
            collector.stop()
            collector = start_collector(
                tmp_path, *site.collector_flags(), store=tmp_path / "store", port=port, tls=site.tls()
            )
            time.sleep(1.0)  # an evaluation or two after the restart
            (after,) = site.json("reader", addr, "alerts")
            assert (after["id"], after["state"], after["fired_at_ms"]) == (
                kitchen["id"],
                "firing",
                kitchen["fired_at_ms"],
            )
            assert (after["acked_by"], after["ack_note"]) == ("ops", "fan on order")
            assert [s["id"] for s in site.json("reader", addr, "silence", "list")] == [silence["id"]]
            (expired,) = site.json("ops", addr, "silence", "expire", silence["id"])
            assert expired["ends_ms"] <= time.time() * 1000
            assert site.json("reader", addr, "silence", "list") == []
            table = site.ferry("reader", addr, "silence", "list", "--all")
            assert table.returncode == 0 and "ended" in table.stdout

            collector.stop()
            collector = start_collector(
                tmp_path,
                *site.collector_flags(rules=False),
                store=tmp_path / "store",
                port=port,
                tls=site.tls(),
            )
            none = site.ferry("reader", addr, "alerts")
            assert none.returncode == 1 and f"FAILED_PRECONDITION: {NO_RULES}" in none.stderr
    finally:
        hot.stop()
        app.close()
        agent.stop()
        collector.stop()
