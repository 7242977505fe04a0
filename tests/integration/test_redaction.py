"""PII redaction at the source, end to end: an app (ferry.client) sends a log with an email, a
card number and an `authorization` attribute, two events and a counter with a `user_id` under a
hash rule, through a real agent to a real collector. The store holds none of the secrets, the
hashed user ids are equal (and not the raw value), and the agent counts which rule fired. A
SIGHUP with a new rule applies it to what comes next."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ferry import transport
from ferry.collector.query.client import query_range
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.integration.procs import collector_and_agent, ferry_cli, wait_for

MASK = "***REDACTED***"
KEY = b"integration-test-hash-key-0123456789"
USER = "alice-42"
SECRETS = ("bob@example.com", "4111", "sekrit-token-123", USER)

APP = """
import json, sys
from ferry.client import Telemetry

t = Telemetry(sys.argv[1], service="shop")
t.log(
    "error",
    "payment by bob@example.com with card 4111 1111 1111 1111 failed; order 1234567812345678",
    authorization="Bearer sekrit-token-123",
    order="o-1",
)
t.event("purchase", "shop", "pay", properties={"user_id": sys.argv[2], "sku": "a"})
t.event("refund", "shop", "pay", properties={"user_id": sys.argv[2], "sku": "b"})
t.counter("app.logins", labels={"user_id": sys.argv[2]})
flushed = t.flush(timeout=20)
stats = t.stats()
t.close()
print(json.dumps({"flushed": flushed, "dropped": stats.dropped}))
"""

CONFIG = """
redact_hash_key_file = "{key}"

[[redact]]
keys = ["user_id"]
action = "hash"

[[redact]]
pattern = "email"

[[redact]]
pattern = "credit_card"
"""


@pytest.fixture
def socket_path():
    d = Path(tempfile.mkdtemp(prefix="ferry-redact-"))  # unix socket paths must stay under 108 bytes
    yield d / "agent.sock"
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def hashed(value: str) -> str:
    return hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()[:32]


def stored(addr: str, kind: str) -> list:
    with transport.channel(addr) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        if kind == "events":
            return [s.event for s in stub.SearchEvents(query_pb2.SearchEventsRequest(), timeout=10).events]
        return [s.log for s in stub.SearchLogs(query_pb2.SearchLogsRequest(), timeout=10).logs]


def logins_by_user(addr: str) -> dict[str, float]:
    resp = query_range(addr, "app.logins", agg="sum", window_ms=600_000, by=["user_id"], timeout=10)
    return {s.labels.get("user_id", ""): s.value[-1] for s in resp.series if s.value}


def test_the_store_holds_no_secrets_and_hashed_ids_join(tmp_path, socket_path):
    key_file = tmp_path / "hash.key"
    key_file.write_bytes(KEY + b"\n")
    config = tmp_path / "agent.toml"
    config.write_text(CONFIG.format(key=key_file))
    flags = ("--config", str(config), "--collectors", "", "--batch-max-age", "1s")
    with collector_and_agent(tmp_path, *flags, "--local-socket", str(socket_path)) as (collector, agent):
        run = subprocess.run(
            [sys.executable, "-c", APP, f"unix:{socket_path}", USER],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0 and not run.stderr, run.stderr
        assert json.loads(run.stdout) == {"flushed": True, "dropped": 0}
        addr = collector.addr

        wait_for(
            lambda: len(stored(addr, "events")) == 2 and stored(addr, "logs"), 60, what="2 events, 1 log"
        )
        wait_for(lambda: logins_by_user(addr), 60, what="the app.logins series")
        (entry,) = stored(addr, "logs")
        assert entry.message == f"payment by {MASK} with card {MASK} failed; order 1234567812345678"
        assert dict(entry.attributes) == {"order": "o-1"}  # authorization dropped by the defaults
        events = sorted(stored(addr, "events"), key=lambda e: e.type)
        assert [(e.type, dict(e.properties)) for e in events] == [
            ("purchase", {"user_id": hashed(USER), "sku": "a"}),
            ("refund", {"user_id": hashed(USER), "sku": "b"}),
        ]
        assert logins_by_user(addr) == {hashed(USER): 1.0}

        # what a user of the CLI sees: no secret in any record
        for kind in ("logs", "events"):
            cli = ferry_cli(kind, "--addr", addr, "--format", "json")
            assert cli.returncode == 0, cli.stderr
            assert len(cli.stdout.splitlines()) == (1 if kind == "logs" else 2)
            assert not [s for s in SECRETS if s in cli.stdout], cli.stdout
        assert hashed(USER) in ferry_cli("events", "--addr", addr, "--format", "json").stdout

        counts = {k: v for k, v in agent.scrape().items() if k.startswith("ferry_agent_redactions_total{")}
        assert counts == {
            'ferry_agent_redactions_total{rule="hash:user_id"}': 3.0,  # 2 events, 1 series in 1 frame
            'ferry_agent_redactions_total{rule="pattern:email"}': 1.0,
            'ferry_agent_redactions_total{rule="pattern:credit_card"}': 1.0,  # the Luhn-failing id kept
            'ferry_agent_redactions_total{rule="drop:authorization"}': 1.0,
            'ferry_agent_redactions_total{rule="drop:cookie"}': 0.0,
            'ferry_agent_redactions_total{rule="drop:set-cookie"}': 0.0,
            'ferry_agent_redactions_total{rule="drop:password"}': 0.0,
        }


EVENT_APP = """
import sys
from ferry.client import Telemetry

t = Telemetry(sys.argv[1], service="shop")
t.event(sys.argv[2], properties={"sku": "sku-9", "plan": "pro"})
assert t.flush(timeout=20)
t.close()
"""


def send_event(socket_path: Path, type_: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", EVENT_APP, f"unix:{socket_path}", type_],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and not run.stderr, run.stderr


def test_a_reload_applies_new_rules_to_what_comes_next(tmp_path, socket_path):
    config = tmp_path / "agent.toml"
    config.write_text("redact_defaults = false\n")
    flags = ("--config", str(config), "--collectors", "", "--batch-max-age", "1s")
    with collector_and_agent(tmp_path, *flags, "--local-socket", str(socket_path)) as (collector, agent):
        send_event(socket_path, "before")
        wait_for(lambda: len(stored(collector.addr, "events")) == 1, 60, what="the first event")
        config.write_text('redact_defaults = false\n[[redact]]\nkeys = ["SKU"]\naction = "mask"\n')
        agent.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "redaction rules now mask:SKU" in agent.output(), 30, what="the reload")
        send_event(socket_path, "after")
        wait_for(lambda: len(stored(collector.addr, "events")) == 2, 60, what="the second event")
        props = {e.type: dict(e.properties) for e in stored(collector.addr, "events")}
        assert props == {"before": {"sku": "sku-9", "plan": "pro"}, "after": {"sku": MASK, "plan": "pro"}}
        assert agent.scrape()['ferry_agent_redactions_total{rule="mask:SKU"}'] == 1.0
