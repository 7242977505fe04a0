"""The 1m and 1h rollups in the store: the same sum, count, min, max and last as the raw samples
over the same window, and a resent frame (same insert token) counted once in every table."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary

WHERE = " WHERE ts >= toDateTime({lo:UInt32}) AND ts < toDateTime({hi:UInt32})"


def block(series_id: int, times_ms: np.ndarray, values: np.ndarray) -> pa.Table:
    n = len(values)
    return blocks.block(
        tables.SAMPLES,
        n,
        {
            "series_id": np.full(n, series_id, dtype=np.uint64),
            "name": Dictionary(["cpu"], np.zeros(n, dtype=np.uint32)),
            "ts": times_ms,
            "value": values,
        },
    )


def test_raw_1m_and_1h_agree(store):
    hour = 3_600_000
    start = (int(time.time() * 1000) // hour - 3) * hour  # three whole hours ago
    rng = np.random.default_rng(7)
    for series_id in (1, 2):
        times = start + np.arange(0, 3 * hour, 10_000)  # 10 s points over three hours
        values = np.round(rng.normal(50, 20, times.shape[0]), 3)
        for i, chunk in enumerate(np.array_split(np.arange(times.shape[0]), 7)):  # 7 frames
            store.insert("samples", block(series_id, times[chunk], values[chunk]), f"a:1:{series_id}{i}")
    store.insert("samples", block(1, times[:10], values[:10]), "a:1:10")  # a resent frame
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
            f"{WHERE} GROUP BY series_id ORDER BY series_id",
            window,
        )
        for r, x in zip(raw, rolled, strict=True):
            assert (x[0], x[1], x[3], x[4], x[5]) == (r[0], r[1], r[3], r[4], r[5]), table
            assert abs(x[2] - r[2]) <= 1e-9 * abs(r[2])  # float sums added in another order
    buckets = store.query(f"SELECT uniqExact(ts) FROM {db}.samples_1m WHERE series_id = 1")[0][0]
    assert buckets == 180


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
        stamp = datetime.fromtimestamp(t / 1000, UTC)
        rows.append([7, "lat", stamp, round(float(rng.uniform(0, 50)), 3), sum(counts), bounds, counts])
    cols = ["series_id", "name", "ts", "sum", "count", "bounds", "counts"]
    table = f"{store.db}.histograms"
    for i in range(0, len(rows), 100):
        store.client.insert(table, rows[i : i + 100], cols, settings={"insert_deduplication_token": f"h{i}"})
    store.client.insert(table, rows[:100], cols, settings={"insert_deduplication_token": "h0"})  # a resend
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
            f"{grouped}",
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
