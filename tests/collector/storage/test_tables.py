"""ferry.collector.storage.tables is what the store has and what the collector sends: a migrated
store reports (system.columns, system.tables) exactly the declared columns, types, codecs and
settings, and the blocks the real row builders produce, as ClickHouse reads the Arrow file
`insert_arrow` sends (`DESCRIBE format(Arrow, ...)`), carry exactly the declared columns under
the declared types.
A column added to the declaration, to a migration or to a block builder alone fails here, and
so does a declaration changed without a migration (a fresh store would follow it, existing ones
not)."""

from __future__ import annotations

import hashlib
import re
import time

import pyarrow as pa
import pytest
from clickhouse_connect.driver.query import arrow_buffer
from google.protobuf.descriptor import FieldDescriptor

from ferry.collector.agents import _agents_block
from ferry.collector.alerting import store as alert_store
from ferry.collector.alerting.model import Silence, State, Transition, parse_matchers
from ferry.collector.records_rows import record_block
from ferry.collector.rows import Identity, RowBuilder
from ferry.collector.storage import ledger, migrate, rollups, tables
from ferry.collector.storage.layout import Layout
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.writer import _series_block
from ferry.records import KINDS, RecordKind
from tests import framegen
from tests.paths import ROOT

ROLLUPS = {t for r in rollups.RESOLUTIONS for t in (r.table, r.histogram_table)}  # filled by views
FEEDS = {f.name: f for f in tables.FEEDS.values()}  # Null tables the rollups are written through
WRITTEN = set(tables.TABLES) - ROLLUPS | set(FEEDS)  # the tables the collector inserts blocks into


# A digest of the declared tables at each schema version. A fresh store is created from the
# declaration, so only this notices a change to it that existing stores never get: change the
# declaration with a migration that brings them to it, then record the new digest under its version.
DECLARED_AT = {6: "39b7592b60fa3346", 7: "4cbcf516191f6ba7", 8: "2e7a63bd8d5e6466", 9: "668c16d7ef509d14"}


def declaration_digest() -> str:
    return hashlib.sha256(repr(tuple(tables.TABLES.values())).encode()).hexdigest()[:16]


def test_a_changed_declaration_comes_with_a_migration():
    digest = declaration_digest()
    assert DECLARED_AT.get(migrate.LATEST) == digest, (
        f"the declared tables are {digest}, schema version {migrate.LATEST} recorded "
        f"{DECLARED_AT.get(migrate.LATEST)}: add a migration for stores made before, then record "
        f"{{{migrate.LATEST}: {digest!r}}} in DECLARED_AT"
    )


def reported_columns(store, table: str) -> list[tuple[str, str, str]]:
    rows = store.query(
        "SELECT name, type, compression_codec FROM system.columns"
        " WHERE database = {d:String} AND table = {t:String} ORDER BY position",
        {"d": store.db, "t": table},
    )
    # ClickHouse names Delta's width (Delta(8)); the declaration leaves it to the column's type
    return [(n, t, re.sub(r"\bDelta\(\d+\)", "Delta", c)) for n, t, c in rows]


def declared_columns(table: tables.Table) -> list[tuple[str, str, str]]:
    return [(c.name, c.type, f"CODEC({c.codec})" if c.codec else "") for c in table.columns]


def block_columns(store, block: pa.Table) -> list[tuple[str, str]]:
    """The columns of an insert block as ClickHouse reads the Arrow file `insert_arrow` makes of
    it, each Nullable only where the file's schema says it may hold NULLs."""
    _, data = arrow_buffer(block)
    sql = "DESCRIBE format(Arrow, {b:String}) SETTINGS schema_inference_make_columns_nullable = 'auto'"
    return [tuple(row[:2]) for row in store.query(sql, {"b": bytes(data)})]


def stored_type(type_: str) -> str:
    """The type of the values a column of `type_` holds: SimpleAggregateFunction(f, T) holds Ts
    (Arrow has no aggregate types, so a block sends T there)."""
    if type_.startswith("SimpleAggregateFunction("):
        return type_[len("SimpleAggregateFunction(") : -1].split(", ", 1)[1]
    return type_


def test_a_migrated_store_has_exactly_the_declared_tables_and_columns(store):
    engines = dict(
        store.query(
            "SELECT name, engine_full FROM system.tables WHERE database = {d:String}"
            " AND engine NOT IN ('MaterializedView') AND name != 'schema_version'",
            {"d": store.db},
        )
    )
    assert set(engines) == set(tables.TABLES) | set(FEEDS)
    for name, table in {**tables.TABLES, **FEEDS}.items():
        assert reported_columns(store, name) == declared_columns(table), name
        for setting in table.settings:
            assert setting in engines[name], (name, setting)
        for column in table.bloom_filters:
            indexes = store.query(
                "SELECT expr, type FROM system.data_skipping_indices"
                " WHERE database = {d:String} AND table = {t:String} AND name = {i:String}",
                {"d": store.db, "t": name, "i": f"{column}_bf"},
            )
            assert [tuple(r) for r in indexes] == [(column, "bloom_filter")], (name, column)


def _full_record(kind: RecordKind, t_ns: int):
    """A record of `kind` with every field set (so every column of its table carries data)."""
    fields = {}
    for f in kind.message.DESCRIPTOR.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            fields[f.name] = {"k": "v"}
        elif f.type == FieldDescriptor.TYPE_STRING:
            fields[f.name] = f"{f.name}-1"
        elif f.type == FieldDescriptor.TYPE_DOUBLE:
            fields[f.name] = 1.5
        elif f.type == FieldDescriptor.TYPE_BOOL:
            fields[f.name] = True
    return kind.message(**fields, time_unix_ns=t_ns)


def written_blocks() -> dict[str, pa.Table]:
    """A block for every table the collector writes, each from the builder the collector uses."""
    builder = RowBuilder()
    res = framegen.resource()
    frame = Identity("agent-test", 7, 1)
    metrics = builder.build(framegen.gauge_batch(), res, frame)
    t = (metrics.min_time_ms, metrics.max_time_ms)
    out = {
        "samples": metrics.samples_block,
        "histograms": builder.build(framegen.histogram_batch(), res, frame).histograms_block,
        "series": _series_block({r.series_id: (r, *t) for r in metrics.series.rows()}),
        "agents": _agents_block({"agent-test": ("host-test", "0.1.0", "127.0.0.1:5000")}, time.time()),
    }
    for kind in KINDS:
        out[kind.name] = record_block(kind, [_full_record(kind, time.time_ns() - 10**9)], "h", frame)
    now_ms = time.time_ns() // 1_000_000
    out["alerts"] = alert_store.transitions_block(
        [
            Transition(
                now_ms, "R", "f", (("alertname", "R"),), State.FIRING, State.PENDING, 0.9, "> 0.8", "w", {}
            ),
            Transition(now_ms, "R", "g", (), State.PENDING, State.INACTIVE, None, "> 0.8", "w", {"s": "x"}),
        ]
    )
    out["alert_acks"] = alert_store.ack_block("f", "ops", "looking", now_ms, False)
    silence = Silence("s1", parse_matchers('{alertname="R"}'), now_ms, now_ms + 60_000, "c", "ops")
    out["silences"] = alert_store.silence_block(silence, now_ms)
    day = metrics.min_time_ms // ledger.DAY_MS
    for rollup, feed in tables.FEEDS.items():  # the raw rows and the rollup's ledger rows
        raw = next(r for r, rolled in tables.ROLLUPS.items() if rollup in rolled)
        out[feed.name] = pa.concat_tables(
            [out[raw], ledger.rollup_rows(rollup, {("agent-test", 7, day): 1})]
        ).combine_chunks()
    return out


def test_every_written_block_has_the_declared_columns_and_the_store_takes_it(store):
    blocks = written_blocks()
    assert set(blocks) == WRITTEN
    for name, block in blocks.items():
        declared = [(c.name, stored_type(c.type)) for c in {**tables.TABLES, **FEEDS}[name].columns]
        assert block_columns(store, block) == declared, name
        store.insert(name, block)
        filled = name.removesuffix("_feed")  # a feed holds nothing: its rollup gets the rows
        assert store.query(f"SELECT count() FROM {store.db}.{filled}")[0][0] >= 1, name


def test_each_record_kind_has_a_table_of_its_message_fields():
    message_fields = {
        kind.name: {f.name for f in kind.message.DESCRIPTOR.fields} - {"time_unix_ns"} for kind in KINDS
    }
    for kind in KINDS:
        table = tables.TABLES[kind.name]
        assert table.columns[:3] == tables.RECORD_COLUMNS
        fields = message_fields[kind.name] - {f"has_{n}" for n in kind.optional_numbers}
        assert table.columns[-2:] == (tables.EPOCH, tables.SEQ)  # the ledger's, added later
        assert set(table.names[3:-2]) == fields, kind.name
        # every text field has a limit, the one map is the attributes, the doubles optional numbers
        described = {f.name: f for f in kind.message.DESCRIPTOR.fields}
        texts = {n for n in fields if described[n].type == FieldDescriptor.TYPE_STRING}
        assert texts == {*kind.short, *kind.long, *kind.ids}, kind.name
        assert {n for n in fields if described[n].message_type is not None} == {kind.attributes}
        assert {n for n in fields if described[n].type == FieldDescriptor.TYPE_DOUBLE} == set(
            kind.optional_numbers
        )
        assert kind.required in texts


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_search_and_cli_fields_name_columns_of_the_kind(kind):
    names = set(tables.TABLES[kind.name].names)
    assert set(kind.equals) <= names and set(kind.contains) <= names
    assert set(kind.shortcuts.values()) <= set(kind.equals)
    assert set(kind.table_columns) <= names


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_the_ddl_docs_storage_shows_is_the_declared_one(kind):
    """docs/storage.md shows each record table's CREATE statement (default retention, one node)."""
    days = getattr(SchemaOptions(), f"{kind.name}_ttl_days")
    (create,) = tables.TABLES[kind.name].create(Layout("ferry"), days)
    assert f"```sql\n{create}\n```" in (ROOT / "docs" / "storage.md").read_text()
