"""The real agent at a 1 s interval: CPU per cycle and RSS, read from /proc/<pid>/stat and status.

CPU is measured between two instants after start-up (imports and the first cycles excluded), so
it is the steady-state cost of a cycle: collect, batch, encode, compress, send.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from bench.procs import collector_process
from collector.devrun import agent_command, free_port, stop

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def run(cycles: int = 60, warmup: int = 5) -> dict:
    with tempfile.TemporaryDirectory() as tmp, collector_process(Path(tmp)) as addr:
        proc = subprocess.Popen(
            agent_command(
                addr,
                f"127.0.0.1:{free_port()}",
                "--interval",
                "1s",
                "--batch-max-age",
                "1s",
                "--log-level",
                "warning",
            ),
            start_new_session=True,
        )
        try:
            time.sleep(warmup)
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(cycles)
            c1, t1 = cpu_seconds(proc.pid), time.monotonic()
            rss = rss_mb(proc.pid)
        finally:
            stop(proc)
    elapsed_cycles = t1 - t0  # one cycle per second
    return {
        "agent_cpu_ms_per_cycle": (c1 - c0) * 1000 / elapsed_cycles,
        "agent_rss_mb": rss,
        "cycles": round(elapsed_cycles),
        "host_processes": len(psutil.pids()),
        "clock_tick_ms": 1000 / TICK,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--cycles", type=int, default=60)
    print(run(p.parse_args().cycles))
