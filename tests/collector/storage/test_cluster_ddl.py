"""`cluster = NAME`: the DDL rendered for a ClickHouse cluster (no cluster runs here, so these
check the rendered statements, and that ClickHouse's own parser reads every one of them), and
the single-node DDL unchanged by it (it runs on the embedded engine in every test run)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from ferry.collector.config import CollectorConfig
from ferry.collector.rows import Identity
from ferry.collector.storage import blocks, migrate, tables
from ferry.collector.storage.blocks import Dictionary
from ferry.collector.storage.layout import Layout
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store
from ferry.runtime.config import ConfigError

CLUSTER = "ferry_cluster"
TABLES = {  # every table the collector reads and writes, and its sharding key
    "series": "series_id",
    "samples": "series_id",
    "histograms": "series_id",
    "agents": "cityHash64(agent_id)",
    "events": "cityHash64(agent_id)",
    "logs": "cityHash64(agent_id)",
    "samples_1m": "series_id",
    "samples_1h": "series_id",
    "histograms_1m": "series_id",
    "histograms_1h": "series_id",
    "alerts": "cityHash64(id)",
    "alert_acks": "cityHash64(id)",
    "silences": "cityHash64(id)",
}


def statements(opts: SchemaOptions) -> list[str]:
    layout = opts.layout()
    out = [migrate.version_table(layout)]  # migration 1 creates the database
    for m in migrate.MIGRATIONS:
        out += m.statements(opts)
    return out + [layout.alter_ttl(t, d) for t, d in migrate.ttl_days(opts).items()]


@pytest.fixture(scope="module")
def cluster_ddl() -> list[str]:
    return statements(SchemaOptions(database="ferry", cluster=CLUSTER))


def creates(ddl: list[str], name: str) -> str:
    (found,) = [s for s in ddl if re.match(rf"CREATE TABLE IF NOT EXISTS ferry\.{name}\b", s)]
    return found


def test_single_node_ddl_names_no_cluster():
    for statement in statements(SchemaOptions(database="ferry")):
        assert "ON CLUSTER" not in statement and "Replicated" not in statement
        assert "Distributed" not in statement and "_local" not in statement, statement


def test_every_statement_runs_on_the_cluster(cluster_ddl):
    for statement in cluster_ddl:
        if statement.startswith(("CREATE", "ALTER")):
            assert f" ON CLUSTER {CLUSTER}" in statement, statement
    # db, version, each table (local + Distributed), the views of migrations 3/4 and 7, the feeds,
    # migration 9's new series table (local + Distributed, exchanged with series_local)
    creates = 2 + 2 * len(TABLES) + 4 + 4 + 2 * len(tables.FEEDS) + 2
    assert sum(s.startswith("CREATE") for s in cluster_ddl) == creates


@pytest.mark.parametrize("table", TABLES)
def test_each_table_is_replicated_and_distributed(cluster_ddl, table):
    local = creates(cluster_ddl, f"{table}_local")
    engine = re.search(r"ENGINE = (\w+)\('([^']*)', '([^']*)'", local)
    assert engine and engine.group(1).startswith("Replicated"), local
    assert engine.group(2) == f"/clickhouse/tables/{{shard}}/ferry/{table}_local"
    assert engine.group(3) == "{replica}"
    distributed = creates(cluster_ddl, table)
    assert distributed == (
        f"CREATE TABLE IF NOT EXISTS ferry.{table} ON CLUSTER {CLUSTER} AS ferry.{table}_local "
        f"ENGINE = Distributed('{CLUSTER}', 'ferry', '{table}_local', {TABLES[table]})"
    )


def test_engines_keep_their_family_and_arguments(cluster_ddl):
    path = "'/clickhouse/tables/{shard}/ferry/agents_local', '{replica}'"
    assert f"ReplicatedReplacingMergeTree({path}, last_seen)" in creates(cluster_ddl, "agents_local")
    assert "ENGINE = ReplicatedAggregatingMergeTree(" in creates(cluster_ddl, "samples_1h_local")
    samples = creates(cluster_ddl, "samples_local")
    assert "SETTINGS replicated_deduplication_window = 10000" in samples
    assert "non_replicated" not in samples
    assert "SETTINGS" not in creates(cluster_ddl, "series_local")  # no insert tokens to remember


def test_views_roll_up_each_shard_and_the_backfill_reads_the_whole_cluster(cluster_ddl):
    views = {
        m.group(1): (m.group(2), m.group(3))
        for s in cluster_ddl
        if (
            m := re.match(
                r"CREATE MATERIALIZED VIEW .*?ferry\.(\w+) ON CLUSTER \w+ TO ferry\.(\w+) AS "
                r".*FROM ferry\.(\w+)",
                s,
                re.S,
            )
        )
    }
    # migration 7's views (the last of each name): each rollup from its own feed, on each node
    assert views == {
        "samples_1m_mv": ("samples_1m_local", "samples_1m_feed_local"),
        "samples_1h_mv": ("samples_1h_local", "samples_1h_feed_local"),
        "histograms_1m_mv": ("histograms_1m_local", "histograms_1m_feed_local"),
        "histograms_1h_mv": ("histograms_1h_local", "histograms_1h_feed_local"),
    }
    for view in views:  # the views of migrations 3 and 4 are dropped first
        drop = f"DROP VIEW IF EXISTS ferry.{view} ON CLUSTER {CLUSTER}"
        assert cluster_ddl.index(drop) < max(
            i for i, s in enumerate(cluster_ddl) if f"VIEW IF NOT EXISTS ferry.{view} " in s
        )
    backfills = [s for s in cluster_ddl if s.startswith("INSERT")]
    assert len(backfills) == 4 + 1  # the rollups', and migration 9's copy of series
    for statement in backfills:
        assert "_local" not in statement, statement  # Distributed tables: run once, from one node


def test_feeds_are_null_tables_on_each_node_behind_a_distributed_one(cluster_ddl):
    for feed in tables.FEEDS.values():
        local = creates(cluster_ddl, f"{feed.name}_local")
        assert "ENGINE = Null" in local and "Replicated" not in local
        assert f"ENGINE = Distributed('{CLUSTER}', 'ferry', '{feed.name}_local', series_id)" in creates(
            cluster_ddl, feed.name
        )


def test_identity_columns_reach_the_local_and_the_distributed_tables(cluster_ddl):
    on = f"ON CLUSTER {CLUSTER}"
    for table in tables.RAW:
        for name in (f"{table}_local", table):
            assert any(
                s.startswith(f"ALTER TABLE ferry.{name} {on} ADD COLUMN IF NOT EXISTS") and "seq UInt64" in s
                for s in cluster_ddl
            ), name
        assert f"ALTER TABLE ferry.{table}_local {on} ADD PROJECTION IF NOT EXISTS ledger" in " ".join(
            cluster_ddl
        )


def test_schema_version_is_one_copy_for_the_whole_cluster(cluster_ddl):
    version = creates(cluster_ddl, "schema_version")
    assert "ReplicatedMergeTree('/clickhouse/ferry/ferry/schema_version', '{shard}-{replica}')" in version
    assert "Distributed" not in " ".join(s for s in cluster_ddl if "schema_version" in s)


def test_retention_changes_alter_the_local_tables():
    assert Layout("ferry", CLUSTER).alter_ttl("samples", 30) == (
        f"ALTER TABLE ferry.samples_local ON CLUSTER {CLUSTER} MODIFY TTL toDateTime(ts) + INTERVAL 30 DAY"
    )


def test_codec_and_block_changes_alter_the_local_tables(cluster_ddl):
    on = f"ON CLUSTER {CLUSTER}"
    assert (
        f"ALTER TABLE ferry.samples_local {on} MODIFY COLUMN value Float64 CODEC(Delta, ZSTD(5))"
        in cluster_ddl
    )
    for table in ("samples", "samples_1m", "samples_1h"):
        assert f"ALTER TABLE ferry.{table}_local {on} MODIFY SETTING min_compress_block_size = 1048576" in (
            cluster_ddl
        )


def test_clickhouse_parses_every_cluster_statement(cluster_ddl, store):
    """ClickHouse's own parser (formatQuery, on the embedded engine) reads each statement back
    with its cluster clause and engines; nothing is executed."""
    for statement in cluster_ddl:
        formatted = store.query("SELECT formatQuery({q:String})", {"q": statement})[0][0]
        assert statement.startswith("INSERT") or f"ON CLUSTER {CLUSTER}" in formatted, statement
        for engine in re.findall(r"ENGINE = (\w+)", statement):
            assert re.search(rf"ENGINE = `?{engine}`?", formatted), (engine, formatted)


def test_cluster_names_and_stores_are_checked():
    with pytest.raises(ValueError, match="cluster name 'a-b; DROP' must match"):
        Layout("ferry", "a-b; DROP")
    cfg = CollectorConfig(cluster="main", store="chdb:///tmp/x")
    with pytest.raises(
        ConfigError, match=r"cluster 'main' needs a ClickHouse server store \(http\(s\)://...\), not chdb:"
    ):
        cfg.check()
    CollectorConfig(cluster="main", store="http://ch:8123/ferry").check()
    with pytest.raises(ConfigError, match="cluster name 'x y' must match"):
        CollectorConfig(cluster="x y", store="http://ch:8123/ferry").check()


def test_the_foreground_insert_setting_is_one_clickhouse_knows(store):
    """A cluster store inserts with distributed_foreground_insert=1; on a plain table the setting
    does nothing, but a misspelt setting would fail the insert here."""
    on_cluster = Store(store.client, store.db, cluster=CLUSTER)  # same engine, cluster settings
    n = 3
    block = blocks.block(
        tables.SAMPLES,
        n,
        {
            "series_id": np.arange(n, dtype=np.uint64),
            "name": Dictionary(["m"], np.zeros(n, dtype=np.uint32)),
            "ts": np.full(n, int(time.time() * 1000), dtype=np.int64),
            "value": np.ones(n),
            **Identity("a", 1, 1).columns(n),
        },
    )
    on_cluster.insert("samples", block)
    assert store.query(f"SELECT count() FROM {store.db}.samples")[0][0] == 3
