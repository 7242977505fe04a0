"""The schema as ClickHouse reports it (system.tables, system.columns), not as our DDL strings
say: codecs, TTLs, migrations recorded and idempotent, retention changed in place."""

from __future__ import annotations

import uuid

import pytest

from ferry.collector.storage import migrate
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store, StoreError

ALL = [m.version for m in migrate.MIGRATIONS]


@pytest.fixture
def bare(store_dsn):
    """A Store on a database that does not exist yet."""
    s = Store.open(store_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()


def engines(store: Store) -> dict[str, str]:
    return dict(
        store.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {d:String}", {"d": store.db}
        )
    )


def codecs(store: Store, table: str) -> dict[str, str]:
    rows = store.query(
        "SELECT name, compression_codec FROM system.columns"
        " WHERE database = {d:String} AND table = {t:String}",
        {"d": store.db, "t": table},
    )
    return dict(rows)


def test_codecs_as_clickhouse_reports_them(store):
    samples = codecs(store, "samples")
    assert samples["ts"] == "CODEC(DoubleDelta, ZSTD(1))"
    assert samples["value"] == "CODEC(Delta(8), ZSTD(5))"  # migrations 5 and 6 (docs/storage.md)
    assert samples["series_id"] == "CODEC(ZSTD(1))"
    assert codecs(store, "histograms")["count"] == "CODEC(T64, ZSTD(1))"
    assert codecs(store, "events")["ts"] == "CODEC(Delta(8), ZSTD(1))"
    assert codecs(store, "logs")["message"] == "CODEC(ZSTD(3))"
    rollup = codecs(store, "samples_1m")
    assert rollup["ts"] == "CODEC(DoubleDelta, ZSTD(1))" and rollup["count"] == "CODEC(T64, ZSTD(1))"
    assert rollup["min"] == rollup["max"] == rollup["sum"] == "CODEC(Delta(8), ZSTD(3))"
    assert rollup["last"] == "CODEC(ZSTD(3))"  # an argMax state: Delta takes fixed-width values
    assert codecs(store, "samples_1h")["sum"] == "CODEC(Delta(8), ZSTD(3))"
    assert codecs(store, "histograms")["sum"] == "CODEC(ZSTD(3))"  # migration 5 only
    types = dict(
        store.query(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'samples'",
            {"d": store.db},
        )
    )
    assert types["name"] == "LowCardinality(String)"


def test_ttls_and_partitions_as_clickhouse_reports_them(store):
    tables = engines(store)
    for table, days in (
        ("samples", 15),
        ("histograms", 15),
        ("events", 30),
        ("logs", 15),
        ("samples_1m", 90),
        ("samples_1h", 730),
        ("histograms_1m", 90),
        ("histograms_1h", 730),
    ):
        assert f"TTL toDateTime(ts) + toIntervalDay({days})" in tables[table], tables[table]
        assert "PARTITION BY toDate(ts)" in tables[table]
        assert "non_replicated_deduplication_window = 10000" in tables[table]
    for table in ("samples", "samples_1m", "samples_1h"):  # migration 6
        assert "min_compress_block_size = 1048576" in tables[table], tables[table]
    assert "min_compress_block_size" not in tables["histograms"]


def test_migrations_are_recorded_and_idempotent(bare):
    first = bare.ensure_schema(SchemaOptions(database=bare.db))
    assert first.applied == ALL and first.ttl_changed == {}
    versions = bare.query(f"SELECT version, description FROM {bare.db}.schema_version ORDER BY version")
    assert [v for v, _ in versions] == ALL
    again = bare.ensure_schema(SchemaOptions(database=bare.db))
    assert again.applied == [] and again.ttl_changed == {}
    assert bare.query(f"SELECT count() FROM {bare.db}.schema_version")[0][0] == len(ALL)


def test_retention_change_alters_the_tables_in_place(bare):
    bare.ensure_schema(SchemaOptions(database=bare.db))
    bare.client.command(
        f"INSERT INTO {bare.db}.samples (series_id, name, ts, value) VALUES (1, 'm', now64(3), 1.5)"
    )
    report = bare.ensure_schema(SchemaOptions(database=bare.db, raw_ttl_days=45, logs_ttl_days=7))
    assert report.applied == [] and report.ttl_changed == {"samples": 45, "histograms": 45, "logs": 7}
    tables = engines(bare)
    assert "toIntervalDay(45)" in tables["samples"] and "toIntervalDay(7)" in tables["logs"]
    assert "toIntervalDay(30)" in tables["events"]  # unchanged
    assert bare.query(f"SELECT count() FROM {bare.db}.samples")[0][0] == 1  # data kept


def test_a_store_from_before_schema_version_is_adopted_with_its_data(bare):
    opts = SchemaOptions(database=bare.db)
    for statement in migrate.MIGRATIONS[0].statements(opts):  # what an older collector created
        bare.client.command(statement)
    bare.client.command(
        f"INSERT INTO {bare.db}.samples (series_id, name, ts, value) VALUES (1, 'm', now64(3), 2.5)"
    )
    histogram = "(2, 'h', now64(3), 4.0, 3, [1, 2], [1, 1, 1])"
    columns = "series_id, name, ts, sum, count, bounds, counts"
    bare.client.command(f"INSERT INTO {bare.db}.histograms ({columns}) VALUES {histogram}")
    report = bare.ensure_schema(opts)
    assert report.applied == ALL
    assert bare.query(f"SELECT value FROM {bare.db}.samples")[0][0] == 2.5
    assert {"events", "logs", "schema_version", "samples_1m", "samples_1h"} <= set(engines(bare))
    # the rollups were backfilled from the samples stored before them
    assert bare.query(f"SELECT sum(sum), sum(count) FROM {bare.db}.samples_1h")[0] == (2.5, 1)
    assert bare.query(
        f"SELECT bounds, sum(sum), sum(count), sumForEachMerge(counts) FROM {bare.db}.histograms_1h "
        "GROUP BY bounds"
    )[0] == ([1.0, 2.0], 4.0, 3, [1, 1, 1])


def test_a_newer_store_is_refused_with_a_clear_error(bare):
    bare.ensure_schema(SchemaOptions(database=bare.db))
    bare.client.command(f"INSERT INTO {bare.db}.schema_version (version, description) VALUES (99, 'future')")
    with pytest.raises(
        StoreError, match=f"schema is version 99, newer than this collector's {migrate.LATEST}"
    ):
        bare.ensure_schema(SchemaOptions(database=bare.db))


def test_a_store_of_version_6_takes_the_ledger_and_the_feeds(bare):
    """A store as version 6 left it (no identity columns, no ledger projections, rollups fed by
    views on the raw tables), with rows in it: migration 7 adds what it lacks and keeps the rows."""
    from ferry.collector.storage import rollups, tables

    opts = SchemaOptions(database=bare.db)
    bare.ensure_schema(opts)
    db = bare.db
    for feed in tables.FEEDS.values():  # back to version 6
        bare.client.command(f"DROP VIEW {db}.{feed.name.removesuffix('_feed')}_mv")
        bare.client.command(f"DROP TABLE {db}.{feed.name}")
    for raw in tables.RAW:
        bare.client.command(f"ALTER TABLE {db}.{raw} DROP PROJECTION ledger")
        dropped = ["epoch", "seq"] if raw in ("events", "logs") else ["agent_id", "epoch", "seq"]
        bare.client.command(f"ALTER TABLE {db}.{raw} " + ", ".join(f"DROP COLUMN {c}" for c in dropped))
    for rolled in tables.ROLLUPS.values():
        for rollup in rolled:
            bare.client.command(f"ALTER TABLE {db}.{rollup} DROP COLUMN seq")
    bare.client.command(
        f"ALTER TABLE {db}.schema_version DELETE WHERE version >= 7 SETTINGS mutations_sync = 1"
    )
    layout = opts.layout()
    for r in rollups.RESOLUTIONS:  # version 3's views: the 1m rollup from samples, 1h from 1m
        bare.client.command(layout.view(f"{r.table}_mv", r.table, rollups._select(layout, r, True)))
    bare.client.command(f"INSERT INTO {db}.samples VALUES (1, 'm', now64(3), 2.5)")  # version 6's columns
    assert bare.ensure_schema(opts).applied == [v for v in ALL if v >= 7]  # later ones: idempotent
    assert bare.query(f"SELECT value, agent_id, epoch, seq FROM {db}.samples") == [(2.5, "", 0, 0)]
    assert bare.query(f"SELECT sum(sum), sum(count), max(seq) FROM {db}.samples_1h")[0] == (2.5, 1, 0)
    views = dict(
        bare.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = {d:String}"
            " AND engine = 'MaterializedView'",
            {"d": db},
        )
    )
    assert all(f"FROM {db}.{name.removesuffix('_mv')}_feed" in q for name, q in views.items()), views
    assert sorted(views) == sorted(f"{r}_mv" for r in tables.FEEDS)
    sql = (
        f"SELECT agent_id, epoch, toDate(ts), max(seq) FROM {db}.samples GROUP BY agent_id, epoch, toDate(ts)"
    )
    assert len(bare.query(sql + " SETTINGS force_optimize_projection = 1")) == 1  # the ledger answers
