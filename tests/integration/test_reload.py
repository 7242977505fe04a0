"""SIGHUP: a running agent takes a new configuration, or keeps the old one when the new is bad."""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ferry.collector.query.client import query_range
from tests.integration.procs import start_agent, start_collector, wait_for

APP = Path(__file__).parent.parent / "apps" / "busy_process.py"


def samples(
    addr: str, metric: str, by: str = "host", window_ms: int = 120_000
) -> dict[str, dict[int, float]]:
    """Per value of `by`: {second bucket start ms: points in it}."""
    resp = query_range(addr, metric, agg="count", window_ms=window_ms, step_ms=1000, by=[by], timeout=10)
    return {s.labels.get(by, ""): dict(zip(s.time_ms, s.value, strict=True)) for s in resp.series}


def last(addr: str, metric: str, by: str) -> dict[str, float]:
    resp = query_range(addr, metric, agg="last", window_ms=120_000, by=[by], timeout=10)
    return {s.labels.get(by, ""): s.value[-1] for s in resp.series}


def test_new_interval_checks_and_process_groups_take_effect(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    app = subprocess.Popen(
        [sys.executable, str(APP), "ferry-reload", "2", "1", "token"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert app.stdout.readline().strip() == b"ready"
    collector = start_collector(tmp_path)
    config = tmp_path / "agent.toml"
    config.write_text('interval = "30s"\nbatch_max_age = "1s"\ncollectors = ["system"]\n')
    agent = start_agent(tmp_path, collector.addr, "--config", str(config))
    try:
        config.write_text(
            f"""interval = "1s"
batch_max_age = "1s"
collectors = ["system", "processes"]
process_top_n = 0

[[processes]]
group = "app"
name = "ferry-reload"

[[checks]]
name = "port"
type = "tcp"
address = "127.0.0.1:{port}"
interval = "1s"
"""
        )
        sent = time.time()
        agent.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload: applied" in agent.output(), what="reload applied")
        # at 30 s at most one sample could land in these seconds; at 1 s they all fill up
        wait_for(
            lambda: (
                sum(
                    n
                    for t, n in samples(collector.addr, "system.uptime").get("", {}).items()
                    if t / 1000 > sent
                )
                >= 4
                or len(next(iter(samples(collector.addr, "system.uptime").values()), {})) >= 4
            ),
            timeout=20,
            what="uptime every second",
        )
        wait_for(lambda: last(collector.addr, "check.up", "check").get("port") == 1.0, what="the new check")
        threads = wait_for(lambda: last(collector.addr, "process.threads", "pid"), what="the process group")
        assert threads == {str(app.pid): 2.0}
        assert agent.scrape()['ferry_agent_config_reloads_total{result="ok"}'] == 1
    finally:
        agent.stop()
        collector.stop()
        app.stdin.close()
        app.wait(10)
        listener.close()


def test_a_broken_file_leaves_the_running_configuration(tmp_path):
    collector = start_collector(tmp_path)
    config = tmp_path / "agent.toml"
    config.write_text('interval = "1s"\nbatch_max_age = "1s"\ncollectors = ["system"]\n')
    agent = start_agent(tmp_path, collector.addr, "--config", str(config))
    try:
        config.write_text('batch_max_age = "1s"\ninterval = "fast"\n')
        agent.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in agent.output(), what="the reload error")
        assert f"{config}:2: key 'interval'" in agent.output()
        assert agent.scrape()['ferry_agent_config_reloads_total{result="error"}'] == 1
        before = sum(sum(b.values()) for b in samples(collector.addr, "system.uptime").values())
        # still collecting every second under the old file
        wait_for(
            lambda: (
                sum(sum(b.values()) for b in samples(collector.addr, "system.uptime").values()) >= before + 3
            ),
            timeout=15,
            what="collection to go on",
        )
        assert agent.popen.poll() is None
    finally:
        agent.stop()
        collector.stop()


def test_reload_keeps_buffered_points_under_the_labels_they_were_collected_with(tmp_path):
    collector = start_collector(tmp_path)
    config = tmp_path / "agent.toml"
    body = 'interval = "1s"\nbatch_max_age = "60s"\ncollectors = ["system"]\n[labels]\nenv = "{}"\n'
    config.write_text(body.format("a"))
    agent = start_agent(tmp_path, collector.addr, "--config", str(config))
    try:
        wait_for(
            lambda: agent.scrape().get('ferry_agent_points_total{collector="system"}', 0) > 100,
            what="cycles",
        )
        metrics = agent.scrape()
        assert metrics.get("ferry_agent_frames_queued_total", 0) == 0  # all still in the batcher
        assert metrics["ferry_agent_buffered_points"] > 100
        config.write_text(body.format("b").replace('"60s"', '"1s"'))
        agent.popen.send_signal(signal.SIGHUP)
        by_env = wait_for(
            lambda: (s := samples(collector.addr, "system.uptime", by="env")).get("b") and s,
            timeout=20,
            what="points under the new labels",
        )
        seconds = sorted(by_env["a"]) + sorted(by_env["b"])
        assert seconds == sorted(seconds)  # env=a before env=b, never mixed
        assert all(n == 1 for b in by_env.values() for n in b.values())
        gaps = [b - a for a, b in itertools.pairwise(seconds) if b - a != 1000]
        assert not gaps, f"seconds missing around the reload: {gaps}"
    finally:
        agent.stop()
        collector.stop()
