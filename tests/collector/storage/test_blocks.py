"""ferry.collector.storage.blocks: the blocks the write path builds, and each type into the real
embedded ClickHouse.

The write path's blocks are the real ones: a frame from tests/framegen.py (gauges of two metrics,
a histogram between their points, events and logs) goes through FramePipeline (decode, validate,
RowBuilder, the record blocks, the group commit, Writer, the agents row) into the store, whose
`insert` keeps each block (an Arrow table) on its way to the engine. The tests check each block
against its table's columns in system.columns as the engine reads the Arrow file `insert_arrow`
sends, the frame's values and identity, the rollups' ledger rows, and what the engine stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from ferry.collector.agents import AgentRecorder
from ferry.collector.pipeline import FramePipeline
from ferry.collector.storage import blocks, ledger, tables
from ferry.collector.storage.blocks import Dictionary, Masked, Ragged
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.storage.tables import Column, Table
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2
from ferry.wire.columns import HISTOGRAM, MetricBatch
from tests import framegen
from tests.collector.storage.test_tables import block_columns, stored_type


def values_of(block: pa.Table, name: str) -> list:
    """A block's column as Python values: DateTime64 as its integer ticks, a Map as a dict."""
    column = block.column(name)
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64()).to_pylist()
    if pa.types.is_map(column.type):
        return [dict(m) for m in column.to_pylist()]
    return column.to_pylist()


# ---- the blocks of the write path --------------------------------------------------------------------


class KeepingStore(Store):
    """The real store, keeping each block it is handed: (table, block) in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inserts: list[tuple[str, pa.Table]] = []

    def insert(self, table: str, block: pa.Table) -> None:
        self.inserts.append((table, block))
        super().insert(table, block)


@dataclass
class Written:
    store: KeepingStore
    frame: ingest_pb2.Frame
    batch: MetricBatch
    events: list
    logs: list
    blocks: dict[str, pa.Table]


def mixed_batch(t0: int) -> MetricBatch:
    """test.cpu (2 series, 4 points each), the histogram test.lat (2 points), test.mem (1 series,
    3 points), in that order: the histogram's points sit between the gauges'."""
    cpu = framegen.gauge_batch("test.cpu", n_series=2, points=4, t0_ms=t0)
    mem = framegen.gauge_batch("test.mem", n_series=1, points=3, t0_ms=t0, value0=0.25)
    lat = framegen.histogram_batch("test.lat", t_ms=t0 + 500)
    return MetricBatch(
        series=[*cpu.series, *mem.series, *lat.series],
        series_ref=np.concatenate([cpu.series_ref, lat.series_ref + 3, mem.series_ref + 2]).astype(np.uint32),
        time_ms=np.concatenate([cpu.time_ms, lat.time_ms, mem.time_ms]),
        value=np.concatenate([cpu.value, lat.value, mem.value]),
        bucket_counts=lat.bucket_counts,
    )


def write_frame(dsn: str, database: str, frame: ingest_pb2.Frame) -> KeepingStore:
    """`frame` through a fresh pipeline and writer (a collector just started) into `database`."""
    keeping = KeepingStore.open(dsn, database=database)
    stores = ThreadStores(lambda: keeping)
    ack = FramePipeline.writing(Writer(stores, agents=AgentRecorder())).handle(frame, "127.0.0.1:5000")
    assert ack.status == ingest_pb2.OK, ack.message
    return keeping


@pytest.fixture
def written(store, store_dsn) -> Written:
    # recent times: the tables have a TTL, and expired rows may be dropped as soon as they land
    t0 = (int(time.time()) - 60) * 1000
    batch = mixed_batch(t0)
    events = [
        framegen.event(
            "click", t_ns=t0 * 10**6 + 1, value=2.5, service="web", properties={"b": "2", "a": ""}
        ),
        framegen.event("view", t_ns=t0 * 10**6 + 2, label="é✓"),
    ]
    logs = [
        framegen.log_record("disk full", level="error", t_ns=t0 * 10**6 + 3, attributes={"dev": "sda"}),
        framegen.log_record("", t_ns=t0 * 10**6 + 4),
    ]
    frame = framegen.records_frame(1, events=events, logs=logs, batch=batch)
    keeping = write_frame(store_dsn, store.db, frame)
    written = {table: data for table, data in keeping.inserts}
    assert len(written) == len(keeping.inserts), "one insert per table"
    yield Written(keeping, frame, batch, events, logs, written)
    keeping.close()


def table_columns(store: Store, table: str) -> list[tuple[str, str]]:
    return store.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}"
        " ORDER BY position",
        {"db": store.db, "t": table},
    )


def ticks(column: str, type_: str) -> str:
    """SQL reading a DateTime64 column as the integer ticks its block carries."""
    return f"toUnixTimestamp64{'Milli' if 'DateTime64(3' in type_ else 'Nano'}({column})"


FEEDS = {f"{r}_feed" for r in tables.FEEDS}


def test_every_block_carries_its_tables_columns_and_the_frames_identity(written):
    assert set(written.blocks) == {"series", "samples", "histograms", "events", "logs", "agents"} | FEEDS
    expected_rows = {"series": 4, "samples": 11, "histograms": 2, "events": 2, "logs": 2, "agents": 1}
    # each feed: the raw table's rows and one ledger row (one agent, epoch and day)
    expected_rows |= {f: expected_rows[f.split("_")[0]] + 1 for f in FEEDS}
    for table, block in written.blocks.items():
        assert block.num_rows == expected_rows[table], table
        # the engine reads the Arrow file as the table's own types (the values of an aggregate
        # column as its argument's): it converts nothing
        reported = [(name, stored_type(type_)) for name, type_ in table_columns(written.store, table)]
        assert block_columns(written.store, block) == reported, table
    for table in ("samples", "histograms", "events", "logs"):  # the frame's name on every raw row
        block = written.blocks[table]
        n = block.num_rows
        identity = [values_of(block, c) for c in ("agent_id", "epoch", "seq")]
        assert identity == [["agent-test"] * n, [42] * n, [1] * n], table


def test_a_rollups_feed_carries_the_raw_rows_and_its_ledger_row(written):
    day = int(written.batch.time_ms.min()) // ledger.DAY_MS
    for rollup in tables.FEEDS:
        raw = rollup.split("_")[0]
        feed = written.blocks[f"{rollup}_feed"]
        assert feed.slice(0, feed.num_rows - 1).to_pylist() == written.blocks[raw].to_pylist(), rollup
        row = {c: values_of(feed, c)[-1] for c in ("name", "series_id", "ts", "agent_id", "epoch", "seq")}
        assert row == {
            "name": "#agent-test",
            "series_id": 42,
            "ts": day * ledger.DAY_MS,
            "agent_id": "agent-test",
            "epoch": 42,
            "seq": 1,
        }, rollup
        stored = written.store.query(
            f"SELECT series_id, toDate(ts), max(seq) FROM {written.store.db}.{rollup} "
            "WHERE name = '#agent-test' GROUP BY series_id, toDate(ts)"
        )
        assert [(e, (d - ledger._EPOCH_DATE).days, q) for e, d, q in stored] == [(42, day, 1)], rollup


def test_samples_block_holds_the_frames_gauge_points_in_order(written):
    batch = written.batch
    plain = np.array([batch.series[r].kind != HISTOGRAM for r in batch.series_ref.tolist()])
    block = written.blocks["samples"]
    assert values_of(block, "ts") == batch.time_ms[plain].tolist()
    assert values_of(block, "value") == batch.value[plain].tolist()
    assert values_of(block, "name") == [batch.series[r].name for r in batch.series_ref[plain].tolist()]
    # one dictionary, the metric names sorted (RowBuilder's), an index per row
    (name,) = block.column("name").chunks
    assert name.dictionary.to_pylist() == ["test.cpu", "test.lat", "test.mem"]
    assert name.indices.to_pylist() == [0] * 8 + [2] * 3
    series = written.blocks["series"]
    ids = zip(
        values_of(series, "name"), values_of(series, "labels"), values_of(series, "series_id"), strict=True
    )
    id_of = {(name, tuple(labels.items())): sid for name, labels, sid in ids}
    want = []
    for r in batch.series_ref[plain].tolist():
        s = batch.series[r]
        want.append(id_of[(s.name, tuple(sorted({**dict(s.labels), "host": "host-test"}.items())))])
    assert values_of(block, "series_id") == want


def test_histograms_block_holds_sum_count_bounds_and_buckets(written):
    block = written.blocks["histograms"]
    assert values_of(block, "name") == ["test.lat", "test.lat"]
    assert values_of(block, "sum") == [12.5, 30.0]
    assert values_of(block, "count") == [6, 7]
    assert values_of(block, "bounds") == [[1.0, 5.0, 10.0]] * 2
    assert values_of(block, "counts") == [[1, 2, 3, 0], [0, 1, 4, 2]]
    # Array(T): the rows' offsets over every row's values end to end
    (counts,) = block.column("counts").chunks
    assert counts.offsets.to_pylist() == [0, 4, 8]
    assert counts.values.to_pylist() == [1, 2, 3, 0, 0, 1, 4, 2]


def test_series_block_names_each_series_with_the_resource_labels(written):
    block = written.blocks["series"]
    t = written.batch.time_ms
    got = sorted(zip(*(values_of(block, c) for c in ("name", "kind", "unit", "host")), strict=True))
    assert got == [
        ("test.cpu", "gauge", "1", "host-test"),
        ("test.cpu", "gauge", "1", "host-test"),
        ("test.lat", "histogram", "ms", "host-test"),
        ("test.mem", "gauge", "1", "host-test"),
    ]
    assert sorted(map(sorted, (m.items() for m in values_of(block, "labels")))) == sorted(
        [
            [("host", "host-test"), ("idx", "0")],
            [("host", "host-test"), ("idx", "1")],
            [("host", "host-test"), ("route", "/a")],
            [("host", "host-test"), ("idx", "0")],
        ]
    )
    assert len(set(values_of(block, "series_id"))) == 4
    assert set(values_of(block, "first_seen")) == {int(t.min())}
    assert set(values_of(block, "last_seen")) == {int(t.max())}


def test_record_and_agent_blocks_hold_every_field(written):
    ev = written.blocks["events"]
    assert values_of(ev, "ts") == [e.time_unix_ns for e in written.events]
    assert values_of(ev, "type") == ["click", "view"]
    assert values_of(ev, "value") == [2.5, None]
    assert ev.column("value").null_count == 1
    assert values_of(ev, "label") == ["", "é✓"]
    assert values_of(ev, "properties") == [{"a": "", "b": "2"}, {}]
    assert values_of(ev, "host") == ["host-test"] * 2
    assert values_of(ev, "agent_id") == ["agent-test"] * 2
    lg = written.blocks["logs"]
    assert values_of(lg, "message") == ["disk full", ""]
    assert values_of(lg, "level") == ["error", "info"]
    assert values_of(lg, "attributes") == [{"dev": "sda"}, {}]
    ag = written.blocks["agents"]
    assert [values_of(ag, c) for c in ("agent_id", "host", "address")] == [
        ["agent-test"],
        ["host-test"],
        ["127.0.0.1:5000"],
    ]


def test_the_engine_stores_what_the_blocks_hold(written):
    db = written.store.db
    for table, block in written.blocks.items():
        if table in FEEDS:  # a feed keeps nothing: its rollup holds the aggregates
            continue
        types = dict(table_columns(written.store, table))
        names = block.column_names
        select = ", ".join(ticks(n, types[n]) if "DateTime64" in types[n] else n for n in names)
        final = " FINAL" if table == "series" else ""
        stored = written.store.query(f"SELECT {select} FROM {db}.{table}{final}")
        sent = list(zip(*(values_of(block, n) for n in names), strict=True))
        assert sorted(map(repr, stored)) == sorted(map(repr, sent)), table


# ---- the mapping, and what the engine makes of each type -------------------------------------------


def test_numpy_columns_go_in_without_a_copy():
    ids = np.arange(5, dtype=np.uint64)
    ts = np.arange(5, dtype=np.int64) + 1_700_000_000_000
    value = np.linspace(0, 1, 5)
    table = Table(
        "t",
        (Column("id", "UInt64"), Column("ts", "DateTime64(3, 'UTC')"), Column("v", "Float64")),
        "",
        "",
        "",
    )
    block = blocks.block(table, 5, {"id": ids, "ts": ts, "v": value})
    for name, array in (("id", ids), ("ts", ts), ("v", value)):
        (chunk,) = block.column(name).chunks
        assert chunk.buffers()[1].address == array.ctypes.data, name
    assert block.schema == blocks.schema(table)


def test_a_block_must_have_every_column_and_the_same_rows_in_each():
    table = Table("t", (Column("a", "UInt64"), Column("b", "Float64")), "", "", "")
    with pytest.raises(KeyError, match=r"missing columns \['b'\], unknown \['c'\]"):
        blocks.block(table, 1, {"a": [1], "c": [1.0]})
    with pytest.raises(ValueError, match="column b has 2 rows, not 1"):
        blocks.block(table, 1, {"a": [1], "b": [1.0, 2.0]})


@pytest.mark.parametrize(
    "type_",
    [
        "DateTime('UTC')",
        "AggregateFunction(argMax, Float64, DateTime64(3, 'UTC'))",
        "Array(String)",
        "Nullable(Map(String, String))",
    ],
)
def test_a_type_no_written_table_has_is_refused(type_):
    with pytest.raises(TypeError, match="no Arrow"):
        blocks.block(
            Table("t", (Column("x", type_),), "", "", ""),
            0,
            {"x": Masked([], np.zeros(0)) if type_.startswith("Nullable") else []},
        )


def load(
    store: Store,
    columns: Mapping[str, str],
    values: Mapping[str, Any],
    rows: int,
    select: str = "*",
    name: str = "t",
) -> list[tuple]:
    """Create table `name` of `columns` (name → type, `id` first), insert one block of `values`
    through `Store.insert`, read back `select` ordered by id."""
    table = Table(name, tuple(Column(n, t) for n, t in columns.items()), "Memory", "", "")
    store.client.command(f"CREATE TABLE {store.db}.{name} ({table.columns_ddl()}) ENGINE = Memory")
    store.insert(name, blocks.block(table, rows, values))
    return store.query(f"SELECT {select} FROM {store.db}.{name} ORDER BY id")


def test_fixed_columns_roundtrip(store):
    u = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    i = np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64)
    f = np.array([1.5, -0.0, np.inf, np.nan])
    ts = np.array([0, 1_700_000_000_123, -1_000, 4_102_444_800_999], dtype=np.int64)
    rows = load(
        store,
        {"id": "UInt8", "u": "UInt64", "i": "Int64", "f": "Float64", "ts": "DateTime64(3, 'UTC')"},
        {"id": np.arange(4), "u": u, "i": i, "f": f, "ts": ts},
        4,
        select="u, i, reinterpretAsUInt64(f), toUnixTimestamp64Milli(ts), toString(ts), toTypeName(ts)",
    )
    assert [r[0] for r in rows] == [0, 1, 2**63, 2**64 - 1]
    assert [r[1] for r in rows] == [-(2**63), -1, 0, 2**63 - 1]
    assert [r[2] for r in rows] == f.view(np.uint64).tolist()
    assert [r[3] for r in rows] == ts.tolist()
    assert [r[4] for r in rows] == [
        "1970-01-01 00:00:00.000",
        "2023-11-14 22:13:20.123",
        "1969-12-31 23:59:59.000",
        "2100-01-01 00:00:00.999",
    ]
    assert {r[5] for r in rows} == {"DateTime64(3, 'UTC')"}


def test_string_column_roundtrip(store):
    values = ["", "a", "é✓ ключ", "x" * 300, "nul\x00and\nnewline", "🚀" * 40]
    rows = load(
        store,
        {"id": "UInt8", "s": "String"},
        {"id": np.arange(len(values)), "s": values},
        len(values),
        select="s, length(s)",
    )
    assert [r[0] for r in rows] == values
    assert [r[1] for r in rows] == [len(v.encode()) for v in values]


def test_low_cardinality_roundtrip(store):
    # dictionaries past one and two bytes of index, as a Dictionary and as plain values
    for keys in (3, 256, 65537):
        dictionary = [f"k{i}-é" for i in range(keys)]
        rng = np.random.default_rng(keys)
        # every key at least once, the last key included, in shuffled order, plus repeats
        index = np.concatenate([rng.permutation(keys), rng.integers(0, keys, 50), [keys - 1, 0]])
        n = index.shape[0]
        words = [dictionary[k] for k in index.tolist()]
        for how, value in (("dict", Dictionary(dictionary, index.astype(np.uint32))), ("plain", words)):
            name = f"lc{keys}{how}"
            rows = load(
                store,
                {"id": "UInt32", "s": "LowCardinality(String)"},
                {"id": np.arange(n), "s": value},
                n,
                select="s",
                name=name,
            )
            assert [r[0] for r in rows] == words, (keys, how)
            typ = store.query(f"SELECT toTypeName(s), uniqExact(s) FROM {store.db}.{name} GROUP BY 1")
            assert typ == [("LowCardinality(String)", keys)]


def test_low_cardinality_with_empty_string_key(store):
    rows = load(
        store,
        {"id": "UInt8", "s": "LowCardinality(String)"},
        {"id": np.arange(4), "s": Dictionary(["x", ""], np.array([1, 0, 1, 0], dtype=np.uint8))},
        4,
        select="s",
    )
    assert rows == [("",), ("x",), ("",), ("x",)]


def test_zero_row_block_of_every_type(store):
    rows = load(
        store,
        {
            "id": "UInt8",
            "s": "String",
            "lc": "LowCardinality(String)",
            "a": "Array(UInt64)",
            "m": "Map(String, String)",
            "v": "Nullable(Float64)",
            "ts": "DateTime64(9, 'UTC')",
        },
        {
            "id": np.zeros(0),
            "s": [],
            "lc": Dictionary([], np.zeros(0, dtype=np.uint32)),
            "a": Ragged(np.zeros(0, dtype=np.int64), np.zeros(0)),
            "m": [],
            "v": Masked(np.zeros(0), np.zeros(0, dtype=bool)),
            "ts": np.zeros(0, dtype=np.int64),
        },
        0,
    )
    assert rows == []


def test_array_columns_roundtrip(store):
    lengths = np.array([2, 0, 3, 0, 1])
    counts = np.array([1, 2**64 - 1, 3, 4, 5, 0], dtype=np.uint64)
    bounds = np.array([0.5, 1.0, -1.0, 2.0, 1e300, -np.inf])
    rows = load(
        store,
        {"id": "UInt8", "counts": "Array(UInt64)", "bounds": "Array(Float64)", "empty": "Array(Int64)"},
        {
            "id": np.arange(5),
            "counts": Ragged(lengths, counts),
            "bounds": Ragged(lengths, bounds),
            "empty": Ragged(np.zeros(5, dtype=np.int64), np.zeros(0)),
        },
        5,
        select="counts, bounds, empty, length(counts)",
    )
    assert [r[0] for r in rows] == [[1, 2**64 - 1], [], [3, 4, 5], [], [0]]
    assert [r[1] for r in rows] == [[0.5, 1.0], [], [-1.0, 2.0, 1e300], [], [-np.inf]]
    assert [r[2] for r in rows] == [[]] * 5
    assert [r[3] for r in rows] == [2, 0, 3, 0, 1]


def test_nullable_and_nanosecond_times_roundtrip(store):
    values = np.array([1.5, 0.0, -0.0, 7.0, 0.0])
    nulls = np.array([False, True, False, False, True])
    words = ["x", "", "é", "x", "y"]
    rows = load(
        store,
        {"id": "UInt8", "v": "Nullable(Float64)", "s": "Nullable(String)", "ts": "DateTime64(9, 'UTC')"},
        {
            "id": np.arange(5),
            "v": Masked(values, nulls),
            "s": Masked(words, ~nulls),
            "ts": np.arange(5) + 1_700_000_000_123_456_789,
        },
        5,
        select="v, s, toUnixTimestamp64Nano(ts)",
    )
    assert [r[0] for r in rows] == [1.5, None, -0.0, 7.0, None]
    assert [r[1] for r in rows] == [None, "", None, None, "y"]
    assert [r[2] for r in rows] == [1_700_000_000_123_456_789 + i for i in range(5)]


def test_map_column_roundtrip(store):
    maps = [
        [("host", "a"), ("dc", "eu-west")],
        [],
        [("ключ", "значение ✓"), ("emoji", "🚀")],
        [("", "")],
        [("k" * 200, "v" * 300)],
    ]
    rows = load(
        store,
        {"id": "UInt8", "m": "Map(String, String)"},
        {"id": np.arange(len(maps)), "m": maps},
        len(maps),
        select="m, mapKeys(m), mapValues(m)",
    )
    assert [r[0] for r in rows] == [dict(m) for m in maps]
    assert [r[1] for r in rows] == [[k for k, _ in m] for m in maps]
    assert [r[2] for r in rows] == [[v for _, v in m] for m in maps]


def test_aggregate_columns_take_their_arguments_values(store):
    """series' SimpleAggregateFunction columns: the block sends T, the engine stores and merges it."""
    rows = load(
        store,
        {
            "id": "UInt8",
            "k": "SimpleAggregateFunction(any, LowCardinality(String))",
            "l": "SimpleAggregateFunction(any, Map(String, String))",
            "t": "SimpleAggregateFunction(min, DateTime64(3, 'UTC'))",
        },
        {"id": [1, 2], "k": ["gauge", "counter"], "l": [[("a", "1")], []], "t": np.array([5, -5])},
        2,
        select="k, l, toUnixTimestamp64Milli(t), toTypeName(k)",
    )
    assert rows == [
        ("gauge", {"a": "1"}, 5, "SimpleAggregateFunction(any, LowCardinality(String))"),
        ("counter", {}, -5, "SimpleAggregateFunction(any, LowCardinality(String))"),
    ]
