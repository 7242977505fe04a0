"""`make bench`: run every benchmark, print a table, write bench/results/latest.json.

QUICK=1 (or --quick) shortens each run. Figures are medians of repeated runs where repeated.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import psutil

from bench import (
    agent,
    alerting,
    client,
    collectd,
    fleet,
    fleetquery,
    ingest,
    rawinsert,
    security,
    serieslookup,
    storage,
    wire,
    wirerun,
)

RESULTS = Path(__file__).parent / "results" / "latest.json"
LARGE_FRAME = 200_000  # points per frame for ingest_points_per_s_large_frames (agent default: 20_000)


def agent_figures(cycles: int, runs: int) -> dict:
    """The agent's CPU and memory, alternating with collectd so the machine's mood of the moment
    weighs on both alike; medians over `runs` rounds."""
    cpu_runs, collectd_runs = [], []
    for _ in range(runs):
        cpu_runs.append(agent.run(cycles))
        collectd_runs.append(collectd.run(cycles, writer="network"))
    out = {
        **cpu_runs[0],
        "agent_cpu_ms_per_cycle": statistics.median(r["agent_cpu_ms_per_cycle"] for r in cpu_runs),
        "agent_rss_mb": statistics.median(r["agent_rss_mb"] for r in cpu_runs),
        "agent_cpu_runs": cpu_runs,
        "collectd_runs": collectd_runs,
    }
    # like for like with collectd's plugins, which count processes by state but report no process
    no_top = agent.run(cycles, 5, "--process-top-n", "0")
    out["agent_cpu_ms_per_cycle_no_top_processes"] = no_top["agent_cpu_ms_per_cycle"]
    out["agent_points_per_cycle_no_top_processes"] = no_top["agent_points_per_cycle"]
    if "collectd_skipped" not in collectd_runs[0]:
        collectd_ms = statistics.median(r["collectd_cpu_ms_per_cycle"] for r in collectd_runs)
        out["collectd_cpu_ms_per_cycle"] = collectd_ms
        out["agent_vs_collectd_cpu"] = out["agent_cpu_ms_per_cycle"] / collectd_ms
        out["collectd_csv"] = collectd.run(cycles, writer="csv")
    return out


WIRE_FIGURES = (
    "wire_bytes_per_point",
    "wire_bytes_per_point_with_start",
    "wire_bytes_per_point_before",
    "prometheus_remote_write_bytes_per_sample",
    "wire_vs_prometheus",
    "wire_collector_cpu_per_frame_ratio",
)


def wire_figures(quick: bool) -> dict:
    """Every byte of the TCP connection between the real agent at its defaults and a collector
    (bench/wirerun.py; the stream's steady window, and the whole run from connect), with the stream
    encoding and without it; the same points to Prometheus by remote write in the same run; and
    bytes and CPU per encoding step on recorded real-pace cycles (bench/wire.py)."""
    on = wirerun.measure_agent(duration_s=100 if quick else 300, interval="10s")
    off = wirerun.measure_agent(
        duration_s=100 if quick else 150,
        interval="10s",
        agent_config_lines=["stream_encoding = false"],
        prometheus=False,
    )
    return {
        "wire_bytes_per_point": on["bytes_per_point_steady"],
        "wire_bytes_per_point_with_start": on["bytes_per_point_total"],
        "wire_bytes_per_point_before": off["bytes_per_point_steady"],
        "prometheus_remote_write_bytes_per_sample": on["prometheus_bytes_per_sample"],
        "wire_vs_prometheus": on["wire_vs_prometheus"],
        "wire_run": on,
        "wire_run_before": off,
        **wire.run(quick),  # wire_collector_cpu_per_frame_ratio, the steps at 10 s and 1 s
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    quick = p.parse_args().quick
    runs = 1 if quick else 3
    agent_points = 500_000 if quick else 2_000_000
    agent_runs = [ingest.run_agents(agents=2, points=agent_points) for _ in range(runs)]
    # the same with frames of 200k points: the collector's per-insert cost spread over 4x the points
    large_runs = [
        ingest.run_agents(agents=2, points=agent_points, frame_points=LARGE_FRAME) for _ in range(runs)
    ]
    ingest_runs = [ingest.run(agents=2, frames=10 if quick else 40, points=50_000) for _ in range(runs)]
    # the engine alone, same columns and block size, the same points in all (2 agents' worth)
    raw = rawinsert.run(rows=1_000_000 if quick else 4_000_000, block_rows=50_000, runs=runs)
    wire_run = wire_figures(quick)
    agent_run = agent_figures(15 if quick else 60, runs)
    call_ns = client.overhead_ns(20_000 if quick else 100_000, 3 if quick else 7)
    client_records = 50_000 if quick else 200_000
    client_gauges = [client.throughput(client_records, "gauge") for _ in range(runs)]
    client_logs = [client.throughput(client_records, "log") for _ in range(runs)]
    # one load of the day (bytes are deterministic for a seed); query medians over 3 or 7 runs
    store_run = storage.run_isolated(hosts=20 if quick else 200, runs=3 if quick else 7)
    # N simulated agents (1,000 streams; 200 under QUICK) into one collector, and Prometheus 2.x
    fleet_run = fleet.run(quick)
    # TLS handshakes/s vs plaintext connections; fleet max frames/s with TLS + mTLS + auth vs without
    security_run = security.run(quick)
    # alert rules: one typical rule's evaluation and 1,000 rules' on 100 hosts' hour (20 under
    # QUICK) in process; threshold crossing → webhook through a real collector (1 s evaluations)
    alerting_run = alerting.run(quick)
    # fleet-wide queries over a generated 2,000-host fleet (100 under QUICK) through a collector,
    # and the same questions to Prometheus 2.x on 200 hosts (50) in both, a day of cpu on 50 (5)
    fleetquery_run = fleetquery.run(quick)
    # the QueryRange series lookup on 994k series (99k under QUICK): migration 9's sort key vs before
    lookup_run = serieslookup.run(quick, only=("today", serieslookup.CHOSEN))
    results = {
        "ingest_points_per_s": statistics.median(r["points_per_s"] for r in agent_runs),
        "ingest_runs": agent_runs,
        "ingest_points_per_s_large_frames": statistics.median(r["points_per_s"] for r in large_runs),
        "ingest_large_frame_points": LARGE_FRAME,
        "ingest_large_frames_runs": large_runs,
        "collector_points_per_s": statistics.median(r["points_per_s"] for r in ingest_runs),
        "collector_runs": ingest_runs,
        **raw,  # raw_insert_rows_per_s (production schema, views included), raw_insert_no_views_…
        **wire_run,  # wire_bytes_per_point (every TCP byte, the defaults), wire_vs_prometheus, steps
        **agent_run,
        "client_call_ns": call_ns,
        "client_gauges_per_s": statistics.median(r["agent_accepted_per_s"] for r in client_gauges),
        "client_logs_per_s": statistics.median(r["agent_accepted_per_s"] for r in client_logs),
        "client_runs": client_gauges + client_logs,
        **store_run,  # storage_bytes_per_point, query_ms_*, rollup_query_speedup, storage: details
        **fleet_run,  # fleet_*: frames/s, points/s, ack p50/p99, RSS, stored_ok; fleet_vs_prometheus
        **security_run,  # tls_handshakes_per_s, fleet_frames_per_s_secure, secure_vs_plain, ...
        **alerting_run,  # alert_eval_ms_per_rule, alert_eval_s_1000_rules, alert_notify_latency_ms
        **fleetquery_run,  # fleet_query_ms, fleet_query_1h_rollup_ms, fleet_query_vs_prometheus, ...
        "fleet_series_lookup_ms": lookup_run["series_lookup_ms"],
        "fleet_series_lookup_before_ms": lookup_run.get("series_lookup_today_ms"),
        "serieslookup": lookup_run,
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "quick": quick,
    }
    results["ingest_vs_raw_insert"] = results["ingest_points_per_s"] / results["raw_insert_rows_per_s"]
    # large frames against Prometheus's large remote-write requests (null when it was skipped)
    prom_large = results.get("prometheus_large_samples_per_s")
    results.setdefault("fleet_vs_prometheus", None)
    results["ingest_vs_prometheus"] = (
        results["ingest_points_per_s_large_frames"] / prom_large if prom_large else None
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for key in (
        "ingest_points_per_s",
        "ingest_points_per_s_large_frames",
        "collector_points_per_s",
        "raw_insert_rows_per_s",
        "raw_insert_no_views_rows_per_s",
        "ingest_vs_raw_insert",
        "insert_ms_small",
        "insert_ms_small_no_views",
        "insert_ms_small_tmpfs",
        *WIRE_FIGURES,
        "agent_cpu_ms_per_cycle",
        "agent_cpu_ms_per_cycle_no_top_processes",
        "collectd_cpu_ms_per_cycle",
        "agent_vs_collectd_cpu",
        "agent_points_per_cycle",
        "agent_rss_mb",
        "agent_rss_anon_mb",
        "host_processes",
        "client_gauges_per_s",
        "client_logs_per_s",
        *storage.FIGURES,
        *fleet.FIGURES,
        "ingest_vs_prometheus",
        *security.FIGURES,
        *alerting.FIGURES,
        *fleetquery.FIGURES,
        "fleet_series_lookup_ms",
        "fleet_series_lookup_before_ms",
    ):
        if results.get(key) is not None:
            print(f"{key:40} {results[key]:>14,.2f}")
    print(f"{'fleet_stored_ok':40} {results['fleet_stored_ok']!s:>14}")
    print(f"{'security_stored_ok':40} {results['security_stored_ok']!s:>14}")
    fits = results["alert_eval_fits_default_interval"]
    print(f"{'alert_eval_fits_default_interval':40} {fits!s:>14}")
    for kind, ns in results["client_call_ns"].items():
        print(f"{'client_call_ns.' + kind:40} {ns:>14,.0f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
