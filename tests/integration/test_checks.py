"""Health checks run by a real agent against a real HTTP server, TCP ports and commands."""

from __future__ import annotations

import subprocess
import sys

from ferry.collector.query.client import query_range
from tests.conftest import free_port
from tests.integration.procs import start_agent, start_collector, wait_for


def latest(addr: str, metric: str) -> dict[str, float]:
    resp = query_range(addr, metric, agg="last", window_ms=300_000, by=["check"], timeout=10)
    return {s.labels["check"]: s.value[-1] for s in resp.series}


def test_checks_report_up_and_down(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "health").write_text("status: healthy\n")
    http_port = free_port()
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(http_port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path / "www"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    collector = start_collector(tmp_path)
    closed = free_port()
    base = f"http://127.0.0.1:{http_port}"
    config = tmp_path / "agent.toml"
    config.write_text(f"""
[[checks]]
name = "web-ok"
type = "http"
url = "{base}/health"
body_match = "heal+thy"
interval = "1s"
retries = 5

[[checks]]
name = "web-body"
type = "http"
url = "{base}/health"
body_match = "sick"
interval = "1s"

[[checks]]
name = "web-404"
type = "http"
url = "{base}/missing"
interval = "1s"

[[checks]]
name = "tcp-ok"
type = "tcp"
address = "{collector.addr}"
interval = "1s"

[[checks]]
name = "tcp-closed"
type = "tcp"
address = "127.0.0.1:{closed}"
interval = "1s"
timeout = "1s"

[[checks]]
name = "cmd-ok"
type = "command"
command = "true"
interval = "1s"

[[checks]]
name = "cmd-fails"
type = "command"
command = "exit 3"
interval = "1s"

[[checks]]
name = "cmd-slow"
type = "command"
command = "sleep 5"
interval = "1s"
timeout = "200ms"
""")
    agent = start_agent(
        tmp_path, collector.addr, "--config", str(config), "--interval", "1s", "--batch-max-age", "1s"
    )
    try:

        def all_reported():
            got = latest(collector.addr, "check.up")
            return got if len(got) == 8 else None

        up = wait_for(
            all_reported,
            timeout=40,
            what="all 8 checks reported",
        )
        assert up == {
            "web-ok": 1.0,
            "web-body": 0.0,
            "web-404": 0.0,
            "tcp-ok": 1.0,
            "tcp-closed": 0.0,
            "cmd-ok": 1.0,
            "cmd-fails": 0.0,
            "cmd-slow": 0.0,
        }
        durations = latest(collector.addr, "check.duration")
        assert set(durations) == set(up)
        assert all(v >= 0 for v in durations.values())
        assert 150 <= durations["cmd-slow"] < 2000  # cut at its 200 ms timeout
        assert "check cmd-fails (command exit 3) failed: exit status 3" in agent.output()
    finally:
        agent.stop()
        collector.stop()
        web.kill()
        web.wait()
