"""The group commit (ferry.collector.commit) on the real embedded store: frames of many streams in
one insert per table, answered after it; dedup table by table and day by day against marks the
store's ledger rebuilds; a failed group failing what came after it; a frame of an agent whose
other stream still has frames in flight waiting for them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ferry.collector.commit import GroupCommitter, Prepared, StoreUnavailable, Stream
from ferry.collector.marks import Marks
from ferry.collector.records_rows import record_block
from ferry.collector.rows import Identity, RowBuilder
from ferry.collector.storage import ledger
from ferry.collector.storage.store import ThreadStores
from ferry.collector.writer import Writer
from ferry.records import KINDS
from tests import framegen

DAY = ledger.DAY_MS
EVENTS = next(k for k in KINDS if k.name == "events")


def frame(
    agent: str, seq: int, times_ms: list[int], epoch: int = 5, events: int = 0, value: float = 1.0
) -> Prepared:
    """A frame of one gauge series with a point at each of `times_ms` (and `events` events)."""
    n = len(times_ms)
    batch = framegen.gauge_batch("c.g", n_series=1, points=n, t0_ms=0, value0=value)
    batch.time_ms[:] = np.array(times_ms, dtype=np.int64)
    identity = Identity(agent, epoch, seq)
    rows = RowBuilder().build(batch, framegen.resource(agent, f"h-{agent}"), identity)
    blocks = {"samples": rows.samples_block}
    if events:
        t_ns = times_ms[0] * 10**6
        evs = [framegen.event(f"e{i}", t_ns=t_ns + i) for i in range(events)]
        blocks["events"] = record_block(EVENTS, evs, f"h-{agent}", identity)
    return Prepared(agent, epoch, seq, blocks, rows.series, min(times_ms), max(times_ms), f"h-{agent}")


class Recording(Writer):
    """The real Writer, noting which tables each group wrote and how many rows."""

    def __init__(self, store, fail: list | None = None):
        super().__init__(ThreadStores(lambda: store))
        self.groups: list[dict[str, int]] = []
        self.fail = fail if fail is not None else []

    def write(self, group) -> None:
        if self.fail:
            raise self.fail.pop()
        self.groups.append(
            {
                t: sum(p.writes[t].num_rows for p in group.frames if t in p.writes)
                for p in group.frames
                for t in p.writes
            }
        )
        super().write(group)


def count(store, table: str, where: str = "1") -> int:
    return store.query(f"SELECT count() FROM {store.db}.{table} WHERE {where}")[0][0]


def now_ms() -> int:
    return (int(time.time()) - 120) * 1000


def test_frames_of_many_streams_go_in_one_insert_per_table(store):
    writer = Recording(store)
    c = GroupCommitter(writer.write, Marks(), max_rows=10_000, max_age_s=0.3)
    # both points in one minute (at now_ms() they were one minute apart 1 time in 60: 40 rows)
    t = (now_ms() // 60_000 - 1) * 60_000
    futures = [c.submit(frame(f"a{i}", 1, [t, t + 1000]), Stream()) for i in range(20)]
    c.start()
    assert [f.result(10) for f in futures] == ["OK"] * 20
    c.stop()
    assert writer.groups == [{"samples": 40, "samples_1m": 40, "samples_1h": 40}]  # one group
    assert count(store, "samples") == 40
    assert count(store, "samples_1m", "NOT startsWith(name, '#')") == 20  # 20 series, one minute each
    assert count(store, "agents") == 0  # no AgentRecorder given: no agents rows
    assert count(store, "series") == 20


def test_a_group_closes_at_its_row_bound(store):
    writer = Recording(store)
    c = GroupCommitter(writer.write, Marks(), max_rows=4, max_age_s=60)
    c.start()
    t = now_ms()
    futures = [c.submit(frame(f"a{i}", 1, [t, t + 1]), Stream()) for i in range(4)]
    assert [f.result(10) for f in futures] == ["OK"] * 4  # well before the 60 s age bound
    c.stop()
    # each frame brings 2 points: the second frame closed the first group
    assert [g["samples"] for g in writer.groups] == [4, 4]


def test_a_resend_writes_only_what_each_table_lacks(store):
    """The store's ledger says samples hold frame 3 and events do not (a crash between the
    two inserts): the resend writes its events and nothing into samples."""
    t = now_ms()
    first = frame("a", 3, [t, t + 10], events=2)
    marks = Marks()
    c = GroupCommitter(Recording(store).write, marks, inline=True)
    samples_only = Prepared("a", 5, 3, {"samples": first.blocks["samples"]}, first.series, t, t + 10)
    assert c.submit(samples_only, Stream()).result() == "OK"
    restarted = Marks()
    assert restarted.load(ledger.read(store)) == 3  # samples, samples_1m, samples_1h
    writer = Recording(store)
    c = GroupCommitter(writer.write, restarted, inline=True)
    assert c.submit(first, Stream()).result() == "OK"
    assert writer.groups == [{"events": 2}]
    assert (count(store, "samples"), count(store, "events")) == (2, 2)
    # and once more: every table holds it now
    again = Marks()
    assert again.load(ledger.read(store)) == 4
    assert GroupCommitter(Recording(store).write, again, inline=True).submit(first, Stream()).result() == (
        "DUPLICATE"
    )


def test_a_frame_across_two_days_is_repaired_day_by_day(store):
    """Frame 2 has points on two days; only the first day's part of samples was stored: the
    resend writes the second day into samples, and both days into the rollups."""
    today = now_ms() // DAY * DAY + 1000
    yesterday = today - DAY
    marks = Marks()
    marks.load([ledger.Mark("samples", "a", 5, yesterday // DAY, 2)])
    writer = Recording(store)
    c = GroupCommitter(writer.write, marks, inline=True)
    assert c.submit(frame("a", 2, [yesterday, today]), Stream()).result() == "OK"
    assert writer.groups == [{"samples": 1, "samples_1m": 2, "samples_1h": 2}]
    assert store.query(f"SELECT toUnixTimestamp64Milli(ts) FROM {store.db}.samples") == [(today,)]
    rebuilt = {(m.table, m.day): m.seq for m in ledger.read(store)}
    assert rebuilt == {
        ("samples", today // DAY): 2,
        ("samples_1m", yesterday // DAY): 2,
        ("samples_1m", today // DAY): 2,
        ("samples_1h", yesterday // DAY): 2,
        ("samples_1h", today // DAY): 2,
    }


def test_a_failed_group_fails_the_groups_after_it_and_their_streams(store):
    writer = Recording(store, fail=[RuntimeError("disk full")])
    c = GroupCommitter(writer.write, Marks(), max_rows=2, max_age_s=60)
    t = now_ms()
    s1, s2 = Stream(), Stream()
    first = c.submit(frame("a", 1, [t, t + 1]), s1)  # closes a group of its own (2 points)
    later = c.submit(frame("b", 1, [t]), s2)  # waits in the open group
    c.start()
    with pytest.raises(StoreUnavailable, match="disk full"):
        first.result(10)
    with pytest.raises(StoreUnavailable, match="an earlier group failed"):
        later.result(10)
    assert s1.failed and s2.failed
    with pytest.raises(StoreUnavailable, match="earlier frame of this stream"):
        c.submit(frame("a", 2, [t + 2]), s1)
    assert c.submit(frame("a", 1, [t, t + 1]), Stream()).result(10) == "OK"  # the resend, reconnected
    c.stop()
    assert count(store, "samples") == 2


def test_a_reconnected_agent_waits_for_its_old_streams_frames(store):
    """Frame 1 of agent a is in a group not yet written when a's new stream resends it: the
    resend waits for the answer, then finds it stored (DUPLICATE) instead of writing it twice."""
    c = GroupCommitter(Recording(store).write, Marks(), max_rows=2, max_age_s=60)
    c.start()
    t = now_ms()
    old = c.submit(frame("a", 1, [t]), Stream())
    answers: list[str] = []
    resend = threading.Thread(
        target=lambda: answers.append(c.submit(frame("a", 1, [t]), Stream()).result(10))
    )
    resend.start()
    time.sleep(0.3)
    assert answers == [] and not old.done()  # still waiting for the old stream's frame
    assert c.submit(frame("b", 1, [t]), Stream()).result(10) == "OK"  # fills the group: written
    resend.join(10)
    c.stop()
    assert old.result() == "OK" and answers == ["DUPLICATE"]
    assert count(store, "samples") == 2  # a and b, once each


def test_marks_rebuilt_from_the_store_are_the_ones_held(store):
    marks = Marks()
    c = GroupCommitter(Recording(store).write, marks, inline=True)
    t = now_ms()
    for seq in (1, 2, 3):
        assert c.submit(frame("a", seq, [t + seq], events=1), Stream()).result() == "OK"
    assert c.submit(frame("b", 7, [t], epoch=9), Stream()).result() == "OK"
    rebuilt = Marks()
    rebuilt.load(ledger.read(store))
    assert sorted(rebuilt._units.items()) == sorted(marks._units.items())
    assert len(rebuilt) == 4 + 3  # a: samples, 1m, 1h, events; b: samples, 1m, 1h


def test_marks_are_counted_and_pruned_by_day():
    marks = Marks()
    marks.load([ledger.Mark("samples", "a", 1, 100, 5), ledger.Mark("samples", "a", 1, 101, 6)])
    marks.commit("a", 1, 7, [("samples", 101), ("events", 101)])
    assert len(marks) == 3
    assert marks.stored("a", 1, 5, ("samples", 100)) and not marks.stored("a", 1, 6, ("samples", 100))
    assert marks.prune(101) == 1 and len(marks) == 2
    assert not marks.stored("a", 1, 5, ("samples", 100))  # a frame of that day is refused anyway
    assert marks.frame_done("a", 1, 7) and not marks.frame_done("a", 1, 8)


class FailingAfter(Writer):
    """The real Writer, whose insert into `target` raises once, after the tables before it took
    their rows (a disk that fills up between two of a group's inserts, say)."""

    def __init__(self, store, target: str):
        super().__init__(ThreadStores(lambda: store))
        self.target = target

    def _timed(self, store, target, block, table=""):
        if target == self.target:
            self.target = ""
            raise RuntimeError(f"{target}: no space left on device")
        super()._timed(store, target, block, table)


def test_a_write_that_failed_halfway_is_repaired_without_a_restart(store):
    """samples took the group's rows, samples_1m's insert raised: the resend (same process) must
    not write samples again. The marks are read again from the store's ledger before any frame
    joins (found by review: without it the resend wrote samples twice)."""
    writer = FailingAfter(store, "samples_1m_feed")
    c = GroupCommitter(writer.write, Marks(), inline=True, reload=lambda: ledger.read(store))
    t = now_ms()
    with pytest.raises(StoreUnavailable, match="no space left"):
        c.submit(frame("a", 1, [t, t + 10]), Stream()).result()
    assert (count(store, "samples"), count(store, "samples_1m", "NOT startsWith(name, '#')")) == (2, 0)
    assert c.submit(frame("a", 1, [t, t + 10]), Stream()).result() == "OK"  # the resend
    assert count(store, "samples") == 2  # once
    assert store.query(f"SELECT sum(count) FROM {store.db}.samples_1m WHERE name = 'c.g'")[0][0] == 2


def test_frames_are_refused_while_the_ledger_cannot_be_read_again(store):
    calls = []

    def reload():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("store does not answer")
        return ledger.read(store)

    c = GroupCommitter(FailingAfter(store, "samples").write, Marks(), max_age_s=0.0, reload=reload)
    c.start()
    t = now_ms()
    with pytest.raises(StoreUnavailable):
        c.submit(frame("a", 1, [t]), Stream()).result(10)
    deadline = time.monotonic() + 10
    while True:  # refused until the second read of the ledger succeeded (a second later)
        try:
            assert c.submit(frame("a", 1, [t]), Stream()).result(10) == "OK"
            break
        except StoreUnavailable as exc:
            assert "read again from the store" in str(exc)
            assert time.monotonic() < deadline
            time.sleep(0.1)
    c.stop()
    assert len(calls) == 2 and count(store, "samples") == 1
