"""The dedup ledger in the store: what each table holds of each agent's frames, per day.

Raw tables (`tables.RAW`) answer from their `ledger` projection (max(seq) per agent_id, epoch
and day, inside every part, so reading it costs a few rows per part, not a scan); rollups from
their ledger rows (`tables.LEDGER_PREFIX` + agent_id, merged by max). `read` is what the
collector's marks are rebuilt from at start; `rollup_rows` builds the ledger rows a group's
insert into a rollup's feed carries. Days are counted from 1970-01-01 (UTC), like toDate(ts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np
import pyarrow as pa

from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Ragged
from ferry.collector.storage.store import Store

DAY_MS = 86_400_000
_EPOCH_DATE = dt.date(1970, 1, 1)
# a day of a table's ts column, in the column's ticks
_TICKS_PER_DAY = {"DateTime64(3, 'UTC')": DAY_MS, "DateTime64(9, 'UTC')": DAY_MS * 1_000_000}


class Mark(NamedTuple):
    table: str
    agent_id: str
    epoch: int
    day: int
    seq: int


def ticks_per_day(table: str) -> int:
    """How many of `table`'s ts ticks make a day (ms for metrics, ns for records)."""
    return _TICKS_PER_DAY[tables.TABLES[table].column("ts").type]


def read(store: Store, since_day: int = 0) -> Iterator[Mark]:
    """Every table's marks from `since_day` on (epoch 0: rows from before the ledger, skipped)."""
    for raw in tables.RAW:
        sql = (
            f"SELECT agent_id, epoch, toDate(ts), max(seq) FROM {store.db}.{raw} "
            "GROUP BY agent_id, epoch, toDate(ts)"
        )
        for agent_id, epoch, day, seq in store.query(sql):
            d = (day - _EPOCH_DATE).days
            if epoch and d >= since_day:
                yield Mark(raw, agent_id, int(epoch), d, int(seq))
    prefix = tables.LEDGER_PREFIX
    for rolled in tables.ROLLUPS.values():
        for rollup in rolled:
            sql = (
                f"SELECT substring(name, {len(prefix) + 1}), series_id, toDate(ts), max(seq) "
                f"FROM {store.db}.{rollup} WHERE startsWith(name, '{prefix}') "
                "GROUP BY name, series_id, toDate(ts)"
            )
            for agent_id, epoch, day, seq in store.query(sql):
                d = (day - _EPOCH_DATE).days
                if d >= since_day:
                    yield Mark(rollup, agent_id, int(epoch), d, int(seq))


def rollup_rows(rollup: str, marks: Mapping[tuple[str, int, int], int]) -> pa.Table:
    """The ledger rows of a group's insert into `rollup`'s feed: one per (agent_id, epoch, day)
    in `marks`, holding the highest seq of that agent and epoch the insert writes rows of that
    day for. The row lies in that day, so it lands in the same part as the rows it vouches for."""
    feed = tables.FEEDS[rollup]
    n = len(marks)
    keys = list(marks)
    agent_ids = [a for a, _, _ in keys]
    per_day = ticks_per_day(next(raw for raw, rolled in tables.ROLLUPS.items() if rollup in rolled))
    values: dict[str, object] = {
        "series_id": np.fromiter((e for _, e, _ in keys), dtype=np.uint64, count=n),
        "name": [tables.LEDGER_PREFIX + a for a in agent_ids],
        "ts": np.fromiter((d * per_day for _, _, d in keys), dtype=np.int64, count=n),
        "agent_id": agent_ids,
        "epoch": np.fromiter((e for _, e, _ in keys), dtype=np.uint64, count=n),
        "seq": np.fromiter(marks.values(), dtype=np.uint64, count=n),
    }
    zeros = np.zeros(n)
    if "value" in feed.names:  # samples
        values["value"] = zeros
    else:  # histograms: no buckets
        empty = np.zeros(n, dtype=np.int64)
        values.update(
            sum=zeros,
            count=np.zeros(n, dtype=np.uint64),
            bounds=Ragged(empty, np.zeros(0)),
            counts=Ragged(empty, np.zeros(0, dtype=np.uint64)),
        )
    return blocks.block(feed, n, values)
