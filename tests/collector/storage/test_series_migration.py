"""Migration 9: a store made at migration 8 (`series` sorted by (name, series_id), `host` a
SimpleAggregateFunction) with series rows in it is re-sorted by (name, host, series_id) in place:
the same series, the same merged columns, found by the same matchers; and a run cut off at any
point, run again, ends in the same state."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from bench.serieslookup import CPU, fill
from ferry.collector.query.sql import series_where
from ferry.collector.storage import migrate
from ferry.collector.storage.schema import SERIES_9, SERIES_REBUILT, SchemaOptions
from ferry.collector.storage.store import Store
from ferry.v1 import query_pb2

HOSTS = 12  # 12 x 497 series
# `series` as migrations 1-8 left it
SERIES_V8 = dataclasses.replace(
    SERIES_9,
    name="series",
    columns=tuple(
        dataclasses.replace(c, type="SimpleAggregateFunction(any, LowCardinality(String))")
        if c.name == "host"
        else c
        for c in SERIES_9.columns
    ),
    order_by="(name, series_id)",
)
MERGED = (
    "SELECT series_id, name, any(kind), any(unit), any(labels), any(host), min(first_seen), "
    "max(last_seen) FROM {db}.series GROUP BY series_id, name ORDER BY series_id"
)
MATCHERS = [
    [query_pb2.Matcher(label="host", op=query_pb2.EQ, value="h-0003")],
    [query_pb2.Matcher(label="host", op=query_pb2.RE, value="h-000[2-5]")],
    [
        query_pb2.Matcher(label="host", op=query_pb2.NEQ, value="h-0003"),
        query_pb2.Matcher(label="cpu", op=query_pb2.EQ, value="3"),
    ],
    [query_pb2.Matcher(label="host", op=query_pb2.NRE, value="h-00.*")],
    [query_pb2.Matcher(label="absent", op=query_pb2.EQ, value="")],
]


@pytest.fixture
def v8(store_dsn):
    """A store at migration 8 holding HOSTS hosts' series, some written twice (two rows, as
    before a merge, with different first and last seen)."""
    s = Store.open(store_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    opts = SchemaOptions(database=s.db)
    s.ensure_schema(opts)
    s.client.command(f"DROP TABLE {s.db}.series")
    for statement in SERIES_V8.create(opts.layout()):
        s.client.command(statement)
    s.client.command(
        f"ALTER TABLE {s.db}.schema_version DELETE WHERE version >= 9 SETTINGS mutations_sync = 1"
    )
    fill(s, f"{s.db}.series", HOSTS)
    s.client.command(
        f"INSERT INTO {s.db}.series SELECT series_id, name, kind, unit, labels, host, "
        "first_seen - INTERVAL 1 DAY, last_seen + INTERVAL 1 DAY "
        f"FROM {s.db}.series WHERE name = '{CPU}' AND labels['cpu'] = '3'"
    )
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()


def old_lookup(store: Store, matchers) -> list[int]:
    """The series migration 8's condition (every matcher on labels[k]) selects."""
    params: dict = {"metric": CPU}
    where = ["name = {metric:String}"]
    ops = {
        query_pb2.EQ: "{x} = {v}",
        query_pb2.NEQ: "{x} != {v}",
        query_pb2.RE: "match({x}, concat('^(?:', {v}, ')$'))",
        query_pb2.NRE: "NOT match({x}, concat('^(?:', {v}, ')$'))",
    }
    for i, mt in enumerate(matchers):
        params[f"k{i}"], params[f"v{i}"] = mt.label, mt.value
        where.append(ops[mt.op].format(x=f"labels[{{k{i}:String}}]", v=f"{{v{i}:String}}"))
    sql = f"SELECT DISTINCT series_id FROM {store.db}.series WHERE {' AND '.join(where)} ORDER BY series_id"
    return [r[0] for r in store.query(sql, params)]


def new_lookup(store: Store, matchers) -> list[int]:
    params: dict = {}
    cond = series_where(CPU, matchers, params)
    sql = f"SELECT DISTINCT series_id FROM {store.db}.series WHERE {cond} ORDER BY series_id"
    return [r[0] for r in store.query(sql, params)]


def sorting_key(store: Store) -> str:
    sql = "SELECT sorting_key FROM system.tables WHERE database = {d:String} AND name = 'series'"
    return store.query(sql, {"d": store.db})[0][0]


def table_names(store: Store) -> set[str]:
    return {
        r[0]
        for r in store.query("SELECT name FROM system.tables WHERE database = {d:String}", {"d": store.db})
    }


def check_migrated(store: Store, before: list, found: list[list[int]]) -> None:
    assert sorting_key(store) == "name, host, series_id"
    types = dict(
        store.query(
            "SELECT name, type FROM system.columns WHERE database = {d:String} AND table = 'series'",
            {"d": store.db},
        )
    )
    assert types["host"] == "LowCardinality(String)"
    assert SERIES_REBUILT not in table_names(store)
    assert store.query(MERGED.format(db=store.db)) == before
    for matchers, ids in zip(MATCHERS, found, strict=True):
        assert new_lookup(store, matchers) == ids, matchers


def test_a_store_at_migration_8_is_resorted_with_its_series_in_place(v8):
    before = v8.query(MERGED.format(db=v8.db))
    assert len(before) == HOSTS * 497
    found = [old_lookup(v8, m) for m in MATCHERS]
    assert [len(f) for f in found] == [128, 4 * 128, (HOSTS - 1) * 8, 0, 128 * HOSTS]
    assert v8.ensure_schema(SchemaOptions(database=v8.db)).applied == [9]
    check_migrated(v8, before, found)
    assert v8.ensure_schema(SchemaOptions(database=v8.db)).applied == []


@pytest.mark.parametrize("cut_after", ["copy", "exchange"])
def test_a_cut_off_migration_9_run_again_ends_the_same(v8, cut_after):
    """Cut off after its copy (the new table partly or wholly filled, `series` the old one), or
    after its exchange (`series` the new table, the old one under the new table's name)."""
    before = v8.query(MERGED.format(db=v8.db))
    found = [old_lookup(v8, m) for m in MATCHERS]
    statements = migrate.MIGRATIONS[-1].statements(SchemaOptions(database=v8.db))
    upto = next(
        i for i, s in enumerate(statements) if s.startswith("INSERT" if cut_after == "copy" else "EXCHANGE")
    )
    for statement in statements[: upto + 1]:
        v8.client.command(statement)
    assert SERIES_REBUILT in table_names(v8)
    assert v8.ensure_schema(SchemaOptions(database=v8.db)).applied == [9]
    check_migrated(v8, before, found)
