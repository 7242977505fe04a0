"""The agent's spool on the real filesystem: order, acks, restarts, torn tails, the bound, versions."""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from prometheus_client import REGISTRY

from ferry.agent.spool import HEADER, MAGIC, V1_HEADER, V1_MAGIC, Spool, SpoolError
from ferry.wire.frames import FrameLimits, open_frame, pack_frame


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def drain(spool: Spool) -> list[tuple[int, bytes]]:
    """(seq, payload) of every frame from the oldest, without acking."""
    out, pos = [], 0
    while (got := spool.next_after(pos)) is not None:
        pos, frame = got
        out.append((frame.seq, open_frame(frame, FrameLimits())))
    return out


def test_append_read_ack_in_order(tmp_path):
    s = Spool(tmp_path, "a1")
    for i in range(5):
        s.append(f"payload {i}".encode(), 10 + i)
    assert [p for _, p in drain(s)] == [f"payload {i}".encode() for i in range(5)]
    pos1, f1 = s.next_after(0)
    assert (f1.seq, f1.agent_id, f1.epoch, f1.point_count) == (1, "a1", s.epoch, 10)
    assert s.ack(pos1).seq == 1
    assert s.ack(pos1) is None
    assert [seq for seq, _ in drain(s)] == [2, 3, 4, 5]
    assert len(s) == 4


def test_restart_resends_only_unacked_frames_with_their_identity(tmp_path):
    s = Spool(tmp_path, "a1")
    for i in range(4):
        s.append(b"x%d" % i, 1)
    old_epoch = s.epoch
    pos, _ = s.next_after(0)
    s.ack(pos + 1)  # acks are a prefix: frames 1 and 2 are done
    s.close()
    s2 = Spool(tmp_path, "a1")
    frames = []
    pos = 0
    while (got := s2.next_after(pos)) is not None:
        pos, f = got
        frames.append((f.epoch, f.seq))
    assert frames == [(old_epoch, 3), (old_epoch, 4)]
    assert s2.epoch != old_epoch
    new = s2.append(b"after restart", 1)
    assert (new.epoch, new.seq) == (s2.epoch, 1)


def _segment_files(tmp_path):
    return sorted((tmp_path / "segments").glob("*.seg"))


def test_torn_tail_is_cut_and_nothing_before_it_is_lost(tmp_path):
    s = Spool(tmp_path, "a1")
    for i in range(3):
        s.append(b"frame %d" % i, 1)
    s.close()
    seg = _segment_files(tmp_path)[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])  # SIGKILL in the middle of the third record
    torn_before = metric("ferry_agent_spool_torn_bytes_total")
    s2 = Spool(tmp_path, "a1")
    assert [p for _, p in drain(s2)] == [b"frame 0", b"frame 1"]
    assert metric("ferry_agent_spool_torn_bytes_total") - torn_before > 0
    assert seg.stat().st_size < len(data) - 7  # the partial record is gone from disk too


def test_corrupt_record_fails_its_checksum(tmp_path):
    s = Spool(tmp_path, "a1")
    for i in range(3):
        s.append(b"frame %d" % i, 1)
    s.close()
    seg = _segment_files(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record's body
    seg.write_bytes(bytes(data))
    assert [p for _, p in drain(Spool(tmp_path, "a1"))] == [b"frame 0", b"frame 1"]


def test_garbage_appended_after_records_is_cut(tmp_path):
    s = Spool(tmp_path, "a1")
    s.append(b"only", 1)
    s.close()
    seg = _segment_files(tmp_path)[-1]
    with seg.open("ab") as fh:
        fh.write(b"\x00" * (HEADER.size - 1))
    assert [p for _, p in drain(Spool(tmp_path, "a1"))] == [b"only"]


def test_over_the_bound_the_oldest_frames_are_dropped_and_counted(tmp_path):
    frames_before = metric("ferry_agent_spool_dropped_frames_total")
    points_before = metric("ferry_agent_spool_dropped_points_total")
    s = Spool(tmp_path, "a1", max_bytes=64 * 1024)
    for _ in range(40):
        s.append(os.urandom(4000), 7)  # incompressible: ~4 KB records, segments of 16 KiB
    kept = [seq for seq, _ in drain(s)]
    dropped = metric("ferry_agent_spool_dropped_frames_total") - frames_before
    assert s.bytes <= 64 * 1024
    assert kept == list(range(41 - len(kept), 41))  # the newest survive, in order
    assert dropped == 40 - len(kept) > 0
    assert metric("ferry_agent_spool_dropped_points_total") - points_before == 7 * dropped
    assert sum(f.stat().st_size for f in _segment_files(tmp_path)) <= 64 * 1024 + 16 * 1024


def _v1_record(frame_payload: bytes, seq: int, mark: int) -> bytes:
    """A record as agents before the FRY2 format wrote it: the producer's mark in the header."""
    body = pack_frame("a1", 77, seq, frame_payload, 1).SerializeToString()
    crc = zlib.crc32(body, zlib.crc32(struct.pack("<Q", mark)))
    return V1_HEADER.pack(V1_MAGIC, len(body), crc, mark) + body


def test_a_spool_of_the_previous_format_is_read_and_its_frames_delivered(tmp_path):
    (tmp_path / "segments").mkdir()
    first = _v1_record(b"old 0", 1, 100)
    (tmp_path / "segments" / f"{1:020d}.seg").write_bytes(first + _v1_record(b"old 1", 2, 200))
    (tmp_path / "cursor").write_text("1 0 200\n")  # the old cursor's third field was the mark
    s = Spool(tmp_path, "a1")
    assert [(f.epoch, f.seq) for f in s.frames()] == [(77, 1), (77, 2)]
    assert [p for _, p in drain(s)] == [b"old 0", b"old 1"]
    pos, _ = s.next_after(0)
    s.ack(pos)
    s.append(b"new", 1)
    s.close()
    assert (tmp_path / "cursor").read_text().split() == ["1", str(len(first))]  # rewritten in the new form
    newest = _segment_files(tmp_path)[-1].read_bytes()
    assert newest[:4] == MAGIC == b"FRY2" and HEADER.size == 12
    assert [p for _, p in drain(Spool(tmp_path, "a1"))] == [b"old 1", b"new"]


def test_a_spool_of_a_newer_format_is_refused_with_a_message(tmp_path):
    s = Spool(tmp_path, "a1")
    s.append(b"x", 1)
    s.close()
    seg = _segment_files(tmp_path)[-1]
    seg.write_bytes(b"FRY3" + seg.read_bytes()[4:])
    with pytest.raises(SpoolError, match=r"holds records of format FRY3, newer than this agent's FRY2"):
        Spool(tmp_path, "a1")
    assert seg.stat().st_size > HEADER.size  # not cut off as a torn tail


def test_fsync_interval_policy_and_bad_policy(tmp_path):
    s = Spool(tmp_path, "a1", fsync="interval", fsync_interval_s=60)
    s.append(b"a", 1)
    assert [p for _, p in drain(s)] == [b"a"]
    with pytest.raises(ValueError, match="not one of frame, interval"):
        Spool(tmp_path / "x", "a1", fsync="never")


def test_on_a_small_disk_the_bound_is_its_room_and_a_full_disk_drops_the_oldest(tmp_path):
    """A 2 MiB filesystem under a spool bound of 512 MiB: the disk is the bound. Filled to its
    last byte by someone else, the spool still acks (the cursor is rewritten in place), keeps
    appending by dropping its oldest frames, and counts exactly the frames it dropped."""
    from tests.tinyfs import fill, free_bytes, tiny_fs

    with tiny_fs(tmp_path / "disk") as disk:
        s = Spool(disk / "spool", "a1")
        frames0, points0 = (
            metric("ferry_agent_spool_dropped_frames_total"),
            metric("ferry_agent_spool_dropped_points_total"),
        )
        for _ in range(100):  # 6.4 MB of incompressible frames into 2 MiB
            s.append(os.urandom(65536), 10)
        dropped = metric("ferry_agent_spool_dropped_frames_total") - frames0
        assert dropped > 0 and len(s) + dropped == 100
        assert metric("ferry_agent_spool_dropped_points_total") - points0 == 10 * dropped
        assert s.bytes <= 2 * 1024 * 1024 - s.reserve_bytes
        assert [seq for seq, _ in drain(s)] == list(range(101 - len(s), 101))  # the newest are kept

        filler = fill(disk / "filler")
        assert filler > 0 and free_bytes(disk) == 0
        pos, first = s.next_after(0)
        assert s.ack(pos).seq == first.seq  # an ack on a full disk
        for _ in range(20):
            s.append(os.urandom(65536), 10)
        dropped = metric("ferry_agent_spool_dropped_frames_total") - frames0
        assert len(s) + dropped + 1 == 120  # + the one acked
        kept = [seq for seq, _ in drain(s)]
        assert kept and kept[-1] == 120 and kept == list(range(kept[0], 121))
        s.close()
        assert [seq for seq, _ in drain(Spool(disk / "spool", "a1"))] == kept  # and after a restart
