"""The collector's cache of series tables (ferry.collector.seriescache) through the real pipeline
and store: a table recognised by its bytes is decoded, checked and hashed once, yet each host
gets its own series ids and rows, a frame's points are still checked, and a table that differs
by a byte is checked again."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferry.collector.pipeline import FramePipeline
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import MetricBatch
from ferry.wire.frames import pack_frame
from tests import framegen


@pytest.fixture
def stores(store, store_dsn):
    ts = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    yield ts
    ts.close_all()


def _frame(batch: MetricBatch, agent: str, seq: int) -> ingest_pb2.Frame:
    payload = encode_payload(framegen.resource(agent, f"host-{agent}"), batch)
    return pack_frame(agent, 1, seq, payload, len(batch))


def _series(store) -> list[tuple]:
    return store.query(
        f"SELECT name, labels['host'], labels['idx'] FROM {store.db}.series FINAL ORDER BY 2, 3"
    )


def test_hosts_sharing_a_table_each_get_their_own_series(stores, store):
    pipeline = FramePipeline.writing(Writer(stores))
    batch = framegen.gauge_batch("cache.g", n_series=3, points=2)
    assert pipeline.handle(_frame(batch, "a", 1)).status == ingest_pb2.OK
    assert pipeline.handle(_frame(batch, "b", 1)).status == ingest_pb2.OK  # the same table's bytes
    assert len(pipeline.series._tables) == 1 and len(pipeline.series._hosts) == 2
    assert _series(store) == [("cache.g", h, str(i)) for h in ("host-a", "host-b") for i in range(3)]
    ids = store.query(
        f"SELECT labels['host'], groupArray(series_id) FROM (SELECT * FROM {store.db}.series FINAL "
        "ORDER BY series_id) GROUP BY 1 ORDER BY 1"
    )
    assert set(ids[0][1]).isdisjoint(ids[1][1])
    # the samples point at those series: per host, 3 series x 2 points
    rows = store.query(
        f"SELECT s.labels['host'], count() FROM {store.db}.samples AS p "
        f"JOIN (SELECT * FROM {store.db}.series FINAL) AS s ON p.series_id = s.series_id "
        "GROUP BY 1 ORDER BY 1"
    )
    assert rows == [("host-a", 6), ("host-b", 6)]


def test_a_known_table_does_not_spare_the_points_their_checks(stores):
    pipeline = FramePipeline.writing(Writer(stores))
    batch = framegen.gauge_batch("cache.g", n_series=2, points=2)
    assert pipeline.handle(_frame(batch, "a", 1)).status == ingest_pb2.OK
    bad = MetricBatch(batch.series, batch.series_ref, batch.time_ms, np.array([1.0, math.nan, 2.0, 3.0]))
    ack = pipeline.handle(_frame(bad, "a", 2))
    assert ack.status == ingest_pb2.REJECTED and "non-finite value nan" in ack.message
    old = MetricBatch(batch.series, batch.series_ref, batch.time_ms - 30 * 86_400_000, batch.value)
    assert "outside the accepted window" in pipeline.handle(_frame(old, "a", 3)).message


def test_a_table_a_byte_away_is_checked_again(stores):
    pipeline = FramePipeline.writing(Writer(stores))
    good = framegen.gauge_batch("cache.g", n_series=2, points=1, labels={"ok": "1"})
    assert pipeline.handle(_frame(good, "a", 1)).status == ingest_pb2.OK
    bad = framegen.gauge_batch("cache.g", n_series=2, points=1, labels={"0k": "1"})  # not a label name
    ack = pipeline.handle(_frame(bad, "a", 2))
    assert ack.status == ingest_pb2.REJECTED and "'0k'" in ack.message
    assert len(pipeline.series._tables) == 1  # only the table that passed is kept


def test_a_hosts_series_rows_are_written_once_per_refresh(store, stores):
    writer = Writer(stores)
    pipeline = FramePipeline.writing(writer)
    batch = framegen.gauge_batch("cache.g", n_series=3, points=1)
    for seq in (1, 2, 3):
        t = batch.time_ms + seq * 1000
        assert (
            pipeline.handle(
                _frame(MetricBatch(batch.series, batch.series_ref, t, batch.value), "a", seq)
            ).status
            == 1
        )
    parts = store.query(
        "SELECT count() FROM system.parts WHERE database = {d:String} AND table = 'series'",
        {"d": store.db},
    )[0][0]
    assert parts == 1  # one insert of series rows for three frames
    writer._refresh = 0.0  # every frame is due again
    t = batch.time_ms + 4000
    assert (
        pipeline.handle(_frame(MetricBatch(batch.series, batch.series_ref, t, batch.value), "a", 4)).status
        == 1
    )
    assert store.query(f"SELECT count() FROM {store.db}.series")[0][0] == 6  # not merged yet: two inserts
