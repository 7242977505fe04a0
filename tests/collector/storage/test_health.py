"""StoreHealth on the real filesystem and the real engine: a store directory removed or replaced
is lost for good; a write that fails makes the store failing until a probe finds every table."""

from __future__ import annotations

import os

import pytest

from ferry.collector.commit import GroupCommitter, Prepared, StoreUnavailable, Stream
from ferry.collector.marks import Marks
from ferry.collector.rows import Identity, RowBuilder
from ferry.collector.storage.health import Anchor, StoreHealth
from ferry.collector.storage.store import StoreError, ThreadStores
from ferry.collector.writer import Writer
from tests import framegen


def test_anchor_sees_a_directory_removed_or_replaced(tmp_path):
    d = tmp_path / "store"
    d.mkdir()
    anchor = Anchor.open(str(d))
    assert anchor.problem() is None
    d.rename(tmp_path / "elsewhere")
    d.mkdir()  # what chDB does when it writes a part into a removed directory
    assert "replaced" in anchor.problem()
    os.rmdir(d)
    os.rmdir(tmp_path / "elsewhere")
    assert "removed" in anchor.problem()
    os.close(anchor.fd)


def test_a_removed_table_directory_is_final(tmp_path):
    d = tmp_path / "table"
    d.mkdir()
    health = StoreHealth("db", (), (Anchor.open(str(d)),))
    health.after_write()
    os.rmdir(d)
    with pytest.raises(StoreError, match="removed"):
        health.after_write()
    d.mkdir()  # even a directory of the same name back: the engine's state no longer matches it
    with pytest.raises(StoreError, match="only a restart"):
        health.before_write()
    health.close()


def _frame(seq: int) -> Prepared:
    batch = framegen.gauge_batch("health.gauge")
    rows = RowBuilder().build(batch, framegen.resource(), Identity("a", 1, seq))
    return Prepared(
        "a", 1, seq, {"samples": rows.samples_block}, rows.series, rows.min_time_ms, rows.max_time_ms
    )


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failed_write_refuses_frames_until_a_probe_finds_the_tables(store):
    clock = Clock()
    health = StoreHealth.of(store)
    health.clock = clock
    assert "samples" in health.tables and health.probe(store)
    committer = GroupCommitter(Writer(ThreadStores(lambda: store), health=health).write, Marks(), inline=True)

    def write(seq: int) -> str:
        return committer.submit(_frame(seq), Stream()).result()

    write(1)
    store.client.command(f"RENAME TABLE {store.db}.samples TO {store.db}.samples_away")
    with pytest.raises(StoreUnavailable, match="samples"):
        write(2)
    assert not health.ok
    with pytest.raises(StoreUnavailable, match="not taking writes: a write failed"):
        write(2)  # refused before any insert
    assert not health.probe(store)
    assert "samples is missing" in health.reason
    store.client.command(f"RENAME TABLE {store.db}.samples_away TO {store.db}.samples")
    assert not health.probe(store)  # the tables are back, but a read proves no write: held 1 s
    clock.now += 1.0
    assert health.probe(store) and health.ok
    assert write(2) == "OK"
    count = store.query(f"SELECT count() FROM {store.db}.samples")[0][0]
    assert count == 2 * len(framegen.gauge_batch("health.gauge"))
    health.close()


def test_writes_failing_in_a_row_hold_the_store_failing_longer(store):
    clock = Clock()
    health = StoreHealth.of(store)
    health.clock = clock
    holds = []
    for _ in range(7):
        health.write_failed(RuntimeError("disk full"))
        holds.append(health.hold())
        clock.now += health.hold() - 0.01
        assert not health.probe(store)
        clock.now += 0.01
        assert health.probe(store)
    assert holds == [1, 2, 4, 8, 16, 30, 30]
    health.after_write()  # an insert committed: the next failure is held 1 s again
    health.write_failed(RuntimeError("disk full"))
    assert health.hold() == 1
    health.close()


def test_the_embedded_store_anchors_its_root_definitions_and_parts(store):
    health = StoreHealth.of(store)
    if not store.path:
        pytest.skip("a ClickHouse server keeps its own directories")
    paths = {a.path for a in health.anchors}
    assert store.path in paths and f"{store.path}/metadata" in paths
    rows = store.query("SELECT data_paths FROM system.tables WHERE database = {db:String}", {"db": store.db})
    data = {p.rstrip("/") for (data_paths,) in rows for p in data_paths}
    assert len(data) >= 6 and data <= paths  # samples, series, histograms, agents, events, logs, ...
    health.close()
