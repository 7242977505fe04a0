"""The pipeline's order of checks and the budget steps (on the real embedded store), the stream
key and the reject log. The same cases against real processes: tests/integration/test_ingest_hardening.py."""

from __future__ import annotations

import logging

import grpc
import pytest

from ferry.collector.budget import Budget
from ferry.collector.pipeline import Busy, FramePipeline
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.streams import RejectLog, peer_key
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2, payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import GAUGE, SeriesDef
from ferry.wire.frames import pack_frame
from tests import framegen
from tests.proto.test_census import _series_table

INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]


@pytest.fixture
def pipeline(store, store_dsn):
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    yield FramePipeline.writing(Writer(stores))
    stores.close_all()


def test_seq_zero_is_invalid_not_a_duplicate(pipeline):
    good = framegen.frame(framegen.gauge_batch(), seq=1, epoch=3)
    assert pipeline.handle(good).status == ingest_pb2.OK
    good.seq = 0
    ack = pipeline.handle(good)
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, INVALID)
    assert "seq 0 is not valid" in ack.message


def test_a_lying_raw_size_reserves_nothing(pipeline):
    budget = Budget(1 << 20)
    liar = ingest_pb2.Frame(
        agent_id="a",
        epoch=1,
        seq=1,
        encoding=ingest_pb2.LZ4_FRAME,
        raw_size=2**32 - 1,
        payload=b"\x04\x22\x4d\x18",
    )
    ack = pipeline.handle(liar, reservation=budget.reservation())
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, INVALID)
    assert budget.high_water == 0


def test_an_lz4_body_cannot_declare_more_than_it_can_expand_to(pipeline):
    f = pack_frame("a", 1, 1, bytes(1 << 20), 0)
    f.payload = f.payload[:100]  # the header still says 1 MiB
    ack = pipeline.handle(f)
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, INVALID)
    assert f"lz4 frame of 100 bytes cannot hold the {1 << 20} bytes it declares" in ack.message


def test_a_series_bomb_reserves_only_its_decompressed_size(pipeline):
    head = payload_pb2.Payload(resource=payload_pb2.Resource(host="h")).SerializeToString()
    frame = pack_frame("bomber", 1, 1, head + _series_table(200_000), 0)
    budget = Budget(1 << 30)
    ack = pipeline.handle(frame, reservation=budget.reservation())
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, INVALID)
    assert "more than 100000 series in one frame (100000 allowed)" in ack.message
    assert budget.high_water == len(frame.payload) + frame.raw_size
    assert budget.used == budget.high_water  # the caller releases


@pytest.mark.parametrize(
    ("unit", "version", "message"),
    [("u" * 65, "", "unit is 65 bytes > 64 allowed"), ("1", "v" * 129, "agent_version is 129 bytes > 128")],
)
def test_unit_and_agent_version_have_limits(pipeline, unit, version, message):
    batch = framegen.gauge_batch(n_series=1, points=1)
    batch.series = [SeriesDef(batch.series[0].name, GAUGE, unit, batch.series[0].labels)]
    res = payload_pb2.Resource(host="h", agent_version=version)
    ack = pipeline.handle(pack_frame("a", 1, 1, encode_payload(res, batch), 1))
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, INVALID)
    assert message in ack.message


def test_a_step_that_does_not_fit_is_busy(pipeline):
    budget = Budget(1024)
    other = budget.reservation()
    assert other.take(100)
    mine = budget.reservation()
    with pytest.raises(Busy):
        pipeline.handle(framegen.frame(framegen.gauge_batch(), seq=1), reservation=mine)
    mine.release()
    # alone, a frame larger than the whole budget passes
    other.release()
    r = budget.reservation()
    assert (
        pipeline.handle(framegen.frame(framegen.gauge_batch(), seq=2), reservation=r).status == ingest_pb2.OK
    )
    r.release()
    assert budget.used == 0


def test_peer_key_is_the_host():
    assert peer_key("ipv4:10.0.0.5:40122") == "10.0.0.5"
    assert peer_key("ipv6:%5B::1%5D:5000") == "[::1]"
    assert peer_key("unix:/run/ferry.sock") == "unix"


def test_reject_log_writes_one_line_per_interval_with_the_count(caplog):
    now = [0.0]
    rl = RejectLog(interval_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "ferry.collector.ingest"):
        for _ in range(50):
            rl.rejected("10.0.0.5", "rejected frame x")
        rl.rejected("10.0.0.6", "rejected frame y")
        now[0] = 11
        rl.rejected("10.0.0.5", "rejected frame z")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "rejected frame x",
        "rejected frame y",
        "rejected frame z (49 more rejected from 10.0.0.5 since the last of these lines)",
    ]
