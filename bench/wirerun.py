"""Bytes on the real wire per point: the real agent shipping to a real collector through a
counting proxy, then the same points sent to a real Prometheus by remote write 1.0.

`measure_agent` starts a collector (embedded chDB store in a temp dir), a `CountingProxy` in
front of its gRPC port and the agent (`ferry.agent.main`, default settings but for the proxy as
its collector, its own spool, `--interval`, free ports for its metrics listener, its Local
service off, as bench/agent.py runs it; `agent_config_lines` go into a TOML file passed with
--config), for `duration_s` of real time. Every TCP payload byte both ways is counted: HTTP/2
preface, SETTINGS, HEADERS, DATA, PING, WINDOW_UPDATE, GOAWAY. An `Http2Tap` on the proxy
reads the Frames going up and the Acks coming back; at each Ack the proxy's counters and the
agent's and collector's CPU seconds (/proc/<pid>/stat) are taken, so the steady window runs from
the ack of frame `warmup_frames` to the last ack before the deadline, whole frames at each end:
its bytes, the points the collector stored from those frames (seq in the window, read from the
store after the collector stopped), the agent's CPU per cycle and the collector's per frame.

Then the Prometheus comparison: every sample stored (series name and labels, host included;
ms timestamp; value) grouped into one request per collection cycle (a new request once a
sample is `batch_deadline_s` past the first of the current one: Prometheus's batch_send_deadline
of 5 s, a scrape every `interval`), one TimeSeries per sample (as Prometheus 2.x's queue manager
builds them), metric names through `prom_name`, labels as stored; each WriteRequest snappy-
compressed and POSTed over one keep-alive HTTP/1.1 connection through a second CountingProxy to
a real Prometheus with the remote-write receiver (bench/prometheus.py), every byte counted.

Run: `.venv/bin/python -m bench.wirerun --duration 120 --interval 10s` (prints JSON);
`--config-line 'stream_encoding = false'` (repeatable) adds agent config lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench import prometheus as prom
from bench.agent import cpu_seconds, points_produced
from bench.wireproxy import C2S, CountingProxy, Counts, Http2Tap
from ferry.collector.devrun import agent_command, collector_command, free_port, stop, wait_healthy
from ferry.runtime.config import parse_duration
from ferry.v1 import ingest_pb2

IDLE_S = 5.0  # seconds of the collector's idle CPU baseline, after the agent stopped
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Mark:
    """The instant an Ack came back through the proxy (after it was forwarded)."""

    t: float
    seq: int
    status: int
    wire: Counts
    agent_cpu: float
    collector_cpu: float
    h2: dict[str, int]  # bytes by "direction TYPE" (Http2Tap.totals)
    h2_frames: dict[str, int]  # frames by "direction TYPE"


@dataclass
class IngestWatch:
    """The Http2Tap's message callback: Frames up (recognised by decoding: an agent id and a
    seq), the Acks of their streams down, each Ack a Mark."""

    collector_pid: int
    agent_pid: int = 0
    proxy: CountingProxy | None = None
    tap: Http2Tap | None = None
    frames: dict[int, ingest_pb2.Frame] = field(default_factory=dict)  # by seq, first sent
    resent: int = 0
    marks: list[Mark] = field(default_factory=list)
    streams: set[tuple[int, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, conn: int, direction: str, stream: int, message: bytes) -> None:
        if direction == C2S:
            try:
                frame = ingest_pb2.Frame.FromString(message)
            except Exception:  # some other service's message
                return
            if frame.agent_id and frame.seq:
                self.streams.add((conn, stream))
                if frame.seq in self.frames:
                    self.resent += 1
                self.frames.setdefault(frame.seq, frame)
        elif (conn, stream) in self.streams:
            ack = ingest_pb2.Ack.FromString(message)
            assert self.proxy is not None and self.tap is not None
            mark = Mark(
                time.monotonic(),
                ack.seq,
                ack.status,
                self.proxy.snapshot(),
                _cpu(self.agent_pid),
                _cpu(self.collector_pid),
                self.tap.totals(),
                self.tap.frame_counts(),
            )
            with self.lock:
                self.marks.append(mark)


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid) if pid else float("nan")
    except OSError:
        return float("nan")


@contextlib.contextmanager
def collector(workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A collector on a free loopback port (bench/procs.collector_process, with its process)."""
    addr = f"127.0.0.1:{free_port()}"
    with (workdir / "collector.log").open("wb") as log:
        proc = subprocess.Popen(
            collector_command(addr, workdir / "store", "", "--log-level", "warning"),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthy(addr, proc=proc)
            yield addr, proc
        finally:
            stop(proc)


def measure_agent(
    duration_s: float = 120,
    interval: str = "10s",
    agent_config_lines: Sequence[str] = (),
    warmup_frames: int = 1,
    prometheus: bool = True,
    batch_deadline_s: float = 5.0,
) -> dict:
    """Run the agent for `duration_s` through a counting proxy; the figures as a dict (see the
    module's docstring). `prometheus`: also the remote-write comparison."""
    interval_s = parse_duration(interval, "interval")
    with tempfile.TemporaryDirectory(prefix="wirerun-") as tmp_name:
        tmp = Path(tmp_name)
        with collector(tmp) as (addr, cproc):
            watch = IngestWatch(cproc.pid)
            tap = Http2Tap(watch)
            host, port = addr.rsplit(":", 1)
            with CountingProxy(0, host, int(port), tap=tap) as proxy:
                watch.proxy, watch.tap = proxy, tap
                config = tmp / "agent.toml"
                config.write_text("".join(f"{line}\n" for line in agent_config_lines))
                metrics = f"127.0.0.1:{free_port()}"
                args = ("--config", str(config), "--interval", interval, "--spool", str(tmp / "spool"))
                with (tmp / "agent.log").open("wb") as log:
                    agent = subprocess.Popen(
                        agent_command(proxy.address, metrics, *args, "--log-level", "warning"),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    watch.agent_pid = agent.pid
                    deadline = time.monotonic() + duration_s
                    try:
                        while time.monotonic() < deadline:
                            if agent.poll() is not None:
                                tail = (tmp / "agent.log").read_text(errors="replace")[-1500:]
                                raise RuntimeError(f"agent exited {agent.returncode}: {tail}")
                            time.sleep(0.25)
                        with watch.lock:
                            marks = [m for m in watch.marks if m.t <= deadline]
                        produced = points_produced(metrics)
                    finally:
                        stop(agent)
                time.sleep(0.2)  # the last bytes of the closing connection
                whole, h2_whole = proxy.snapshot(), tap.totals()
            # what the collector spends with no agent (chDB's background threads): a baseline
            c0, t0 = _cpu(cproc.pid), time.monotonic()
            time.sleep(IDLE_S)
            idle = (_cpu(cproc.pid) - c0) / (time.monotonic() - t0)
        stored = read_store(tmp / "store")
        out = {
            "duration_s": duration_s,
            "interval_s": interval_s,
            "agent_config_lines": list(agent_config_lines),
            "agent_exit": agent.returncode,
            **wire_figures(watch, marks, whole, h2_whole, stored, warmup_frames, interval_s),
            "agent_points_produced": produced,
            "collector_idle_cpu_s_per_second": idle,
        }
        out["collector_cpu_s_per_frame_above_idle"] = (
            out["collector_cpu_s_per_frame"] - idle * out["steady_seconds"] / out["steady_frames"]
        )
        if prometheus:
            try:
                out.update(prometheus_figures(stored, tmp, batch_deadline_s))
            except prom.Unavailable as exc:
                out["prometheus_skipped"] = str(exc)
        if out["bytes_per_point_steady"] and out.get("prometheus_bytes_per_sample"):
            out["wire_vs_prometheus"] = out["bytes_per_point_steady"] / out["prometheus_bytes_per_sample"]
        return out


def wire_figures(
    watch: IngestWatch,
    marks: list[Mark],
    whole: Counts,
    h2_whole: dict[str, int],
    stored: dict,
    warmup_frames: int,
    interval_s: float,
) -> dict:
    """The whole run's and the steady window's bytes, points and CPU."""
    seqs = np.asarray(stored["seq"], dtype=np.int64)
    points_total = len(seqs) + len(stored["histogram_seq"])
    if len(marks) <= warmup_frames:
        raise RuntimeError(f"only {len(marks)} acks before the deadline: no steady window")
    a, b = marks[warmup_frames - 1], marks[-1]
    window = b.wire - a.wire
    hist = np.asarray(stored["histogram_seq"], dtype=np.int64)
    steady_points = int(((seqs > a.seq) & (seqs <= b.seq)).sum() + ((hist > a.seq) & (hist <= b.seq)).sum())
    frames = [watch.frames[s] for s in range(a.seq + 1, b.seq + 1) if s in watch.frames]
    n_frames = b.seq - a.seq
    cycles = (b.t - a.t) / interval_s

    def per_point(n: float) -> float | None:
        return n / steady_points if steady_points else None

    return {
        "bytes_total": whole.total,
        "bytes_total_c2s": whole.client_to_server,
        "bytes_total_s2c": whole.server_to_client,
        "points_total": points_total,
        "bytes_per_point_total": whole.total / points_total if points_total else None,
        "steady_acks": [a.seq, b.seq],
        "steady_seconds": b.t - a.t,
        "steady_frames": n_frames,
        "steady_cycles": cycles,
        "steady_bytes": window.total,
        "steady_bytes_c2s": window.client_to_server,
        "steady_bytes_s2c": window.server_to_client,
        "steady_points": steady_points,
        "steady_points_on_wire": sum(f.point_count for f in frames),
        "bytes_per_point_steady": per_point(window.total),
        # the Frame messages with gRPC's 5-byte prefix, and their payloads alone
        "frame_message_bytes_per_point": per_point(sum(f.ByteSize() + 5 for f in frames)),
        "payload_bytes_per_point": per_point(sum(len(f.payload) for f in frames)),
        "points_per_frame": steady_points / n_frames,
        "bytes_per_frame_by_h2_type": _per_frame(a.h2, b.h2, n_frames),
        "h2_frames_per_frame": _per_frame(a.h2_frames, b.h2_frames, n_frames),
        "bytes_total_by_h2_type": dict(sorted(h2_whole.items())),
        "agent_cpu_s_per_cycle": (b.agent_cpu - a.agent_cpu) / cycles,
        "collector_cpu_s_per_frame": (b.collector_cpu - a.collector_cpu) / n_frames,
        "frames_acked_ok": sum(m.status == ingest_pb2.OK for m in marks),
        "ack_statuses": dict(Counter(ingest_pb2.AckStatus.Name(m.status) for m in marks)),
        "frames_resent": watch.resent,
        "frame_encodings": dict(Counter(_encoding(f.encoding) for f in watch.frames.values())),
        "connections": watch.proxy.connections if watch.proxy else None,
    }


def _encoding(value: int) -> str:
    return ingest_pb2.Encoding.Name(value) if value in ingest_pb2.Encoding.values() else str(value)


def _per_frame(first: dict[str, int], last: dict[str, int], n_frames: int) -> dict[str, float]:
    """What a window added to each counter, per Ferry frame."""
    return {k: (v - first.get(k, 0)) / n_frames for k, v in sorted(last.items()) if v - first.get(k, 0)}


# -- the store ---------------------------------------------------------------------------------

READ_SQL = """
SELECT s.name, toUnixTimestamp64Milli(s.ts), s.value, s.seq, r.labels
FROM {db}.samples AS s
INNER JOIN (SELECT series_id, any(labels) AS labels FROM {db}.series GROUP BY series_id) AS r
USING (series_id)
WHERE NOT startsWith(s.name, '#')
ORDER BY s.ts, s.name, s.series_id
"""


def read_store(store_dir: Path) -> dict:
    """Every sample and every histogram's seq in the store, read in a process of its own (one
    embedded chDB store a process; the collector has stopped)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.wirerun", "--read-store", f"chdb://{store_dir}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading the store failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def _dump_store(dsn: str) -> dict:
    from ferry.collector.storage.store import Store

    store = Store.open(dsn)
    rows = store.query(READ_SQL.format(db=store.db))
    hist = store.query(f"SELECT seq FROM {store.db}.histograms WHERE NOT startsWith(name, '#')")
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(5)]
    out = dict(zip(("name", "ts", "value", "seq", "labels"), columns, strict=True))
    out["labels"] = [dict(x) for x in out["labels"]]
    return {**out, "histogram_seq": [r[0] for r in hist]}


# -- Prometheus --------------------------------------------------------------------------------


def requests_by_cycle(ts: Sequence[int], batch_deadline_ms: float) -> list[slice]:
    """Slices of the (time-sorted) samples, one remote-write request each: a request starts at
    a sample and takes every later one less than `batch_deadline_ms` after it."""
    out, start = [], 0
    for i in range(1, len(ts) + 1):
        if i == len(ts) or ts[i] - ts[start] >= batch_deadline_ms:
            out.append(slice(start, i))
            start = i
    return out


def prometheus_figures(stored: dict, workdir: Path, batch_deadline_s: float = 5.0) -> dict:
    """Encode every stored sample as remote-write 1.0 requests and POST them to a real
    Prometheus through a counting proxy (see the module's docstring)."""
    renamed: set[str] = set()

    def label_set(name: str, labels: dict[str, str]) -> list[tuple[str, str]]:
        out = [("__name__", prom.prom_name(name))]
        for k, v in labels.items():
            if not LABEL_NAME.match(k):
                renamed.add(k)
                k = prom.prom_name(k)
            out.append((k, v))
        return out

    ts = np.asarray(stored["ts"], dtype=np.int64)
    values = np.asarray(stored["value"], dtype=np.float64)
    bodies, raw_bytes = [], 0
    groups = requests_by_cycle(stored["ts"], batch_deadline_s * 1000)
    for n, g in enumerate(groups):
        sets = [label_set(nm, lb) for nm, lb in zip(stored["name"][g], stored["labels"][g], strict=True)]
        template = prom.RequestTemplate(sets, 1)
        if n == 0:
            prom.check_encoding(template, sets, ts[g], values[g])
        raw = template.encode(ts[g], values[g])
        raw_bytes += len(raw)
        bodies.append(prom.compress(raw))
    pdir = workdir / "prometheus"
    pdir.mkdir()
    with prom.server(pdir) as server:
        host, port = server.address.rsplit(":", 1)
        before = server.samples_appended()
        with CountingProxy(0, host, int(port)) as proxy:
            statuses = asyncio.run(_post_all(proxy.address, bodies))
            time.sleep(0.2)
            wire = proxy.snapshot()
            connections = proxy.connections
        appended = server.samples_appended() - before
        version = server.version
    samples = len(ts)
    body_bytes = sum(len(b) for b in bodies)
    return {
        "prometheus_version": version,
        "prometheus_requests": len(bodies),
        "prometheus_samples_per_request_max": max((g.stop - g.start for g in groups), default=0),
        "prometheus_statuses": dict(Counter(statuses)),
        "prometheus_samples_sent": samples,
        "prometheus_samples_appended": appended,
        "prometheus_connections": connections,
        "prometheus_bytes": wire.total,
        "prometheus_bytes_c2s": wire.client_to_server,
        "prometheus_bytes_s2c": wire.server_to_client,
        "prometheus_bytes_per_sample": wire.total / samples if samples else None,
        "prometheus_body_bytes": body_bytes,
        "prometheus_body_bytes_per_sample": body_bytes / samples if samples else None,
        "prometheus_uncompressed_body_bytes_per_sample": raw_bytes / samples if samples else None,
        "prometheus_label_names_renamed": sorted(renamed),
    }


async def _post_all(address: str, bodies: list[bytes]) -> list[int]:
    conn = prom.Connection(address)
    statuses = []
    try:
        for body in bodies:
            status, answer = await conn.post(body)
            if status >= 300:
                raise prom.HttpError(f"remote write answered {status}: {answer[:300]!r}")
            statuses.append(status)
    finally:
        await conn.close()
    return statuses


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120, help="seconds of real time the agent runs")
    p.add_argument("--interval", default="10s", help="the agent's --interval")
    p.add_argument("--config-line", action="append", default=[], help="a TOML line for the agent")
    p.add_argument("--warmup-frames", type=int, default=1)
    p.add_argument("--no-prometheus", action="store_true")
    p.add_argument("--read-store", default="", metavar="DSN", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.read_store:
        json.dump(_dump_store(args.read_store), sys.stdout)
        return 0
    result = measure_agent(
        args.duration, args.interval, args.config_line, args.warmup_frames, not args.no_prometheus
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
