"""`make run` as a newcomer uses it: data within seconds, the printed query works, Ctrl-C stops both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import psutil

from ferry import transport
from ferry.v1 import alerts_pb2, alerts_pb2_grpc
from tests.conftest import free_port
from tests.integration.procs import ferry_cli, wait_for


def test_devrun_shows_data_and_stops_on_ctrl_c(tmp_path):
    addr, otlp = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = (tmp_path / "devrun.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferry.collector.devrun",
            "--dir",
            str(tmp_path / ".ferry"),
            "--collector",
            addr,
            "--interval",
            "1s",
            "--collector-metrics",
            f"127.0.0.1:{free_port()}",
            "--agent-metrics",
            f"127.0.0.1:{free_port()}",
            "--agent-local",
            f"127.0.0.1:{free_port()}",
            "--agent-otlp",  # make run's default is 4317: never bound by a test (xdist workers, make run)
            otlp,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        wait_for(
            lambda: "Ferry is running" in (tmp_path / "devrun.log").read_text(), timeout=60, what="the banner"
        )
        text = (tmp_path / "devrun.log").read_text()
        assert "ferry query system.memory.usage --since 1m --format json" in text
        assert f"OTEL_EXPORTER_OTLP_ENDPOINT=http://{otlp}" in text
        # the secure path: the CLI's CA, certificate and token come from the printed variables
        export = next(line.strip() for line in text.splitlines() if line.strip().startswith("export "))
        env = dict(item.split("=", 1) for item in export.removeprefix("export ").split())
        assert set(env) == {"FERRY_TLS_CA", "FERRY_TLS_CERT", "FERRY_TLS_KEY", "FERRY_TOKEN_FILE"}
        plain = ferry_cli("query", "system.memory.usage", "--since", "1m", "--addr", addr)
        assert plain.returncode == 1 and "UNAVAILABLE" in plain.stderr  # a TLS port: no plaintext
        no_token = ferry_cli(
            "query", "system.memory.usage", "--addr", addr,
            env={k: v for k, v in env.items() if k != "FERRY_TOKEN_FILE"},
        )  # fmt: skip
        assert no_token.returncode == 1 and "UNAUTHENTICATED" in no_token.stderr, no_token.stderr
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2

        def query():
            out = ferry_cli(
                "query", "system.memory.usage", "--since", "1m", "--format", "json", "--addr", addr, env=env
            )
            return [orjson.loads(line) for line in out.stdout.splitlines()] if out.returncode == 0 else []

        started = time.monotonic()
        docs = wait_for(query, timeout=30, what="points from make run")
        assert time.monotonic() - started < 30
        assert all(d["points"] for d in docs)
        sock = tmp_path / ".ferry" / "agent.sock"
        assert f"send app.hello 1 --label from=me --agent unix:{sock}" in text
        sent = ferry_cli("send", "app.hello", "1", "--label", "from=me", "--agent", f"unix:{sock}")
        assert sent.returncode == 0, sent.stderr
        wait_for(
            lambda: (
                '"from":"me"'
                in ferry_cli(
                    "query", "app.hello", "--since", "1m", "--format", "json", "--addr", addr, env=env
                ).stdout
            ),
            what="the record sent through the agent's socket",
        )
        # the alert rules make run wrote are evaluated (their health: ok, or nodata for none)
        assert "ferry alerts" in text
        assert ferry_cli("alerts", "--addr", addr, env=env).returncode == 0
        tls = transport.ClientTLS.from_files(env["FERRY_TLS_CA"], env["FERRY_TLS_CERT"], env["FERRY_TLS_KEY"])
        endpoint = transport.Endpoint(addr, tls=tls, token=transport.read_token(env["FERRY_TOKEN_FILE"]))

        def rules():
            with transport.channel(endpoint) as channel:
                resp = alerts_pb2_grpc.AlertsStub(channel).ListAlerts(
                    alerts_pb2.ListAlertsRequest(), timeout=10
                )
            return {r.name: r.health for r in resp.rules if r.last_eval_ms > 0}

        evaluated = wait_for(
            lambda: {"HighCPU", "LowMemory"} <= set(rules()) and rules(), what="rules evaluated"
        )
        assert evaluated["HighCPU"] in ("ok", "nodata") and evaluated["LowMemory"] in ("ok", "nodata")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
        assert "stopping agent and collector" in (tmp_path / "devrun.log").read_text()
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children():
                child.kill()
            proc.kill()
