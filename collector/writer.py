"""Writes one frame's rows to the store, with the frame's dedup token on every table.

Called from the ingest pipeline on worker threads. Each thread gets its own Store on the same
DSN (a clickhouse-connect client serialises its calls). The series table is written only for
series this process has not written within `series_refresh_s`, so steady-state frames cost one
insert (samples), plus one each for histograms and each record kind when the frame carries them.

With a StoreHealth, a frame is written only while the store takes writes, and `write` returns
only once the health check after the inserts says the rows are in the store: an insert that
returned is not enough (see ferry.collector.storage.health). Anything else raises, and the
pipeline answers UNAVAILABLE instead of acking.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pyarrow as pa

from ferry.collector.rows import FrameRows, SeriesRow
from ferry.collector.storage import blocks, tables
from ferry.collector.storage.health import StoreHealth
from ferry.collector.storage.store import ThreadStores


class Writer:
    def __init__(
        self, stores: ThreadStores, series_refresh_s: float = 3600.0, health: StoreHealth | None = None
    ):
        self.stores = stores
        self.health = health
        self._lock = threading.Lock()
        self._written: dict[int, float] = {}  # series_id -> monotonic time its row was last written
        self._refresh = series_refresh_s

    def write(self, rows: FrameRows, token: str) -> None:
        if self.health is None:
            self._insert(rows, token)
            return
        self.health.before_write()
        try:
            self._insert(rows, token)
        except Exception as exc:
            self.health.write_failed(exc)
            raise
        self.health.after_write()

    def _insert(self, rows: FrameRows, token: str) -> None:
        store = self.stores.get()
        fresh = self._series_to_write(rows)
        if fresh:
            store.insert("series", _series_block(fresh, rows), token)
        if rows.histograms_block is not None:
            store.insert("histograms", rows.histograms_block, token)
        if rows.samples_block is not None:
            store.insert("samples", rows.samples_block, token)
        for table, block in rows.records.items():
            store.insert(table, block, token)
        if fresh:
            now = time.monotonic()
            with self._lock:
                for r in fresh:
                    self._written[r.series_id] = now

    def _series_to_write(self, rows: FrameRows) -> list[SeriesRow]:
        now = time.monotonic()
        with self._lock:
            return [r for r in rows.series if now - self._written.get(r.series_id, -1e18) > self._refresh]


def _series_block(fresh: list[SeriesRow], rows: FrameRows) -> pa.Table:
    n = len(fresh)
    return blocks.block(
        tables.SERIES,
        n,
        {
            "series_id": np.array([r.series_id for r in fresh], dtype=np.uint64),
            "name": [r.name for r in fresh],
            "kind": [r.kind for r in fresh],
            "unit": [r.unit for r in fresh],
            "labels": [r.labels for r in fresh],
            "host": [r.host for r in fresh],
            "first_seen": np.full(n, rows.min_time_ms),
            "last_seen": np.full(n, rows.max_time_ms),
        },
    )
