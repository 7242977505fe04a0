"""Bad frames get their documented status and message; the collector keeps serving a real agent."""

from __future__ import annotations

import grpc
import lz4.frame
import numpy as np
import pytest

from ferry import transport
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from ferry.wire.frames import DEFAULT_MAX_RAW_BYTES
from tests import framegen
from tests.integration.procs import collector_and_agent, wait_for


def _one_point(value: float, label_value: str = "x") -> MetricBatch:
    import time

    return MetricBatch(
        series=[SeriesDef("bad.m", GAUGE, "", (("path", label_value),))],
        series_ref=np.zeros(1, dtype=np.uint32),
        time_ms=np.array([int(time.time() * 1000)], dtype=np.int64),
        value=np.array([value]),
    )


def _garbage() -> ingest_pb2.Frame:
    return ingest_pb2.Frame(
        agent_id="bad", epoch=1, seq=1, encoding=ingest_pb2.NONE, raw_size=64, payload=b"\xff" * 64
    )


def _unknown_encoding() -> ingest_pb2.Frame:
    f = framegen.frame(framegen.gauge_batch(), seq=1, agent_id="bad")
    f.encoding = 5
    return f


def _lz4_declares_too_much() -> ingest_pb2.Frame:
    raw = bytes(DEFAULT_MAX_RAW_BYTES + 1024)
    # the frame's raw_size lies (small), so only the lz4 header's content size reveals the size
    return ingest_pb2.Frame(
        agent_id="bad",
        epoch=1,
        seq=1,
        encoding=ingest_pb2.LZ4_FRAME,
        raw_size=100,
        payload=lz4.frame.compress(raw, store_size=True),
    )


def _raw_size_too_big() -> ingest_pb2.Frame:
    return ingest_pb2.Frame(
        agent_id="bad",
        epoch=1,
        seq=1,
        encoding=ingest_pb2.LZ4_FRAME,
        raw_size=DEFAULT_MAX_RAW_BYTES + 1,
        payload=b"\x04\x22\x4d\x18",
    )


CASES = {
    "garbage payload": (_garbage, "is not a ferry.v1.Payload"),
    "unknown encoding": (_unknown_encoding, "unknown frame encoding 5"),
    "lz4 declared size over cap": (
        _lz4_declares_too_much,
        f"lz4 frame declares {DEFAULT_MAX_RAW_BYTES + 1024} bytes > {DEFAULT_MAX_RAW_BYTES} allowed",
    ),
    "raw_size over cap": (_raw_size_too_big, f"> {DEFAULT_MAX_RAW_BYTES} allowed"),
    "NaN": (lambda: framegen.frame(_one_point(float("nan")), seq=1, agent_id="bad"), "non-finite value nan"),
    "+Inf": (lambda: framegen.frame(_one_point(float("inf")), seq=1, agent_id="bad"), "non-finite value inf"),
    "-Inf": (
        lambda: framegen.frame(_one_point(float("-inf")), seq=1, agent_id="bad"),
        "non-finite value -inf",
    ),
    "label value too long": (
        lambda: framegen.frame(_one_point(1.0, "v" * 300), seq=1, agent_id="bad"),
        "label value 300 bytes > 256 allowed for 'path'",
    ),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with collector_and_agent(
        tmp_path_factory.mktemp("bad"), "--interval", "1s", "--batch-max-age", "1s"
    ) as pair:
        yield pair


def _acked(agent) -> float:
    return agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)


@pytest.mark.parametrize("case", list(CASES))
def test_push_answers_invalid_argument(cluster, case):
    collector, _ = cluster
    make, fragment = CASES[case]
    with transport.channel(collector.addr) as ch, pytest.raises(grpc.RpcError) as err:
        ingest_pb2_grpc.IngestStub(ch).Push(make(), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in err.value.details()


def test_stream_rejects_each_bad_frame_and_keeps_going(cluster):
    collector, agent = cluster
    wait_for(lambda: _acked(agent) >= 1, what="the agent's first ack")
    frames = []
    for seq, (make, _) in enumerate(CASES.values(), start=1):
        f = make()
        f.seq = seq
        frames.append(f)
    good = framegen.frame(framegen.gauge_batch("good.after.bad"), seq=len(frames) + 1, agent_id="bad")
    with transport.channel(collector.addr) as ch:
        acks = list(ingest_pb2_grpc.IngestStub(ch).Stream(iter([*frames, good]), timeout=60))
    assert [a.seq for a in acks] == [f.seq for f in [*frames, good]]
    for ack, (case, (_, fragment)) in zip(acks, CASES.items(), strict=False):
        assert ack.status == ingest_pb2.REJECTED, case
        assert ack.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], case
        assert fragment in ack.message, (case, ack.message)
    assert acks[-1].status == ingest_pb2.OK
    before = _acked(agent)
    wait_for(lambda: _acked(agent) >= before + 2, what="the real agent still being acked")
    assert agent.scrape()["ferry_agent_frames_rejected_total"] == 0
    assert collector.popen.poll() is None


def test_malformed_protobuf_on_the_wire(cluster):
    collector, agent = cluster
    with transport.channel(collector.addr) as ch:
        push = ch.unary_unary("/ferry.v1.Ingest/Push", request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as err:
            push(b"\x0a\xff\xff\xff\xff\x0f", timeout=10)  # a length-delimited field running past the end
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a Frame" in err.value.details()
    before = _acked(agent)
    wait_for(lambda: _acked(agent) > before, what="the agent still being acked")
