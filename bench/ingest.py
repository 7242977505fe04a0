"""Collector ingest rate: pre-built frames streamed to a real collector process (embedded store),
timed from the first write to the last ack, then checked against the store's count.

This isolates the collector (decode, validate, dedup, insert); the agent side is not involved.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.procs import collector_process
from ferry import transport
from ferry.collector.query.client import total
from ferry.transport import Endpoint
from ferry.v1 import ingest_pb2, ingest_pb2_grpc, payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import DELTA, MetricBatch, SeriesDef
from ferry.wire.frames import pack_frame


def make_frames(agent: str, frames: int, points: int, series: int = 1000) -> list[ingest_pb2.Frame]:
    defs = [SeriesDef("bench.points", DELTA, "1", (("shard", str(i)),)) for i in range(series)]
    t0 = int(time.time() * 1000) - frames * 1000
    out = []
    res = payload_pb2.Resource(host=f"host-{agent}", agent_id=agent)
    for seq in range(1, frames + 1):
        refs = np.arange(points, dtype=np.uint32) % series
        times = t0 + seq * 1000 + (np.arange(points, dtype=np.int64) // series)
        batch = MetricBatch(defs, refs, times, np.ones(points))
        out.append(pack_frame(agent, 7, seq, encode_payload(res, batch), points))
    return out


def stream(addr: str, frames: list[ingest_pb2.Frame], acks: list) -> None:
    with transport.channel(Endpoint(addr, max_send_bytes=64 << 20)) as ch:
        for ack in ingest_pb2_grpc.IngestStub(ch).Stream(iter(frames), timeout=600):
            acks.append(ack.status)


def stored(addr: str, metric: str = "bench.points") -> float:
    return total(addr, metric, "count", window_ms=86_400_000)


def run(agents: int = 2, frames: int = 40, points: int = 50_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp, collector_process(Path(tmp)) as addr:
        work = [make_frames(f"bench-{i}", frames, points) for i in range(agents)]
        acks: list[list] = [[] for _ in range(agents)]
        threads = [
            threading.Thread(target=stream, args=(addr, w, a)) for w, a in zip(work, acks, strict=True)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        total = agents * frames * points
        ok = sum(1 for a in acks for s in a if s == ingest_pb2.OK)
        count = stored(addr)
    return {
        "agents": agents,
        "frames": agents * frames,
        "points": total,
        "acked_frames": ok,
        "stored_points": count,
        "seconds": elapsed,
        "points_per_s": total / elapsed,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=2)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--points", type=int, default=50_000)
    a = p.parse_args()
    print(run(a.agents, a.frames, a.points))


def run_agents(agents: int = 2, points: int = 2_000_000, frame_points: int = 50_000) -> dict:
    """End to end: `agents` real agents with --synthetic 0:points (spool, fsync per frame, lz4,
    stream) into one collector. Rate = points counted in the store / time from the first stored
    point to the last."""
    import subprocess

    from ferry.collector.devrun import agent_command, free_port, stop

    with tempfile.TemporaryDirectory() as tmp, collector_process(Path(tmp)) as addr:
        procs = [
            subprocess.Popen(
                agent_command(
                    addr,
                    f"127.0.0.1:{free_port()}",
                    "--synthetic",
                    f"0:{points}",
                    "--agent-id",
                    f"bench-{i}",
                    "--spool",
                    f"{tmp}/spool-{i}",
                    "--batch-max-points",
                    str(frame_points),
                    "--log-level",
                    "warning",
                ),
                start_new_session=True,
            )
            for i in range(agents)
        ]
        total = agents * points
        try:
            first = None
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                count = stored(addr, "ferry_synthetic")
                now = time.monotonic()
                if first is None and count > 0:
                    first = (now, count)
                if count >= total:
                    break
                time.sleep(0.05)
        finally:
            for p in procs:
                stop(p)
    elapsed = now - first[0]
    return {
        "agents": agents,
        "points": total,
        "stored_points": count,
        "seconds": elapsed,
        "points_per_s": (count - first[1]) / elapsed,
    }
