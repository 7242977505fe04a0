"""The agent never builds a frame the collector cannot take: cut by serialized size and by the
census caps, checked here by the collector's own code (check_frame, census, decode, validate)."""

from __future__ import annotations

import os
import time

import pytest
from prometheus_client import REGISTRY

from ferry.agent.batcher import Batcher
from ferry.agent.intake import Intake
from ferry.agent.local.records import DeltaSums, RecordError, convert
from ferry.collector.validate import validate_batch
from ferry.limits import Limits, RecordLimits, on_arrival
from ferry.series import DELTA, GAUGE, SeriesDef
from ferry.v1 import local_pb2, payload_pb2
from ferry.wire.census import census
from ferry.wire.codec import decode_metrics, decode_payload
from ferry.wire.frames import CUT_PAYLOAD_BYTES, FrameLimits, open_frame, pack_frame, receive_limit


def wide_series(i: int) -> SeriesDef:
    """A series inside every limit and as large as they allow: 32 random 256-byte label values."""
    labels = tuple(sorted((f"k{j:02d}", os.urandom(128).hex()) for j in range(32)))
    return SeriesDef(f"app.wide_{i}", GAUGE, "", labels)


def collector_takes(payload: bytes, points: int) -> int:
    """What the collector does with the frame (sizes, census, decode, validate); its points."""
    frame = pack_frame("a1", 1, 1, payload, points)
    assert frame.ByteSize() < receive_limit()
    raw = open_frame(frame, FrameLimits())
    census(raw, Limits(), RecordLimits())
    batch = decode_metrics(decode_payload(raw).metrics)
    validate_batch(batch, int(time.time() * 1000), Limits())
    assert len(batch) == points
    return points


def test_wide_series_are_cut_by_size_into_frames_the_collector_takes():
    frames: list[tuple[bytes, int]] = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda p, n: frames.append((p, n)))
    now = int(time.time() * 1000)
    for request in range(6):  # 2,640 records in 6 requests: one 22 MB frame before
        batcher.take(Intake(points=[(wide_series(request * 440 + i), now, 1.0) for i in range(440)]))
    batcher.cut()
    assert len(frames) >= 3
    assert all(len(p) < CUT_PAYLOAD_BYTES + 1024 * 1024 for p, _ in frames)
    assert sum(collector_takes(p, n) for p, n in frames) == 2640


def test_a_flush_of_many_delta_series_is_split_too():
    frames: list[tuple[bytes, int]] = []
    now = int(time.time() * 1000)
    held = [(wide_series(i), now, 1.0) for i in range(2000)]
    batcher = Batcher(
        payload_pb2.Resource(host="h"), lambda p, n: frames.append((p, n)), before_cut=lambda: held
    )
    batcher.cut()
    assert len(frames) >= 2 and sum(collector_takes(p, n) for p, n in frames) == 2000


def test_many_tiny_series_are_cut_below_the_census_caps():
    frames: list[tuple[bytes, int]] = []
    batcher = Batcher(payload_pb2.Resource(host="h"), lambda p, n: frames.append((p, n)), max_points=10**7)
    now = int(time.time() * 1000)
    batcher.take(Intake(points=[(SeriesDef(f"s{i}", GAUGE), now, 1.0) for i in range(150_000)]))
    batcher.cut()
    assert len(frames) >= 3 and sum(collector_takes(p, n) for p, n in frames) == 150_000


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("ferry_agent_records_dropped_total", {"reason": reason}) or 0.0


def test_delta_increments_whose_sum_overflows_are_dropped_and_counted():
    sums, series = DeltaSums(), SeriesDef("d", DELTA)
    before = dropped("overflow")
    sums.add([(series, 1, 1.7e308), (series, 1, 1.7e308), (series, 1, -1.0)])
    assert [p[2] for p in sums.flush()] == [1.7e308 - 1.0]
    assert dropped("overflow") - before == 1


NOW_NS = time.time_ns()


@pytest.mark.parametrize(
    "record,reason,message",
    [
        (
            local_pb2.MetricRecord(name="g", kind=GAUGE, value=1, unit="x" * 3_900_000),
            "series",
            "unit is 3900000",
        ),
        (
            local_pb2.MetricRecord(
                name="g",
                kind=GAUGE,
                value=1,
                time_unix_ms=NOW_NS // 1_000_000 - Limits().max_past_ms + 60_000,
            ),
            "time",
            "outside the accepted window",
        ),
        (
            local_pb2.MetricRecord(
                name="g", kind=GAUGE, value=1, time_unix_ms=NOW_NS // 1_000_000 + 8 * 60_000
            ),
            "time",
            "outside the accepted window",
        ),
    ],
)
def test_records_the_collector_could_refuse_on_arrival_are_refused_with_a_reason(record, reason, message):
    with pytest.raises(RecordError, match=message) as err:
        convert(local_pb2.Records(metrics=[record]), NOW_NS, on_arrival(Limits()))
    assert err.value.reason == reason


def test_app_records_go_in_frames_of_their_own(tmp_path):
    """Whatever becomes of an app's frame at the collector, host metrics are not in it."""
    from ferry.agent.config import AgentConfig
    from ferry.agent.wiring import Agent

    cfg = AgentConfig()
    cfg.spool, cfg.agent_id, cfg.local_listen, cfg.local_socket = str(tmp_path / "spool"), "a1", "", ""
    agent = Agent(cfg, collectors=[])
    now = int(time.time() * 1000)
    try:
        app = Intake(
            points=[(SeriesDef("app.g", GAUGE), now, 1.0)], deltas=[(SeriesDef("app.d", DELTA), now, 2.0)]
        )
        agent.submit(app)  # as the Local service does
        agent.submit(Intake(points=[(SeriesDef("check.up", GAUGE), now, 1.0)]), "checks")
        agent.pipeline.submit(agent._cut_all).result()
        frames = [decode_payload(open_frame(f, FrameLimits())) for f in agent.spool.frames()]
        assert sorted(sorted(s.name for s in p.metrics.series) for p in frames) == [
            ["app.d", "app.g"],
            ["check.up"],
        ]
    finally:
        agent.pipeline.shutdown()
        agent.spool.close()
