"""collectd 5.x at a 1 s interval: the baseline our agent's CPU per cycle is compared against.

The claim under test: a full agent cycle (host + processes) on a host with ~100 processes costs no
more CPU than collectd 5.x with its cpu, load, memory, df, disk, interface, processes and swap plugins.

Method, the same as bench/agent.py so the two figures are comparable: collectd runs in the
foreground (`collectd -f -C conf`) with `Interval 1`, those eight read plugins at their defaults and
one write plugin, so every value is dispatched and goes somewhere, as ours are sent: `network`
(UDP to a local sink, how collectd usually ships) or `csv` (a file per value, which lets the run
check that every plugin produced data, and costs collectd more). After
a warm-up (start-up and the first reads excluded), utime + stime of the whole process (all of its
read and write threads; /proc/<pid>/stat sums them) are read twice, `cycles` seconds apart; the
difference divided by the elapsed seconds is the CPU per cycle. RSS is VmRSS at the end.

Afterwards the csv DataDir is checked for a directory from each read plugin, so a plugin that
silently failed (and so cost nothing) does not flatter the baseline.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from bench.agent import TICK, cpu_seconds, rss_mb
from ferry.collector.devrun import stop

READ_PLUGINS = ["cpu", "load", "memory", "df", "disk", "interface", "processes", "swap"]
SKIPPED = {"collectd_skipped": "collectd not installed (apt-get install collectd-core)"}


def collectd_binary() -> str | None:
    if Path("/usr/sbin/collectd").is_file():
        return "/usr/sbin/collectd"
    return shutil.which("collectd")


def collectd_version(binary: str) -> str:
    """The version line of `collectd -h` ("collectd 5.12.0.git, http://collectd.org/")."""
    out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=10)
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("collectd ") and "collectd.org" in line:
            return line.split(",")[0]
    return lines[0] if lines else "unknown"


def write_config(tmp: Path, writer: str = "csv", udp_port: int = 0) -> Path:
    """`writer` csv: a file per value under tmp/csv (checkable); network: UDP to 127.0.0.1:udp_port
    (collectd's usual way to ship, and cheaper than csv's open/append/close per value)."""
    loads = "\n".join(f"LoadPlugin {name}" for name in [*READ_PLUGINS, writer])
    if writer == "csv":
        write = f'<Plugin csv>\n  DataDir "{tmp / "csv"}"\n  StoreRates false\n</Plugin>'
    else:
        write = f'<Plugin network>\n  Server "127.0.0.1" "{udp_port}"\n</Plugin>'
    conf = tmp / "collectd.conf"
    conf.write_text(
        f"""Interval 1
BaseDir "{tmp}"
PIDFile "{tmp / "collectd.pid"}"
FQDNLookup false

{loads}

{write}
"""
    )
    return conf


class UdpSink:
    """Receives (and counts) what collectd's network plugin sends."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                self.bytes += len(self.sock.recv(65536))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def plugins_written(data: Path) -> list[str]:
    """Read plugins with at least one csv file: DataDir/<host>/<plugin>[-<instance>]/<type>-<date>."""
    written = {d.name.split("-", 1)[0] for d in data.glob("*/*") if d.is_dir() and any(d.iterdir())}
    return [name for name in READ_PLUGINS if name in written]


def run(cycles: int = 60, warmup: int = 5, writer: str = "csv") -> dict:
    binary = collectd_binary()
    if binary is None:
        return dict(SKIPPED)
    sink = UdpSink() if writer == "network" else None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        conf = write_config(tmp, writer, sink.port if sink else 0)
        log_path = tmp / "collectd.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [binary, "-f", "-C", str(conf)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                time.sleep(warmup)
                if proc.poll() is not None:
                    raise RuntimeError(f"collectd exited {proc.returncode}: {log_path.read_text()[-2000:]}")
                c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                time.sleep(cycles)
                c1, t1 = cpu_seconds(proc.pid), time.monotonic()
                rss = rss_mb(proc.pid)
            finally:
                stop(proc, timeout_s=10.0)
            if sink is not None:
                sink.close()
        written = plugins_written(tmp / "csv") if writer == "csv" else []
        log_tail = log_path.read_text(errors="replace").splitlines()[-20:]
    elapsed_cycles = t1 - t0  # one cycle per second
    result = {
        "collectd_cpu_ms_per_cycle": (c1 - c0) * 1000 / elapsed_cycles,
        "collectd_rss_mb": rss,
        "cycles": round(elapsed_cycles),
        "host_processes": len(psutil.pids()),
        "collectd_version": collectd_version(binary),
        "plugins": READ_PLUGINS,
        "writer": writer,
        "clock_tick_ms": 1000 / TICK,
    }
    if writer == "csv":
        result["plugins_written"] = written
        if set(written) != set(READ_PLUGINS):
            result["collectd_log_tail"] = log_tail
    else:
        result["udp_bytes_received"] = sink.bytes
        if not sink.bytes:
            result["collectd_log_tail"] = log_tail
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--cycles", type=int, default=60)
    p.add_argument("--writer", choices=("csv", "network"), default="csv")
    args = p.parse_args()
    print(json.dumps(run(args.cycles, writer=args.writer), indent=2))
