"""Writes a group (`ferry.collector.commit.Group`) to the store: one insert per table.

Runs on the committer thread, with a Store of its own. In order: the `series` rows of the series
tables (per host) this process has not written within `series_refresh_s`, the `agents` rows that are due
(`ferry.collector.agents`), then each raw table's rows and each rollup's rows (through its feed,
with its ledger rows: `ferry.collector.storage.ledger`). Every insert is one block, so each
part the engine makes of it (one per day) holds its rows and their ledger together.

With a StoreHealth, a group is written only while the store takes writes, and `write` returns
only once the health check after the inserts says the rows are in the store: an insert that
returned is not enough (see ferry.collector.storage.health). Anything else raises, and the
committer answers UNAVAILABLE to the group's frames instead of acking.

Test-only: `fault_after` (the collector takes it from the environment variable
`FERRY_FAULT_AFTER_INSERT`) names a table; right after the first insert into it returned the
process SIGKILLs itself, between two tables of one group (tests/integration/test_group_commit.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import OrderedDict

import numpy as np
import pyarrow as pa

from ferry.collector import selfmetrics as m
from ferry.collector.agents import AgentRecorder
from ferry.collector.commit import Group
from ferry.collector.rows import SeriesRow
from ferry.collector.storage import blocks, ledger, tables
from ferry.collector.storage.health import StoreHealth
from ferry.collector.storage.store import ThreadStores

FAULT_ENV = "FERRY_FAULT_AFTER_INSERT"


class Writer:
    def __init__(
        self,
        stores: ThreadStores,
        series_refresh_s: float = 3600.0,
        health: StoreHealth | None = None,
        agents: AgentRecorder | None = None,
        fault_after: str = "",
        max_tables: int = 200_000,
    ):
        self.stores = stores
        self.health = health
        self.agents = agents
        self.fault_after = fault_after
        self._lock = threading.Lock()
        # series table key (ferry.collector.rows.SeriesTable) -> monotonic time its rows were written
        self._written: OrderedDict[tuple, float] = OrderedDict()
        self.max_tables = max_tables
        self._refresh = series_refresh_s

    def write(self, group: Group) -> None:
        if self.health is None:
            self._insert(group)
            return
        self.health.before_write()
        try:
            self._insert(group)
        except Exception as exc:
            self.health.write_failed(exc)
            raise
        self.health.after_write()

    def _insert(self, group: Group) -> None:
        store = self.stores.get()
        fresh, written = self._series_to_write(group)
        if fresh:
            self._timed(store, "series", _series_block(fresh))
        sighted: list[str] = []
        if self.agents is not None:
            block, sighted = self.agents.take(
                (p.frame.agent_id, p.frame.host, p.frame.version, p.frame.address) for p in group.frames
            )
            if block is not None:
                try:
                    self._timed(store, "agents", block)
                except Exception:
                    self.agents.forget(sighted)
                    raise
        for table in _written_tables(group):
            parts = [p.writes[table] for p in group.frames if table in p.writes]
            if table in tables.FEEDS:
                marks: dict[tuple[str, int, int], int] = {}
                for p in group.frames:
                    f = p.frame
                    for day in p.units.get(table, ()):
                        k = (f.agent_id, f.epoch, day)
                        marks[k] = max(marks.get(k, 0), f.seq)
                parts.append(ledger.rollup_rows(table, marks))
                target = tables.FEEDS[table].name
            else:
                target = table
            block = parts[0] if len(parts) == 1 else pa.concat_tables(parts).combine_chunks()
            self._timed(store, target, block, table)
        if fresh:
            now = time.monotonic()
            with self._lock:
                for key in written:
                    self._written[key] = now
                    self._written.move_to_end(key)
                while len(self._written) > self.max_tables:
                    self._written.popitem(last=False)

    def _timed(self, store, target: str, block: pa.Table, table: str = "") -> None:
        started = time.perf_counter()
        store.insert(target, block)
        m.INSERT_SECONDS.labels(table or target).observe(time.perf_counter() - started)
        if self.fault_after and (table or target) == self.fault_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def _due(self, key: tuple | None, now: float) -> bool:
        return key is None or now - self._written.get(key, -1e18) > self._refresh

    def _series_to_write(self, group: Group) -> tuple[dict[int, tuple[SeriesRow, int, int]], list[tuple]]:
        """Series due a row, with the first and last time the group's frames saw them, and the
        series tables (with their hosts) those rows are for. A table's rows are written when
        this process has not written them within `series_refresh_s` (an unrecognised table's,
        key None, with every frame)."""
        now = time.monotonic()
        out: dict[int, tuple[SeriesRow, int, int]] = {}
        keys: list[tuple] = []
        with self._lock:
            due = [
                p.frame
                for p in group.frames
                if p.frame.series is not None
                and (
                    p.frame.series.key is None
                    or now - self._written.get(p.frame.series.key, -1e18) > self._refresh
                )
            ]
        for f in due:
            if f.series.key is not None:
                if f.series.key in keys:
                    continue
                keys.append(f.series.key)
            for r in f.series.rows():
                seen = out.get(r.series_id)
                if seen is None:
                    out[r.series_id] = (r, f.min_time_ms, f.max_time_ms)
                else:
                    out[r.series_id] = (r, min(seen[1], f.min_time_ms), max(seen[2], f.max_time_ms))
        return out, keys


def _written_tables(group: Group) -> list[str]:
    """The tables the group has rows for, raw tables before their rollups."""
    names = {t for p in group.frames for t in p.writes}
    order = [t for raw in tables.RAW for t in (raw, *tables.ROLLUPS.get(raw, ()))]
    return [t for t in order if t in names]


def _series_block(fresh: dict[int, tuple[SeriesRow, int, int]]) -> pa.Table:
    rows = list(fresh.values())
    n = len(rows)
    return blocks.block(
        tables.SERIES,
        n,
        {
            "series_id": np.array([r.series_id for r, _, _ in rows], dtype=np.uint64),
            "name": [r.name for r, _, _ in rows],
            "kind": [r.kind for r, _, _ in rows],
            "unit": [r.unit for r, _, _ in rows],
            "labels": [r.labels for r, _, _ in rows],
            "host": [r.host for r, _, _ in rows],
            "first_seen": np.fromiter((a for _, a, _ in rows), dtype=np.int64, count=n),
            "last_seen": np.fromiter((b for _, _, b in rows), dtype=np.int64, count=n),
        },
    )
