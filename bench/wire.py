"""Bytes on the wire per point for host metrics: the real SystemCollector, encoded and lz4-packed
exactly as the agent does, with `cycles` collection cycles per frame."""

from __future__ import annotations

import time

from ferry.agent.batcher import Batcher
from ferry.agent.collectors.system import SystemCollector
from ferry.v1 import payload_pb2
from ferry.wire.frames import pack_frame


def wire_bytes_per_point(cycles_per_frame: int, frame_count: int = 5, interval_ms: int = 10_000) -> dict:
    collector = SystemCollector()
    frames: list = []
    resource = payload_pb2.Resource(host="bench-host", agent_id="bench-agent", agent_version="bench")

    def sink(payload: bytes, n: int) -> None:
        frames.append(pack_frame("bench-agent", 1, len(frames) + 1, payload, n))

    batcher = Batcher(resource, sink, max_points=10**9, max_age_s=1e9)
    t = int(time.time() * 1000)
    collector.collect(t - interval_ms, lambda s, v: None)  # prime rates, as a running agent would be
    points = 0
    for _ in range(frame_count):
        for _ in range(cycles_per_frame):
            collector.collect(t, batcher.emitter(t))  # as Agent.collect_once does
            t += interval_ms
        points += len(batcher.acc)
        batcher.cut()
    sizes = [f.ByteSize() for f in frames]
    raw = sum(f.raw_size for f in frames)
    return {
        "cycles_per_frame": cycles_per_frame,
        "points": points,
        "frame_bytes": sum(sizes),
        "bytes_per_point": sum(sizes) / points,
        "raw_bytes_per_point": raw / points,
    }


if __name__ == "__main__":
    for cycles in (1, 6):
        print(wire_bytes_per_point(cycles))
