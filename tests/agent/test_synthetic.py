"""The synthetic source through the real batcher and spool: frames of batch_max_points, exactly
TOTAL points, and resuming from the spool after a stop, after acks and after a kill between a
frame's append and its progress record."""

from __future__ import annotations

import pytest

from ferry.agent.batcher import Batcher
from ferry.agent.spool import Spool, SpoolError
from ferry.agent.synthetic import SyntheticSource, synthetic_points
from ferry.v1 import payload_pb2


def source_and_batcher(tmp_path, total: int, frame_points: int = 5000) -> tuple[SyntheticSource, Batcher]:
    source = SyntheticSource(0, total, Spool(tmp_path, "syn"))
    return source, Batcher(payload_pb2.Resource(host="h", agent_id="syn"), source.append, frame_points, 10.0)


def run_until(source: SyntheticSource, batcher: Batcher, produced: int | None = None) -> None:
    now = 1.0
    while (produced is None or source.produced < produced) and source.step(batcher, now) is not None:
        now += 0.001


def test_frames_hold_batch_max_points_and_the_total_is_exact(tmp_path):
    source, batcher = source_and_batcher(tmp_path, 23_000)
    run_until(source, batcher)
    frames = source.spool.frames()
    assert [f.point_count for f in frames] == [5000, 5000, 5000, 5000, 3000]  # the last cut at TOTAL
    assert sum(synthetic_points(f) for f in frames) == 23_000 == source.produced
    assert source.step(batcher, 9.0) is None


def test_a_restart_resumes_from_the_recorded_progress_also_once_everything_is_acked(tmp_path):
    source, batcher = source_and_batcher(tmp_path, 40_000)
    run_until(source, batcher, produced=15_000)
    source.spool.close()
    assert SyntheticSource(0, 40_000, Spool(tmp_path, "syn")).produced == 15_000
    spool = Spool(tmp_path, "syn")
    for _ in spool.frames():
        pos, _ = spool.next_after(0)
        spool.ack(pos)
    assert len(spool) == 0
    spool.close()
    assert SyntheticSource(0, 40_000, Spool(tmp_path, "syn")).produced == 15_000


def test_a_kill_between_the_append_and_the_record_loses_and_doubles_nothing(tmp_path):
    source, batcher = source_and_batcher(tmp_path, 40_000)
    run_until(source, batcher, produced=20_000)
    recorded = source.path.read_text()
    run_until(source, batcher, produced=25_000)
    source.path.write_text(recorded)  # as if killed after the fifth frame's append, before its record
    source.spool.close()
    again, batcher = source_and_batcher(tmp_path, 40_000)
    assert again.produced == 25_000  # the recorded 20,000 and the frame spooled after the record
    run_until(again, batcher)
    assert sum(synthetic_points(f) for f in again.spool.frames()) == 40_000


def test_an_unreadable_progress_record_is_refused(tmp_path):
    (tmp_path / "synthetic").write_text("garbage\n")
    with pytest.raises(SpoolError, match="unreadable synthetic progress"):
        SyntheticSource(0, 10, Spool(tmp_path, "syn"))
