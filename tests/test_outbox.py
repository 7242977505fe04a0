"""The agent's outbox: seq order, acks, and the byte bound that drops the oldest frames, counted."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY

from agent.outbox import Outbox
from ferry.frames import FrameLimits, open_frame


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_frames_get_increasing_seqs_and_round_trip():
    box = Outbox("a1", epoch=9)
    f1 = box.put(b"first payload", 3)
    f2 = box.put(b"second payload", 4)
    assert (f1.seq, f2.seq, f1.epoch, f1.agent_id) == (1, 2, 9, "a1")
    assert open_frame(f2, FrameLimits()) == b"second payload"
    assert box.next_after(0) is f1 and box.next_after(1) is f2 and box.next_after(2) is None
    assert box.ack(1) is f1 and box.ack(1) is None
    assert len(box) == 1 and box.next_after(0) is f2


def test_over_the_byte_bound_the_oldest_frames_are_dropped_and_counted():
    dropped_frames, dropped_points = (
        _metric("ferry_agent_frames_dropped_total"),
        _metric("ferry_agent_points_dropped_total"),
    )
    payloads = [os.urandom(1000) for _ in range(10)]  # incompressible: ~1 KB each on the wire
    box = Outbox("a1", max_bytes=3500)
    for p in payloads:
        box.put(p, 5)
    kept = []
    seq = 0
    while (f := box.next_after(seq)) is not None:
        kept.append(f.seq)
        seq = f.seq
    assert kept == [8, 9, 10]
    assert box.bytes <= 3500
    assert _metric("ferry_agent_frames_dropped_total") - dropped_frames == 7
    assert _metric("ferry_agent_points_dropped_total") - dropped_points == 35
