"""A frame seen again — on the same stream, another stream, or after a collector restart — is stored once."""

from __future__ import annotations

import pytest

from ferry import transport
from ferry.collector.query.client import total
from ferry.v1 import ingest_pb2, ingest_pb2_grpc
from tests import framegen
from tests.integration.procs import start_collector


def _count(addr: str, metric: str) -> tuple[float, float]:
    return total(addr, metric, "count"), total(addr, metric, "sum")


def _stream(addr: str, frames: list[ingest_pb2.Frame]) -> list[ingest_pb2.Ack]:
    with transport.channel(addr) as ch:
        return list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(frames), timeout=30))


def _push(addr: str, frame: ingest_pb2.Frame) -> ingest_pb2.Ack:
    with transport.channel(addr) as ch:
        return ingest_pb2_grpc.IngestStub(ch).Push(frame, timeout=30)


@pytest.fixture
def collector(tmp_path):
    proc = start_collector(tmp_path)
    yield proc
    proc.stop()


def test_same_frame_twice_stored_once(collector):
    frame = framegen.frame(framegen.gauge_batch("dup.a", n_series=4, points=50), seq=1)
    expected = (200.0, float(sum(1 + i * 100 + j for i in range(4) for j in range(50))))
    assert _push(collector.addr, frame).status == ingest_pb2.OK
    assert _push(collector.addr, frame).status == ingest_pb2.DUPLICATE
    acks = _stream(collector.addr, [frame, frame])
    assert [a.status for a in acks] == [ingest_pb2.DUPLICATE, ingest_pb2.DUPLICATE]
    assert _count(collector.addr, "dup.a") == expected


def test_resend_after_collector_restart_is_stored_once(tmp_path):
    """The restarted collector rebuilds its dedup marks from the store's ledger: the resent frames
    are answered DUPLICATE (before group commit, the store skipped them by their insert token
    and they were answered OK)."""
    frames = [
        framegen.frame(framegen.gauge_batch("dup.b", n_series=2, points=10, value0=seq * 1000), seq=seq)
        for seq in (1, 2, 3)
    ]
    first = start_collector(tmp_path)
    try:
        assert [a.status for a in _stream(first.addr, frames)] == [ingest_pb2.OK] * 3
        before = _count(first.addr, "dup.b")
    finally:
        first.stop()
    second = start_collector(tmp_path, store=tmp_path / "store")
    try:
        acks = _stream(second.addr, frames)
        assert [a.status for a in acks] == [ingest_pb2.DUPLICATE] * 3  # the ledger knows them
        assert (
            _count(second.addr, "dup.b")
            == before
            == (
                60.0,
                float(
                    sum(seq * 1000 + i * 100 + j for seq in (1, 2, 3) for i in range(2) for j in range(10))
                ),
            )
        )
        assert [a.status for a in _stream(second.addr, frames)] == [ingest_pb2.DUPLICATE] * 3
    finally:
        second.stop()


def test_same_seq_in_another_epoch_is_new_data(collector):
    a = framegen.frame(framegen.gauge_batch("dup.c", n_series=1, points=3), seq=1, epoch=1)
    b = framegen.frame(framegen.gauge_batch("dup.c", n_series=1, points=3, value0=10), seq=1, epoch=2)
    assert [x.status for x in _stream(collector.addr, [a, b])] == [ingest_pb2.OK, ingest_pb2.OK]
    # same series and timestamps but different frames: both are stored (1+2+3 and 10+11+12)
    assert _count(collector.addr, "dup.c") == (6.0, 39.0)
