"""The `store` fixture's database, a copy of the session's template (tests/schema_template.py), is
exactly what `ensure_schema` gives a new database: every test that takes a store relies on it."""

from __future__ import annotations

import uuid

import pytest

from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store


@pytest.fixture
def migrated(store_dsn):
    """A database migrated here, the way the collector does at startup."""
    s = Store.open(store_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    s.ensure_schema(SchemaOptions(database=s.db))
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()


def described(store: Store) -> dict[str, list]:
    """The database as system.tables and system.columns report it, its own name written `DB`."""
    tables = store.query(
        "SELECT name, engine, engine_full, replace(create_table_query, {prefix:String}, 'DB.'),"
        " partition_key, sorting_key, primary_key, dependencies_table"
        " FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": store.db, "prefix": f"{store.db}."},
    )
    columns = store.query(
        "SELECT table, position, name, type, default_kind, default_expression, compression_codec,"
        " comment, is_in_partition_key, is_in_sorting_key, is_in_primary_key"
        " FROM system.columns WHERE database = {db:String} ORDER BY table, position",
        {"db": store.db},
    )
    versions = store.query(f"SELECT version, description FROM {store.db}.schema_version ORDER BY version")
    return {"tables": [list(r) for r in tables], "columns": [list(r) for r in columns], "versions": versions}


def test_a_copy_is_what_ensure_schema_gives(store, migrated):
    copy, fresh = described(store), described(migrated)
    assert len(fresh["tables"]) >= 10 and fresh["versions"]  # the comparison is not of two empties
    assert copy["tables"] == fresh["tables"]
    assert copy["columns"] == fresh["columns"]
    assert copy["versions"] == fresh["versions"]
    assert store.ensure_schema(SchemaOptions(database=store.db)).applied == []  # nothing left to run


def test_a_copys_views_fill_its_own_rollups(store, migrated, schema_template):
    store.client.command(
        f"INSERT INTO {store.db}.samples_1m_feed (series_id, name, ts, value) VALUES (7, 'm', now64(3), 1.5)"
    )
    store.client.command(
        f"INSERT INTO {store.db}.samples_1h_feed (series_id, name, ts, value) VALUES (7, 'm', now64(3), 1.5)"
    )
    count = "SELECT count() FROM {}.samples_1m"
    assert store.query(count.format(store.db))[0][0] == 1
    assert store.query(f"SELECT count() FROM {store.db}.samples_1h")[0][0] == 1
    assert store.query(count.format(schema_template.db))[0][0] == 0  # not the template's
    assert store.query(count.format(migrated.db))[0][0] == 0
