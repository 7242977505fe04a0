"""The real agent at a 1 s interval: CPU per cycle and RSS, read from /proc/<pid>/stat and status.

Every other setting is the default: all host collectors, the top 10 processes by CPU and by
memory, a frame every 10 s. CPU is measured between two instants after start-up (imports and the
first cycles excluded), so it is the steady-state cost of a cycle: collect, batch, encode,
compress, spool, send. Points per cycle come from the agent's own counters over the same window.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from bench.procs import collector_process
from ferry.collector.devrun import agent_command, free_port, stop

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and its parts: RssAnon (the heap: ours) and RssFile (mapped code and libraries)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(line.split()[1]) / 1024
    return out


def rss_mb(pid: int) -> float:
    return memory_mb(pid)["VmRSS"]


def points_produced(metrics_addr: str) -> float:
    """ferry_agent_points_total summed over collectors, from the agent's self-metrics."""
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ferry_agent_points_total")
    )


def run(cycles: int = 60, warmup: int = 5, *extra: str) -> dict:
    metrics = f"127.0.0.1:{free_port()}"
    with tempfile.TemporaryDirectory() as tmp, collector_process(Path(tmp)) as addr:
        proc = subprocess.Popen(
            agent_command(addr, metrics, "--interval", "1s", "--log-level", "warning", *extra),
            start_new_session=True,
        )
        try:
            time.sleep(warmup)
            c0, p0, t0 = cpu_seconds(proc.pid), points_produced(metrics), time.monotonic()
            time.sleep(cycles)
            c1, p1, t1 = cpu_seconds(proc.pid), points_produced(metrics), time.monotonic()
            memory = memory_mb(proc.pid)
        finally:
            stop(proc)
    elapsed_cycles = t1 - t0  # one cycle per second
    return {
        "agent_cpu_ms_per_cycle": (c1 - c0) * 1000 / elapsed_cycles,
        "agent_rss_mb": memory["VmRSS"],
        "agent_rss_anon_mb": memory["RssAnon"],
        "agent_rss_file_mb": memory["RssFile"],
        "agent_points_per_cycle": (p1 - p0) / elapsed_cycles,
        "cycles": round(elapsed_cycles),
        "host_processes": len(psutil.pids()),
        "clock_tick_ms": 1000 / TICK,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--cycles", type=int, default=60)
    print(run(p.parse_args().cycles))
