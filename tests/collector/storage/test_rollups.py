"""The 1m and 1h rollups in the store, written as the collector writes them (the raw rows into the
raw table and into each rollup's feed, through the real Writer): the same sum, count, min, max
and last as the raw samples over the same window, and a resent frame counted once in every
table."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa

from ferry.collector.rows import Identity
from ferry.collector.storage import blocks, ledger, tables
from ferry.collector.storage.blocks import Dictionary, Ragged
from tests.collector.groups import committer, write

WHERE = " WHERE ts >= toDateTime({lo:UInt32}) AND ts < toDateTime({hi:UInt32})"


def block(series_id: int, times_ms: np.ndarray, values: np.ndarray, frame: Identity) -> pa.Table:
    n = len(values)
    return blocks.block(
        tables.SAMPLES,
        n,
        {
            "series_id": np.full(n, series_id, dtype=np.uint64),
            "name": Dictionary(["cpu"], np.zeros(n, dtype=np.uint32)),
            "ts": times_ms,
            "value": values,
            **frame.columns(n),
        },
    )


def test_raw_1m_and_1h_agree(store):
    hour = 3_600_000
    start = (int(time.time() * 1000) // hour - 3) * hour  # three whole hours ago
    rng = np.random.default_rng(7)
    c = committer(store)
    for series_id in (1, 2):
        times = start + np.arange(0, 3 * hour, 10_000)  # 10 s points over three hours
        values = np.round(rng.normal(50, 20, times.shape[0]), 3)
        for i, chunk in enumerate(np.array_split(np.arange(times.shape[0]), 7)):  # 7 frames
            frame = Identity(f"a{series_id}", 1, i + 1)
            assert write(c, frame, {"samples": block(series_id, times[chunk], values[chunk], frame)}) == "OK"
    frame = Identity("a2", 1, 7)  # a resent frame: every table holds it
    assert write(c, frame, {"samples": block(2, times[-10:], values[-10:], frame)}) == "DUPLICATE"
    db = store.db
    window = {"lo": start // 1000, "hi": (start + 3 * hour) // 1000}
    raw = store.query(
        f"SELECT series_id, count(), sum(value), min(value), max(value), argMax(value, ts) FROM {db}.samples"
        f"{WHERE} GROUP BY series_id ORDER BY series_id",
        window,
    )
    assert [r[1] for r in raw] == [1080, 1080]
    for table in ("samples_1m", "samples_1h"):
        rolled = store.query(
            f"SELECT series_id, sum(count), sum(sum), min(min), max(max), argMaxMerge(last) FROM {db}.{table}"
            f"{WHERE} AND NOT startsWith(name, '#') GROUP BY series_id ORDER BY series_id",
            window,
        )
        for r, x in zip(raw, rolled, strict=True):
            assert (x[0], x[1], x[3], x[4], x[5]) == (r[0], r[1], r[3], r[4], r[5]), table
            assert abs(x[2] - r[2]) <= 1e-9 * abs(r[2])  # float sums added in another order
    buckets = store.query(f"SELECT uniqExact(ts) FROM {db}.samples_1m WHERE name = 'cpu' AND series_id = 1")[
        0
    ][0]
    assert buckets == 180


def ragged(rows: list[list], dtype) -> Ragged:
    return Ragged(np.array([len(r) for r in rows]), np.concatenate(rows).astype(dtype))


def test_histogram_rollups_hold_the_raw_bucket_counts(store):
    """Per series and bucket: the sum and count of observations and the bucket counts added
    element-wise, per bound list; a resent frame is counted once."""
    hour = 3_600_000
    start = (int(time.time() * 1000) // hour - 3) * hour
    rng = np.random.default_rng(11)
    times = start + np.arange(0, 2 * hour, 15_000)  # 480 points; the bounds change at the 401st
    rows = []
    for i, t in enumerate(times.tolist()):
        bounds = [0.1, 0.5, 1.0] if i < 400 else [0.2, 1.0]
        counts = rng.integers(0, 20, len(bounds) + 1).tolist()
        rows.append((t, round(float(rng.uniform(0, 50)), 3), sum(counts), bounds, counts))
    table = f"{store.db}.histograms"
    c = committer(store)

    def frame_of(part: list, seq: int) -> dict[str, pa.Table]:
        n = len(part)
        return {
            "histograms": blocks.block(
                tables.HISTOGRAMS,
                n,
                {
                    "series_id": np.full(n, 7, dtype=np.uint64),
                    "name": Dictionary(["lat"], np.zeros(n, dtype=np.uint32)),
                    "ts": np.array([r[0] for r in part], dtype=np.int64),
                    "sum": np.array([r[1] for r in part]),
                    "count": np.array([r[2] for r in part], dtype=np.uint64),
                    "bounds": Ragged(
                        np.array([len(r[3]) for r in part]), np.concatenate([r[3] for r in part])
                    ),
                    "counts": Ragged(
                        np.array([len(r[4]) for r in part]),
                        np.concatenate([r[4] for r in part]).astype(np.uint64),
                    ),
                    **Identity("h", 1, seq).columns(n),
                },
            )
        }

    for i in range(0, len(rows), 100):
        assert write(c, Identity("h", 1, i // 100 + 1), frame_of(rows[i : i + 100], i // 100 + 1)) == "OK"
    assert write(c, Identity("h", 1, 1), frame_of(rows[:100], 1)) == "DUPLICATE"  # a resend
    db = store.db
    window = {"lo": start // 1000, "hi": (start + 2 * hour) // 1000}
    grouped = "GROUP BY b ORDER BY b"
    raw = store.query(
        f"SELECT bounds AS b, count(), sum(sum), sum(count), sumForEach(counts) FROM {table}"
        f"{WHERE} {grouped}",
        window,
    )
    assert [r[1] for r in raw] == [400, 80]  # points with bounds [0.1, 0.5, 1], then [0.2, 1]
    for rollup in ("histograms_1m", "histograms_1h"):
        rolled = store.query(
            f"SELECT bounds AS b, sum(sum), sum(count), sumForEachMerge(counts) FROM {db}.{rollup}{WHERE} "
            f"AND NOT startsWith(name, '#') {grouped}",
            window,
        )
        assert [(r[0], r[3], r[4]) for r in raw] == [(x[0], x[2], x[3]) for x in rolled], rollup
        for r, x in zip(raw, rolled, strict=True):
            assert abs(x[1] - r[2]) <= 1e-9 * r[2], rollup
    # the bounds changed 100 minutes in: the second hour holds a row per bound list
    hours = store.query(
        f"SELECT ts, bounds FROM {db}.histograms_1h FINAL WHERE series_id = 7 ORDER BY ts, bounds"
    )
    assert [len(b) for _, b in hours] == [3, 3, 2]


def test_one_insert_into_a_feed_makes_one_part_per_day_however_many_rows(store):
    """A view's output is cut at ~1 M rows by default, each cut its own part, which would split a
    group's rollup rows from their ledger row (measured: 2.5 M rows made 3 parts of samples_1m).
    Store.insert asks for whole blocks: one part, holding the ledger row with the rows."""
    db = store.db
    store.client.command(f"SYSTEM STOP MERGES {db}.samples_1m")
    n = 1_100_000  # distinct series, one point each: the view's output is as long as its input
    t = (int(time.time()) - 600) * 1000
    frame = Identity("big", 3, 1)
    rows = blocks.block(
        tables.SAMPLES,
        n,
        {
            "series_id": np.arange(n, dtype=np.uint64),
            "name": Dictionary(["big"], np.zeros(n, dtype=np.uint32)),
            "ts": np.full(n, t, dtype=np.int64),
            "value": np.ones(n),
            **frame.columns(n),
        },
    )
    store.insert(
        "samples_1m_feed",
        pa.concat_tables(
            [rows, ledger.rollup_rows("samples_1m", {("big", 3, t // ledger.DAY_MS): 1})]
        ).combine_chunks(),
    )
    parts = store.query(
        "SELECT count(), sum(rows) FROM system.parts"
        " WHERE database = {d:String} AND table = 'samples_1m' AND active",
        {"d": db},
    )
    assert parts == [(1, n + 1)]
