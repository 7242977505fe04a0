"""Bytes per point and CPU per encoding step, for real host collection at the real pace.

`record` runs the real host collectors (SystemCollector: host and top-process metrics, the
agent's defaults) one cycle every `interval_s` seconds of real time, so what moves between two
cycles (values, top processes) is what moves on a host at that pace: collecting back to back
makes every encoding look better than it is, the stateful ones most. The cycles go through the
agent's own path (Batcher → spooled self-contained frames, `cycles_per_frame` each), and then
through each encoding step in turn, every one reading the same frames:

  lz4          the self-contained frame, as spooled and as sent before the stream encoding
  dictionary   + the stream encoding: series defined once per stream; values as XOR bits
               against their series' last; zstd (no zstd dictionary)
  decimal      + values as decimal differences where one tells them exactly
  carry        + the previous payload as the zstd dictionary: the default

For each: bytes per point of the stream's frames after its first (the first, which defines
every series, apart), the gRPC message prefix included (`Frame.ByteSize() + 5`; bench/wirerun.py
counts every byte of the TCP connection, with a real agent and collector); the agent's CPU per
frame to encode it (the spooled frame → what is sent); and the collector's CPU per frame from
the frame to its insert blocks (FramePipeline: checks, decode, validation, rows; the store
insert apart), medians of `passes` passes. Every stream-encoded frame is checked to decode to
the frame it came from.

Run: `.venv/bin/python -m bench.wire [--cycles 24] [--interval 10] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

from ferry.agent.batcher import Batcher
from ferry.agent.collectors.system import SystemCollector
from ferry.collector.commit import GroupCommitter, Stream
from ferry.collector.marks import Marks
from ferry.collector.pipeline import FramePipeline
from ferry.series import SeriesDef
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.codec import decode_metrics, decode_payload
from ferry.wire.frames import FrameLimits, open_frame, pack_frame
from ferry.wire.stream import Bounds
from ferry.wire.streamenc import StreamEncoder

GRPC_PREFIX = 5  # a gRPC message's length prefix
AGENT_ID = "bench-agent"
STEPS: dict[str, Callable[[], StreamEncoder] | None] = {
    "lz4": None,
    "dictionary": lambda: StreamEncoder(Bounds(), decimal=False, carry=False),
    "decimal": lambda: StreamEncoder(Bounds(), carry=False),
    "carry": lambda: StreamEncoder(Bounds()),
}
Cycle = tuple[int, list[tuple[SeriesDef, float]]]


def record(cycles: int, interval_s: float, log: Callable[[str], None] = lambda s: None) -> list[Cycle]:
    """`cycles` cycles of the host collectors, `interval_s` of real time apart, each stamped
    with its instant (ms)."""
    collector = SystemCollector()
    out: list[Cycle] = []
    try:
        collector.collect(int(time.time() * 1000), lambda s, v: None)  # prime rates, as a running agent
        for i in range(cycles):
            time.sleep(interval_s)
            t = int(time.time() * 1000)
            points: list[tuple[SeriesDef, float]] = []
            collector.collect(t, lambda s, v, points=points: points.append((s, v)))
            out.append((t, points))
            log(f"cycle {i + 1}/{cycles}: {len(points)} points")
    finally:
        collector.close()
    return out


def spooled(recording: list[Cycle], cycles_per_frame: int) -> list[ingest_pb2.Frame]:
    """The frames the agent spools for `recording`, `cycles_per_frame` cycles each."""
    frames: list[ingest_pb2.Frame] = []
    resource = payload_pb2.Resource(host="bench-host", agent_id=AGENT_ID, agent_version="bench")

    def sink(payload: bytes, n: int) -> None:
        frames.append(pack_frame(AGENT_ID, 1, len(frames) + 1, payload, n))

    batcher = Batcher(resource, sink, max_points=10**9, max_age_s=1e9)
    for i, (t, points) in enumerate(recording, 1):
        emit = batcher.emitter(t)
        for series, value in points:
            emit(series, value)
        if i % cycles_per_frame == 0:
            batcher.cut()
    return frames


def pipeline() -> FramePipeline:
    """A collector's frame pipeline with a committer that never writes (the insert is not ours)."""
    return FramePipeline(GroupCommitter(lambda group: None, Marks(), inline=True))


def encode(frames: list[ingest_pb2.Frame], make: Callable[[], StreamEncoder] | None):
    """The frames as a stream sends them, and the agent's CPU seconds for each."""
    if make is None:
        return frames, [0.0] * len(frames)
    encoder, out, cpu = make(), [], []
    for f in frames:
        t0 = time.process_time()
        sent = encoder.encode(f)
        cpu.append(time.process_time() - t0)
        assert sent is not None, "a host's frame always fits a stream's dictionary"
        out.append(sent)
    return out, cpu


def collector_cpu(sent: list[ingest_pb2.Frame], original: list[ingest_pb2.Frame]) -> list[float]:
    """The collector's CPU seconds per frame, frame → insert blocks, in stream order; checks
    that each decodes to the points of the frame it came from."""
    pipe, stream = pipeline(), Stream()
    stream.decoder = pipe.stream_decoder()
    cpu = []
    for f, orig in zip(sent, original, strict=True):
        t0 = time.process_time()
        prepared = pipe._prepare(f, "", None, None, stream)
        cpu.append(time.process_time() - t0)
        assert not isinstance(prepared, ingest_pb2.Ack), prepared.message
        assert prepared.points == orig.point_count
    if sent[0].encoding == ingest_pb2.STREAM_ZSTD:
        check = pipe.stream_decoder()
        for f, orig in zip(sent, original, strict=True):
            got = check.decode(f).batch
            want = decode_metrics(decode_payload(open_frame(orig, FrameLimits())).metrics)
            assert [got.series[i] for i in got.series_ref] == [want.series[i] for i in want.series_ref]
            assert np.array_equal(got.value.view(np.uint64), want.value.view(np.uint64))
    return cpu


def steps(recording: list[Cycle], cycles_per_frame: int = 1, passes: int = 5) -> dict[str, dict]:
    frames = spooled(recording, cycles_per_frame)
    points = sum(f.point_count for f in frames[1:])
    out = {}
    for name, make in STEPS.items():
        agent_runs, collector_runs, sent = [], [], []
        for _ in range(passes):
            sent, agent = encode(frames, make)
            agent_runs.append(statistics.median(agent[1:]))
            collector_runs.append(statistics.median(collector_cpu(sent, frames)[1:]))
        out[name] = {
            "bytes_per_point": sum(f.ByteSize() + GRPC_PREFIX for f in sent[1:]) / points,
            "first_frame_bytes": sent[0].ByteSize() + GRPC_PREFIX,
            "first_frame_points": sent[0].point_count,
            "agent_encode_ms_per_frame": statistics.median(agent_runs) * 1000,
            "collector_ms_per_frame": statistics.median(collector_runs) * 1000,
        }
    base = out["lz4"]
    for step in out.values():
        step["vs_lz4_bytes"] = step["bytes_per_point"] / base["bytes_per_point"]
        step["vs_lz4_collector_cpu"] = step["collector_ms_per_frame"] / base["collector_ms_per_frame"]
    return out


def run(quick: bool = False, log: Callable[[str], None] = lambda s: None) -> dict:
    """The steps at the agent's pace (10 s) and at 1 s, one cycle a frame and two (the default
    agent cuts a frame every 10 s of age, checked after each cycle: two 10 s cycles a frame)."""
    slow = record(6 if quick else 24, 10.0, log)
    fast = record(12 if quick else 30, 1.0, log)
    out = {
        "interval_10s": steps(slow, 1),
        "interval_10s_2_cycles": steps(slow, 2),
        "interval_1s": steps(fast, 1),
        "interval_1s_10_cycles": steps(fast, 10),
        "points_per_cycle": statistics.median(len(p) for _, p in slow),
    }
    ten = out["interval_10s"]
    out["wire_collector_cpu_per_frame_ratio"] = ten["carry"]["vs_lz4_collector_cpu"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = run(args.quick, log=lambda s: print(s, flush=True) if not args.json else None)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for pace, table in out.items():
        if not isinstance(table, dict):
            continue
        print(f"\n{pace}")
        for name, step in table.items():
            print(
                f"  {name:11} {step['bytes_per_point']:6.2f} B/pt ({step['vs_lz4_bytes']:.2f}x)  "
                f"first frame {step['first_frame_bytes']:6d} B  "
                f"agent {step['agent_encode_ms_per_frame']:.3f} ms"
                f"  collector {step['collector_ms_per_frame']:.3f} ms ({step['vs_lz4_collector_cpu']:.2f}x)"
            )


if __name__ == "__main__":
    main()
