"""A real agent scrapes a real prometheus_client exporter (tests/apps/prom_app.py) and the
collector stores its counter, gauge and histogram exactly; a target added by a reload that
cannot be reached reports scrape.up 0 while the first goes on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from ferry.collector.query.client import query_range
from tests.apps.prom_app import BOUNDS, OBSERVATIONS
from tests.conftest import free_port
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for

APP = Path(__file__).parent.parent / "apps" / "prom_app.py"

# run in a fresh process: chDB opens one store path per process, and the collector has exited
READ_HISTOGRAMS = """
import json, sys
from ferry.collector.storage.store import Store
store = Store.open(sys.argv[1])
name = {"name": sys.argv[2]}
points = store.query(
    "SELECT series_id, count(), sum(sum), sumForEach(counts), groupUniqArray(bounds)"
    " FROM ferry.histograms WHERE name = {name:String} GROUP BY series_id", name)
series = store.query(
    "SELECT series_id, any(kind), any(labels) FROM ferry.series WHERE name = {name:String}"
    " GROUP BY series_id", name)
print(json.dumps({"points": points, "series": series}))
"""


def last(addr: str, metric: str, by: list[str]) -> dict[tuple, float]:
    resp = query_range(addr, metric, agg="last", window_ms=300_000, by=by, timeout=10)
    return {tuple(s.labels.get(k, "") for k in by): s.value[-1] for s in resp.series}


def counts(addr: str, metric: str, by: str, agg: str = "count") -> dict[str, float]:
    """`agg` over the whole window, per value of `by`."""
    resp = query_range(addr, metric, agg=agg, window_ms=300_000, by=[by], timeout=10)
    return {s.labels.get(by, ""): sum(s.value) for s in resp.series}


def scrape_config(*targets: tuple[str, str]) -> str:
    tables = "".join(f'\n[[scrape]]\njob = "{job}"\nurl = "{url}"\ninterval = "1s"\n' for job, url in targets)
    return f'collectors = ["system"]\nbatch_max_age = "1s"\n{tables}'


def test_scraped_counter_gauge_and_histogram_are_stored_exactly(tmp_path):
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, str(APP), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    collector = agent = None
    try:
        assert app.stdout.readline().strip() == b"ready"
        instance = f"127.0.0.1:{port}"
        app_url = f"http://{instance}/metrics"
        down_url = f"http://127.0.0.1:{free_port()}/metrics"
        config = tmp_path / "agent.toml"
        config.write_text(scrape_config(("app", app_url)))
        collector = start_collector(tmp_path)
        agent = start_agent(tmp_path, collector.addr, "--config", str(config))
        with diagnose(collector, agent):
            addr = collector.addr
            by = ["code", "job", "instance"]
            wanted = {("200", "app", instance): 42.0, ("500", "app", instance): 42.0}
            wait_for(lambda: last(addr, "app_requests_total", by) == wanted, what="the counter stored")
            assert last(addr, "app_temperature", ["job", "instance"]) == {("app", instance): 3.25}
            assert last(addr, "scrape.up", ["job", "instance"]) == {("app", instance): 1.0}
            assert last(addr, "app_requests_created", ["job"]) == {}  # created timestamps are not series

            # a second target, on a closed port, by a reload: it is down, the first goes on
            config.write_text(scrape_config(("app", app_url), ("down", down_url)))
            agent.popen.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload: applied scrape" in agent.output(), what="the reload applied")
            wait_for(
                lambda: last(addr, "scrape.up", ["job"]) == {("app",): 1.0, ("down",): 0.0},
                what="the closed port reported down",
            )
            scrapes = counts(addr, "scrape.up", "job")["app"]
            wait_for(lambda: counts(addr, "scrape.up", "job")["app"] >= scrapes + 2, what="app still scraped")
            assert last(addr, "app_requests_total", by) == wanted
            # the histogram through the query service: every stored point's observations added
            for agg, expected in (("count", len(OBSERVATIONS)), ("sum", sum(OBSERVATIONS)), ("p50", 0.5)):
                assert counts(addr, "app_latency_seconds", "job", agg) == {"app": expected}, agg
            self_metrics = agent.scrape()
            assert self_metrics['ferry_agent_scrape_failures_total{job="down"}'] >= 2
            assert self_metrics['ferry_agent_scrape_samples_total{job="app"}'] > 0
            assert 'ferry_agent_scrape_skipped_total{job="app",reason="value"}' not in self_metrics
            # logged once with its reason, not once per failed scrape
            failed = f"scrape down {down_url} failed: connection refused"
            assert agent.output().count(failed) == 1
        assert agent.stop() == 0  # its last frame delivered
        collector.stop()

        read = subprocess.run(
            [sys.executable, "-c", READ_HISTOGRAMS, f"chdb://{tmp_path / 'store'}", "app_latency_seconds"],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        stored = json.loads(read.stdout)
        [(series_id, kind, labels)] = stored["series"]
        assert kind == "histogram" and labels == {"job": "app", "instance": instance, "host": labels["host"]}
        [(points_series, n_points, total, bucket_counts, [bounds])] = stored["points"]
        assert points_series == series_id and n_points >= 3  # the first scrape's, then growths of 0
        assert tuple(bounds) == BOUNDS
        assert total == sum(OBSERVATIONS) == 17.4375
        assert bucket_counts == [2, 3, 2, 2, 1]  # <=0.125, <=0.5, <=1, <=5, +Inf
    finally:
        for proc in (agent, collector):
            if proc is not None:
                proc.stop()
        app.stdin.close()
        app.wait(timeout=10)
