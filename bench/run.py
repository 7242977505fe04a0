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

from bench import agent, ingest, wire

RESULTS = Path(__file__).parent / "results" / "latest.json"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    quick = p.parse_args().quick
    runs = 1 if quick else 3
    agent_runs = [ingest.run_agents(agents=2, points=500_000 if quick else 2_000_000) for _ in range(runs)]
    ingest_runs = [ingest.run(agents=2, frames=10 if quick else 40, points=50_000) for _ in range(runs)]
    wire_default = wire.wire_bytes_per_point(cycles_per_frame=1)
    wire_six = wire.wire_bytes_per_point(cycles_per_frame=6)
    agent_run = agent.run(cycles=15 if quick else 60)
    results = {
        "ingest_points_per_s": statistics.median(r["points_per_s"] for r in agent_runs),
        "ingest_runs": agent_runs,
        "collector_points_per_s": statistics.median(r["points_per_s"] for r in ingest_runs),
        "collector_runs": ingest_runs,
        "wire_bytes_per_point": wire_default["bytes_per_point"],
        "wire_bytes_per_point_6_cycles": wire_six["bytes_per_point"],
        **agent_run,
        "machine": {
            "cpus": psutil.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "quick": quick,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for key in (
        "ingest_points_per_s",
        "collector_points_per_s",
        "wire_bytes_per_point",
        "wire_bytes_per_point_6_cycles",
        "agent_cpu_ms_per_cycle",
        "agent_rss_mb",
        "host_processes",
    ):
        print(f"{key:32} {results[key]:>14,.2f}")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
