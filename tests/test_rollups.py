"""The 1m and 1h rollups in the store: the same sum, count, min, max and last as the raw samples
over the same window, and a resent frame (same insert token) counted once in every table."""

from __future__ import annotations

import time

import numpy as np

from collector.storage import native

WHERE = " WHERE ts >= toDateTime({lo:UInt32}) AND ts < toDateTime({hi:UInt32})"


def block(series_id: int, times_ms: np.ndarray, values: np.ndarray) -> bytes:
    n = len(values)
    return native.block(
        [
            native.fixed("series_id", "UInt64", np.full(n, series_id, dtype=np.uint64), "<u8"),
            native.low_cardinality("name", ["cpu"], np.zeros(n, dtype=np.uint32)),
            native.fixed("ts", "DateTime64(3, 'UTC')", times_ms.astype(np.int64), "<i8"),
            native.fixed("value", "Float64", values.astype(np.float64), "<f8"),
        ],
        n,
    )


def test_raw_1m_and_1h_agree(store):
    hour = 3_600_000
    start = (int(time.time() * 1000) // hour - 3) * hour  # three whole hours ago
    rng = np.random.default_rng(7)
    for series_id in (1, 2):
        times = start + np.arange(0, 3 * hour, 10_000)  # 10 s points over three hours
        values = np.round(rng.normal(50, 20, times.shape[0]), 3)
        for i, chunk in enumerate(np.array_split(np.arange(times.shape[0]), 7)):  # 7 frames
            store.insert_native(
                "samples", block(series_id, times[chunk], values[chunk]), f"a:1:{series_id}{i}"
            )
    store.insert_native("samples", block(1, times[:10], values[:10]), "a:1:10")  # a resent frame
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
