"""The stream encoding with real processes: values of every kind stored exactly, agents and
collectors with and without it (this release and the one before it), a failover mid-stream to a
second collector, and forged stream frames refused while the collector serves everyone else."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import zstandard

from ferry import transport
from ferry.series import COUNTER, GAUGE
from ferry.v1 import (
    ingest_pb2,
    ingest_pb2_grpc,
    local_pb2,
    local_pb2_grpc,
    payload_pb2,
    query_pb2,
    query_pb2_grpc,
)
from ferry.wire.streamenc import uvarints
from tests.conftest import free_port
from tests.integration.procs import diagnose, start_agent, start_collector, synthetic_stored, wait_for

REPO = Path(__file__).resolve().parents[2]
# the release before the stream encoding: its agent and collector speak self-contained frames only
OLD_RELEASE = "731580cb524a9e6a42844a400fab00abb4c37c36"
STEPS = 6
T0 = (int(time.time() * 1000) // 60_000 - 2) * 60_000  # a whole minute, two minutes ago


def sent_values(step: int) -> dict[str, float]:
    """What series `v=<name>` holds at step `step` (each series changes in its own way)."""
    counter = 10**12 + 4096 * step * step
    return {
        "counter": float(counter),  # large integers: decimal differences of k = 0
        "cents": round(1000.0 + 0.37 * step, 2),  # cpu seconds' shape: k = 2
        "ratio": round(0.1234 * (step + 1), 4),
        "third": (step + 1) / 3,  # no short decimal: XOR bits
        "pi": math.pi * 10**step,
        "huge": 1.5e300 * (step + 1),
        "tiny": 5e-324 * (step + 1),
        "negative": -2.5 * step - 0.25,
        "zero": -0.0 if step % 2 else 0.0,
        "same": 42.125,
        "big_int": float(2**53 + 2 * step),
    }


def records(step: int) -> local_pb2.Records:
    t = T0 + step * 1000
    metrics = [
        local_pb2.MetricRecord(name="it.values", kind=GAUGE, value=v, labels={"v": k}, time_unix_ms=t)
        for k, v in sent_values(step).items()
    ]
    metrics.append(
        local_pb2.MetricRecord(
            name="it.count", kind=COUNTER, value=float(step * 7), labels={}, time_unix_ms=t
        )
    )
    return local_pb2.Records(metrics=metrics)


def send_steps(local: str, agent) -> None:
    """Each step in a frame of its own: the next is sent once the agent has sent a frame more."""
    with transport.channel(local) as channel:
        stub = local_pb2_grpc.LocalStub(channel)
        for step in range(STEPS):
            before = agent.scrape()["ferry_agent_frames_sent_total"]
            assert stub.Send(records(step), timeout=10).accepted == len(records(step).metrics)
            wait_for(
                lambda b=before: agent.scrape()["ferry_agent_frames_sent_total"] > b, what="a frame sent"
            )


def stored(addr: str, metric: str) -> dict[str, list[tuple[int, float]]]:
    """Every stored point of `metric` by its `v` label: one 1 s bucket per step, agg last."""
    req = query_pb2.QueryRangeRequest(
        metric=metric, start_ms=T0, end_ms=T0 + STEPS * 1000, step_ms=1000, agg="last", resolution="raw"
    )
    with transport.channel(addr) as channel:
        resp = query_pb2_grpc.QueryStub(channel).QueryRange(req, timeout=20)
    return {s.labels.get("v", ""): list(zip(s.time_ms, s.value, strict=True)) for s in resp.series}


def assert_exact(addr: str) -> None:
    got = wait_for(
        lambda: (r := stored(addr, "it.values")) and all(len(p) == STEPS for p in r.values()) and r,
        what="every step stored",
    )
    for name in sent_values(0):
        want = [sent_values(step)[name] for step in range(STEPS)]
        values = [v for _, v in got[name]]
        assert [t for t, _ in got[name]] == [T0 + s * 1000 for s in range(STEPS)]
        # bit for bit: == would let -0.0 pass for 0.0
        assert [math.copysign(1, v) for v in values] == [math.copysign(1, v) for v in want], name
        assert values == want, name
    counts = stored(addr, "it.count")[""]
    assert [v for _, v in counts] == [float(s * 7) for s in range(STEPS)]


def agent_args(local: str, *extra: str) -> tuple[str, ...]:
    return ("--collectors", "", "--batch-max-age", "150ms", "--local-listen", local, *extra)


@pytest.mark.parametrize(
    ("agent_extra", "collector_extra", "encoded"),
    [
        ((), (), True),
        (("--no-stream-encoding",), (), False),  # an agent that does not ask
        ((), ("--no-stream-encoding",), False),  # a collector that does not answer
    ],
    ids=["both", "agent-without", "collector-without"],
)
def test_values_of_every_kind_are_stored_exactly(tmp_path, agent_extra, collector_extra, encoded):
    collector = start_collector(tmp_path, *collector_extra)
    local = f"127.0.0.1:{free_port()}"
    agent = None
    with diagnose(collector):
        try:
            agent = start_agent(tmp_path, collector.addr, *agent_args(local, *agent_extra))
            send_steps(local, agent)
            assert_exact(collector.addr)
            agent_metrics, collector_metrics = agent.scrape(), collector.scrape()
            sent = agent_metrics["ferry_agent_frames_sent_total"]
            stream_sent = agent_metrics["ferry_agent_frames_stream_encoded_total"]
            decoded = collector_metrics["ferry_collector_stream_frames_total"]
            if encoded:
                # every frame, the first too: the agent waits for the collector's answer
                assert stream_sent == sent >= STEPS and decoded == sent
                assert collector_metrics["ferry_collector_streams_encoded"] == 1
            else:
                assert stream_sent == 0 and decoded == 0 and sent >= STEPS
        finally:
            if agent is not None:
                agent.stop()
            collector.stop()


def old_release(tmp: Path) -> dict[str, str]:
    """The environment that runs the release before the stream encoding: its sources from git,
    laid out as the `ferry` namespace the install maps (PYTHONPATH wins over the editable install)."""
    root = tmp / "old"
    root.mkdir()
    try:
        tar = subprocess.run(
            ["git", "-C", str(REPO), "archive", OLD_RELEASE, "proto", "agent", "collector", "client"],
            capture_output=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"the old release {OLD_RELEASE[:7]} is not in this clone's history (shallow?): {exc}")
    subprocess.run(["tar", "-x", "-C", str(root)], input=tar, check=True)
    for name in ("agent", "collector", "client"):
        (root / "proto" / "ferry" / name).symlink_to(root / name)
    return {"PYTHONPATH": str(root / "proto")}


def test_the_release_before_both_ways(tmp_path):
    """An old agent to this collector, and this agent to an old collector: self-contained frames
    both ways, every value exact."""
    env = old_release(tmp_path)
    check = subprocess.run(
        [sys.executable, "-c", "from ferry.v1 import ingest_pb2; print(hasattr(ingest_pb2, 'STREAM_ZSTD'))"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert check.stdout.strip() == "False", check.stderr  # it really is the old code
    for old_side in ("agent", "collector"):
        work = tmp_path / old_side
        work.mkdir()
        with contextlib.ExitStack() as running:  # whatever started is stopped, a failed start too
            collector = start_collector(work, env=env if old_side == "collector" else None)
            running.callback(collector.stop)
            local = f"127.0.0.1:{free_port()}"
            old_agent = old_side == "agent"
            agent = start_agent(
                work,
                collector.addr,
                *agent_args(local),
                env=env if old_agent else None,
                drop=("--otlp-listen",) if old_agent else (),  # 731580c has no OTLP receiver
            )
            running.callback(agent.stop)
            with diagnose(collector, agent):
                send_steps(local, agent)
                assert_exact(collector.addr)
                stream_sent = agent.scrape().get("ferry_agent_frames_stream_encoded_total", 0.0)
                assert stream_sent == 0


def test_failover_mid_stream_to_a_second_collector(tmp_path):
    """The agent's stream to A dies (SIGKILL) with frames in flight; it fails over to B and resends
    them there on a new stream, encoded afresh: B decodes every one, and no point is lost."""
    total, rate = 60_000, 6_000
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    a = start_collector(a_dir)
    b = agent = None
    with diagnose(a):
        try:
            b = start_collector(b_dir)
            agent = start_agent(
                tmp_path, f"{a.addr},{b.addr}", "--synthetic", f"{rate}:{total}", "--batch-max-age", "200ms"
            )
            # A has committed (acked) stream-encoded frames: decoded ones may not be in a group yet
            wait_for(
                lambda: (
                    (m := a.scrape())["ferry_collector_stream_frames_total"] >= 5
                    and m.get('ferry_collector_frames_total{status="OK"}', 0) >= 3
                ),
                what="A decoding and acking",
            )
            a.stop(signal.SIGKILL)
            wait_for(
                lambda: (
                    (m := agent.scrape())["ferry_agent_synthetic_points_total"] == total
                    and m["ferry_agent_spool_frames"] == 0
                ),
                timeout=60,
                what="every point produced and acked",
            )
            b_metrics = b.scrape()
            assert b_metrics["ferry_collector_stream_frames_total"] > 0
            assert b_metrics['ferry_collector_frames_total{status="REJECTED"}'] == 0
            a = start_collector(a_dir, store=a_dir / "store")  # to count what A committed
            in_a, in_b = synthetic_stored(a.addr)[0], synthetic_stored(b.addr)[0]
            # A may have committed frames it never acked (the agent resent them to B); nothing is missing
            assert in_a > 0 and in_b > 0 and in_a + in_b >= total
            window_points = 32 * rate * 0.25  # at most a window of frames of 200 ms each
            assert in_a + in_b - total <= window_points
            overlap = in_a + in_b - total
            print(f"\nfailover: A stored {in_a:.0f}, B {in_b:.0f} of {total} (overlap {overlap:.0f})")
        finally:
            for proc in (agent, a, b):
                if proc is not None:
                    proc.stop()


def stream_frame(seq: int, msg: payload_pb2.StreamPayload, previous: bytes = b"") -> ingest_pb2.Frame:
    raw = msg.SerializeToString()
    params: dict = {"write_content_size": True, "write_checksum": True}
    if previous:
        params["dict_data"] = zstandard.ZstdCompressionDict(
            previous, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
    return ingest_pb2.Frame(
        agent_id="forger",
        epoch=99,
        seq=seq,
        encoding=ingest_pb2.STREAM_ZSTD,
        raw_size=len(raw),
        payload=zstandard.ZstdCompressor(**params).compress(raw),
        point_count=msg.point_count,
    )


def point(first_id: int, sid: int, series=()) -> payload_pb2.StreamPayload:
    return payload_pb2.StreamPayload(
        resource=payload_pb2.Resource(host="forged", agent_id="forger"),
        first_id=first_id,
        series=list(series),
        point_count=1,
        id_delta=uvarints([2 * sid]),
        time_delta=uvarints([2 * int(time.time() * 1000)]),
        value_mode=bytes([0]),
        value_delta=uvarints([2]),
    )


def forged_stream(addr: str, frames: list[ingest_pb2.Frame]):
    """Send `frames` on one stream that asks for the stream encoding: (initial metadata, acks,
    the status it ended with)."""
    with transport.channel(addr) as channel:
        call = ingest_pb2_grpc.IngestStub(channel).Stream(
            iter(frames), metadata=(("ferry-stream-encoding", "1"),), timeout=20
        )
        acks = []
        try:
            for ack in call:
                acks.append(ack)
        except grpc.RpcError as exc:
            return dict(call.initial_metadata()), acks, exc.code(), exc.details()
        return dict(call.initial_metadata()), acks, grpc.StatusCode.OK, ""


def test_forged_stream_frames_are_refused_while_others_are_served(tmp_path):
    collector = start_collector(tmp_path, "--stream-max-series", "50")
    agent = None
    with diagnose(collector):
        try:
            agent = start_agent(
                tmp_path, collector.addr, "--synthetic", "2000:1000000000", "--batch-max-age", "200ms"
            )
            wait_for(lambda: synthetic_stored(collector.addr)[0] > 0, what="the honest agent's points")
            define = payload_pb2.Series(name="forged.m", kind=GAUGE)
            first = point(0, 0, [define])
            frames = [stream_frame(1, first), stream_frame(2, point(1, 917), first.SerializeToString())]
            meta, acks, code, details = forged_stream(collector.addr, frames)
            assert meta["ferry-stream-encoding"] == "1" and meta["ferry-stream-max-series"] == "50"
            # the frame that does not fit the state is not answered: the stream ends naming it
            assert [a.status for a in acks] == [ingest_pb2.OK]
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert details == (
                "stream encoding state lost at frame 99:2 (point 0 refers to series id 917, not defined "
                "on this stream (its dictionary holds 1 series, ids 0..0))"
            )

            many = [
                payload_pb2.Series(name="forged.m", kind=GAUGE, label_keys=["i"], label_values=[str(i)])
                for i in range(51)
            ]
            _, acks, code, details = forged_stream(collector.addr, [stream_frame(3, point(0, 0, many))])
            assert acks == [] and code == grpc.StatusCode.INVALID_ARGUMENT
            assert details == (
                "stream encoding state lost at frame 99:3 "
                "(stream dictionary would hold 51 series > 50 allowed (stream_max_series))"
            )

            bad = payload_pb2.Series(name="9bad name", kind=GAUGE)  # refused by the validator, answered
            _, acks, code, details = forged_stream(collector.addr, [stream_frame(4, point(0, 0, [bad]))])
            assert [(a.status, a.code) for a in acks] == [
                (ingest_pb2.REJECTED, grpc.StatusCode.INVALID_ARGUMENT.value[0])
            ]
            assert "'9bad name'" in acks[0].message and code == grpc.StatusCode.INVALID_ARGUMENT
            assert details.startswith("frame 99:4 was refused with its series definitions")

            # Push takes self-contained frames only
            with transport.channel(collector.addr) as channel, pytest.raises(grpc.RpcError) as err:
                ingest_pb2_grpc.IngestStub(channel).Push(stream_frame(5, first), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (
                "only on an Ingest.Stream whose collector accepted the stream encoding" in err.value.details()
            )

            before = synthetic_stored(collector.addr)[0]
            wait_for(
                lambda: synthetic_stored(collector.addr)[0] > before, what="the honest agent still served"
            )
            assert agent.scrape()["ferry_agent_frames_stream_encoded_total"] > 0
            assert collector.scrape()["ferry_collector_streams_broken_total"] == 3
        finally:
            if agent is not None:
                agent.stop()
            collector.stop()
