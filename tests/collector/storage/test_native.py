"""ferry.collector.storage.native: the blocks the write path builds, the encoder's byte layout,
and each type into the real embedded ClickHouse.

The write path's blocks are the real ones: a frame from tests/framegen.py (gauges of two metrics,
a histogram between their points, events and logs) goes through FramePipeline (decode, validate,
RowBuilder, the record blocks, Writer, the agents row) into the store, whose `insert_native`
keeps a copy of every block on its way to the engine. `split` below reads a block column by
column by the Native layout alone; the tests check each block against its table's columns in
system.columns, the frame's values and what the engine stored.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

import numpy as np
import pytest

from ferry.collector.agents import AgentRecorder
from ferry.collector.pipeline import FramePipeline
from ferry.collector.storage import native
from ferry.collector.storage.native import (
    Column,
    array_column,
    block,
    fixed,
    low_cardinality,
    low_cardinality_of,
    map_column,
    nullable,
    string_column,
    strings,
    varint,
)
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import ingest_pb2
from ferry.wire.columns import HISTOGRAM, MetricBatch
from tests import framegen


def u64(*xs: int) -> bytes:
    return struct.pack(f"<{len(xs)}Q", *xs)


def load(
    store, ddl: str, columns: list[Column], rows: int, select: str = "*", order: str = "id", table: str = "t"
) -> list[tuple]:
    """Create `table` with `ddl`, insert the Native block, read back `select` ordered by `order`."""
    store.client.command(f"CREATE TABLE {store.db}.{table} ({ddl}) ENGINE = Memory")
    store.client.raw_insert(f"{store.db}.{table}", None, insert_block=block(columns, rows), fmt="Native")
    return store.client.query(f"SELECT {select} FROM {store.db}.{table} ORDER BY {order}").result_rows


# ---- reading a Native block back, by the format alone ------------------------------------------------

_WIDTH = {"UInt8": "<u1", "UInt32": "<u4", "UInt64": "<u8", "Int64": "<i8", "Float64": "<f8"}


@dataclass
class Read:
    """One column of a block: its name, its type, its bytes and the values they hold."""

    name: str
    type: str
    data: bytes
    values: list


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        assert self.pos + n <= len(self.data), f"column data ends past the block ({self.pos}+{n})"
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def varint(self) -> int:
        n = shift = 0
        while True:
            byte = self.take(1)[0]
            n |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return n

    def string(self) -> str:
        return self.take(self.varint()).decode()

    def array(self, dtype: str, n: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * n), dtype=dtype)


def _inner(type_: str, wrapper: str) -> str | None:
    return type_[len(wrapper) + 1 : -1] if type_.startswith(wrapper + "(") else None


def _values(cur: _Cursor, type_: str, rows: int) -> list:
    """Read `rows` values of `type_` (the types the write path sends) at the cursor."""
    if (inner := _inner(type_, "SimpleAggregateFunction")) is not None:
        return _values(cur, inner.split(", ", 1)[1], rows)  # sent as its argument type
    if type_ in _WIDTH or type_.startswith("DateTime64("):
        return cur.array(_WIDTH.get(type_, "<i8"), rows).tolist()
    if type_ == "String":
        return [cur.string() for _ in range(rows)]
    if type_ == "LowCardinality(String)":
        if rows == 0:
            return []
        version, flags, keys = cur.array("<u8", 3).tolist()
        assert version == 1 and flags >> 8 == 0b110, (version, hex(flags))
        dictionary = [cur.string() for _ in range(keys)]
        assert cur.array("<u8", 1)[0] == rows
        index = cur.array(["<u1", "<u2", "<u4", "<u8"][flags & 0xFF], rows)
        return [dictionary[i] for i in index.tolist()]
    if (inner := _inner(type_, "Nullable")) is not None:
        is_null = cur.array("<u1", rows).tolist()
        return [None if null else v for null, v in zip(is_null, _values(cur, inner, rows), strict=True)]
    if (inner := _inner(type_, "Array")) is not None:
        ends = cur.array("<u8", rows).tolist()
        flat = _values(cur, inner, ends[-1] if ends else 0)
        return [flat[a:b] for a, b in zip([0, *ends], ends, strict=False)]
    if type_ == "Map(String, String)":
        ends = cur.array("<u8", rows).tolist()
        total = ends[-1] if ends else 0
        keys, values = _values(cur, "String", total), _values(cur, "String", total)
        return [
            dict(zip(keys[a:b], values[a:b], strict=True)) for a, b in zip([0, *ends], ends, strict=False)
        ]
    raise AssertionError(f"no reader for {type_}")


def split(data: bytes) -> tuple[int, dict[str, Read]]:
    """A Native block → (rows, its columns by name); the block must end where its last column does."""
    cur = _Cursor(data)
    count, rows = cur.varint(), cur.varint()
    columns = {}
    for _ in range(count):
        name, type_ = cur.string(), cur.string()
        start = cur.pos
        values = _values(cur, type_, rows)
        columns[name] = Read(name, type_, data[start : cur.pos], values)
    assert cur.pos == len(data), f"{len(data) - cur.pos} bytes after the last column"
    return rows, columns


# ---- the blocks of the write path --------------------------------------------------------------------


class KeepingStore(Store):
    """The real store, keeping each block it is handed: (table, block, token) in order."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inserts: list[tuple[str, bytes, str | None]] = []

    def insert_native(self, table: str, block: bytes, token: str | None = None) -> None:
        self.inserts.append((table, block, token))
        super().insert_native(table, block, token)


@dataclass
class Written:
    store: KeepingStore
    frame: ingest_pb2.Frame
    batch: MetricBatch
    events: list
    logs: list
    blocks: dict[str, bytes]


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
    ack = FramePipeline(Writer(stores), agents=AgentRecorder(stores)).handle(frame, "127.0.0.1:5000")
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
    blocks = {table: data for table, data, _ in keeping.inserts}
    assert len(blocks) == len(keeping.inserts), "one insert per table"
    yield Written(keeping, frame, batch, events, logs, blocks)
    keeping.close()


def table_columns(store: Store, table: str) -> dict[str, str]:
    rows = store.query(
        "SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String}",
        {"db": store.db, "t": table},
    )
    return dict(rows)


def ticks(column: str, type_: str) -> str:
    """SQL reading a DateTime64 column as the integer ticks its block carries."""
    return f"toUnixTimestamp64{'Milli' if 'DateTime64(3' in type_ else 'Nano'}({column})"


def test_every_block_carries_its_tables_columns_and_the_frames_token(written):
    assert set(written.blocks) == {"series", "samples", "histograms", "events", "logs", "agents"}
    expected_rows = {"series": 4, "samples": 11, "histograms": 2, "events": 2, "logs": 2, "agents": 1}
    for table, data in written.blocks.items():
        rows, columns = split(data)
        assert rows == expected_rows[table], table
        declared = table_columns(written.store, table)
        assert set(columns) == set(declared), table
        for name, col in columns.items():
            # sent under the table's own type, so the engine converts nothing
            assert col.type == declared[name], (table, name)
            assert len(col.values) == rows, (table, name)
    # the agents row is a sighting, not the frame's data: it has no token
    tokens = {table: token for table, _, token in written.store.inserts}
    assert tokens.pop("agents") is None
    assert set(tokens.values()) == {"agent-test:42:1"}


def test_samples_block_holds_the_frames_gauge_points_in_order(written):
    batch = written.batch
    plain = np.array([batch.series[r].kind != HISTOGRAM for r in batch.series_ref.tolist()])
    _, cols = split(written.blocks["samples"])
    # fixed-width columns are the frame's arrays, little-endian, byte for byte
    assert cols["ts"].data == batch.time_ms[plain].astype("<i8").tobytes()
    assert cols["value"].data == batch.value[plain].astype("<f8").tobytes()
    assert cols["name"].values == [batch.series[r].name for r in batch.series_ref[plain].tolist()]
    # one granule, the dictionary the metric names sorted (RowBuilder's), u1 indexes
    head = struct.unpack("<3Q", cols["name"].data[:24])
    assert head == (1, 0x600, 3)
    assert cols["name"].data[24:] == (
        strings(["test.cpu", "test.lat", "test.mem"]) + u64(11) + bytes([0] * 8 + [2] * 3)
    )
    _, series = split(written.blocks["series"])
    ids = zip(series["name"].values, series["labels"].values, series["series_id"].values, strict=True)
    id_of = {(name, tuple(labels.items())): sid for name, labels, sid in ids}
    want = []
    for r in batch.series_ref[plain].tolist():
        s = batch.series[r]
        want.append(id_of[(s.name, tuple(sorted({**dict(s.labels), "host": "host-test"}.items())))])
    assert cols["series_id"].values == want
    assert cols["series_id"].data == np.array(want, dtype="<u8").tobytes()


def test_histograms_block_holds_sum_count_bounds_and_buckets(written):
    _, cols = split(written.blocks["histograms"])
    assert cols["name"].values == ["test.lat", "test.lat"]
    assert cols["sum"].values == [12.5, 30.0]
    assert cols["count"].values == [6, 7]
    assert cols["bounds"].values == [[1.0, 5.0, 10.0]] * 2
    assert cols["counts"].values == [[1, 2, 3, 0], [0, 1, 4, 2]]
    # Array(T): the rows' end offsets, then every row's values end to end
    assert cols["counts"].data == u64(4, 8) + u64(1, 2, 3, 0, 0, 1, 4, 2)


def test_series_block_names_each_series_with_the_resource_labels(written):
    _, cols = split(written.blocks["series"])
    t = written.batch.time_ms
    got = sorted(
        zip(cols["name"].values, cols["kind"].values, cols["unit"].values, cols["host"].values, strict=True)
    )
    assert got == [
        ("test.cpu", "gauge", "1", "host-test"),
        ("test.cpu", "gauge", "1", "host-test"),
        ("test.lat", "histogram", "ms", "host-test"),
        ("test.mem", "gauge", "1", "host-test"),
    ]
    assert sorted(map(sorted, (m.items() for m in cols["labels"].values))) == sorted(
        [
            [("host", "host-test"), ("idx", "0")],
            [("host", "host-test"), ("idx", "1")],
            [("host", "host-test"), ("route", "/a")],
            [("host", "host-test"), ("idx", "0")],
        ]
    )
    assert len(set(cols["series_id"].values)) == 4
    assert set(cols["first_seen"].values) == {int(t.min())}
    assert set(cols["last_seen"].values) == {int(t.max())}


def test_record_and_agent_blocks_hold_every_field(written):
    _, ev = split(written.blocks["events"])
    assert ev["ts"].values == [e.time_unix_ns for e in written.events]
    assert ev["type"].values == ["click", "view"]
    assert ev["value"].values == [2.5, None]
    assert ev["value"].data[:2] == b"\x00\x01"  # Nullable: the null map first
    assert ev["label"].values == ["", "é✓"]
    assert ev["properties"].values == [{"a": "", "b": "2"}, {}]
    assert ev["host"].values == ["host-test"] * 2
    assert ev["agent_id"].values == ["agent-test"] * 2
    _, lg = split(written.blocks["logs"])
    assert lg["message"].values == ["disk full", ""]
    assert lg["level"].values == ["error", "info"]
    assert lg["attributes"].values == [{"dev": "sda"}, {}]
    _, ag = split(written.blocks["agents"])
    assert (ag["agent_id"].values, ag["host"].values, ag["address"].values) == (
        ["agent-test"],
        ["host-test"],
        ["127.0.0.1:5000"],
    )


def test_the_engine_stores_what_the_blocks_hold(written):
    db = written.store.db
    for table, data in written.blocks.items():
        _, cols = split(data)
        names = list(cols)
        select = ", ".join(ticks(n, c.type) if "DateTime64" in c.type else n for n, c in cols.items())
        final = " FINAL" if table == "series" else ""
        stored = written.store.query(f"SELECT {select} FROM {db}.{table}{final}")
        sent = list(zip(*(cols[n].values for n in names), strict=True))
        assert sorted(map(repr, stored)) == sorted(map(repr, sent)), table


def test_the_frames_token_rides_with_every_insert(written, store_dsn):
    """A restarted collector (no high-water marks) gets a frame of the same name again: the
    store keeps it out by the token alone. The resend differs in every value, because the engine
    would drop a byte-identical block by its checksum even without a token."""
    batch = written.batch
    changed = MetricBatch(
        batch.series, batch.series_ref, batch.time_ms + 7, batch.value + 1, batch.bucket_counts + 1
    )
    events = [framegen.event("other", t_ns=e.time_unix_ns + 7) for e in written.events]
    logs = [framegen.log_record("other", t_ns=r.time_unix_ns + 7) for r in written.logs]
    again = write_frame(store_dsn, written.store.db, framegen.records_frame(1, events, logs, batch=changed))
    try:
        assert {token for table, _, token in again.inserts if table != "agents"} == {"agent-test:42:1"}
        assert {t for t, _, _ in again.inserts} >= {"samples", "histograms", "events", "logs"}
        for table in ("samples", "histograms", "events", "logs"):
            _, cols = split(written.blocks[table])
            stored = again.query(
                f"SELECT count(), sum({ticks('ts', cols['ts'].type)}) FROM {again.db}.{table}"
            )
            sent = sum(cols["ts"].values)
            assert stored == [(len(cols["ts"].values), sent)], table
    finally:
        again.close()


# ---- pure byte layout -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (255, b"\xff\x01"),
        (300, b"\xac\x02"),
        (16383, b"\xff\x7f"),
        (16384, b"\x80\x80\x01"),
        (2**32, b"\x80\x80\x80\x80\x10"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_varint_known_values(n, encoded):
    assert varint(n) == encoded


def test_strings_layout():
    assert strings([]) == b""
    assert strings(["", "ab", "é"]) == b"\x00" + b"\x02ab" + b"\x02\xc3\xa9"
    assert strings([b"\xff\x00"]) == b"\x02\xff\x00"
    long = "x" * 300
    assert strings([long]) == b"\xac\x02" + long.encode()


def test_fixed_layout_is_little_endian_and_converts_dtype():
    col = fixed("v", "Int64", np.array([1, -2], dtype=np.int32), "<i8")
    assert col == Column("v", "Int64", struct.pack("<2q", 1, -2))
    col = fixed("f", "Float64", [0.5, 2], "<f8")
    assert col.data == struct.pack("<2d", 0.5, 2.0)


def test_block_layout():
    cols = [fixed("id", "UInt64", np.array([7]), "<u8"), string_column("s", ["hi"])]
    assert block(cols, 1) == (
        b"\x02\x01" + b"\x02id" + b"\x06UInt64" + u64(7) + b"\x01s" + b"\x06String" + b"\x02hi"
    )
    assert block([], 0) == b"\x00\x00"
    assert block(cols[:1], 300)[:3] == b"\x01\xac\x02"


def test_low_cardinality_layout():
    col = low_cardinality("s", ["a", "bc"], np.array([1, 0, 1]))
    assert col.type == "LowCardinality(String)"
    flags = 0 | (1 << 9) | (1 << 10)
    assert col.data == u64(1, flags, 2) + b"\x01a\x02bc" + u64(3) + b"\x01\x00\x01"


@pytest.mark.parametrize(
    ("keys", "width_code", "width"),
    [(1, 0, 1), (255, 0, 1), (256, 1, 2), (257, 1, 2), (65535, 1, 2), (65536, 2, 4), (65537, 2, 4)],
)
def test_low_cardinality_index_width(keys, width_code, width):
    dictionary = [str(i) for i in range(keys)]
    index = np.array([0, keys - 1])
    col = low_cardinality("s", dictionary, index)
    head = struct.unpack("<3Q", col.data[:24])
    assert head == (1, width_code | 0x600, keys)
    tail = col.data[24 + len(strings(dictionary)) :]
    assert tail == u64(2) + np.array([0, keys - 1], dtype=f"<u{width}").tobytes()


def test_low_cardinality_of_builds_dictionary_in_first_use_order():
    assert low_cardinality_of("s", ["b", "a", "b", ""]) == low_cardinality(
        "s", ["b", "a", ""], np.array([0, 1, 0, 2])
    )
    assert low_cardinality_of("s", []).data == b""


def test_nullable_layout():
    col = nullable(fixed("v", "Float64", [1.5, 0.0], "<f8"), np.array([False, True]))
    assert col.type == "Nullable(Float64)"
    assert col.data == b"\x00\x01" + struct.pack("<2d", 1.5, 0.0)


def test_index_width_beyond_u32():
    assert native._index_width(0xFFFFFFFF) == (2, "<u4")
    assert native._index_width(0x100000000) == (3, "<u8")


def test_array_column_layout():
    col = array_column("a", "UInt64", np.array([2, 0, 1]), np.array([5, 6, 7]), "<u8")
    assert col.type == "Array(UInt64)"
    assert col.data == u64(2, 2, 3) + u64(5, 6, 7)


def test_map_column_layout():
    col = map_column("m", [[("k", "v"), ("k2", "")], [], [("é", "x")]])
    assert col.type == "Map(String, String)"
    assert col.data == u64(2, 2, 3) + b"\x01k\x02k2\x02\xc3\xa9" + b"\x01v\x00\x01x"


# ---- into the real embedded ClickHouse ------------------------------------------------------------


def test_fixed_columns_roundtrip(store):
    u = np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64)
    i = np.array([-(2**63), -1, 0, 2**63 - 1], dtype=np.int64)
    f = np.array([1.5, -0.0, np.inf, np.nan])
    ts = np.array([0, 1_700_000_000_123, -1_000, 4_102_444_800_999], dtype=np.int64)
    rows = load(
        store,
        "id UInt8, u UInt64, i Int64, f Float64, ts DateTime64(3, 'UTC')",
        [
            fixed("id", "UInt8", np.arange(4), "<u1"),
            fixed("u", "UInt64", u, "<u8"),
            fixed("i", "Int64", i, "<i8"),
            fixed("f", "Float64", f, "<f8"),
            fixed("ts", "DateTime64(3, 'UTC')", ts, "<i8"),
        ],
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
        "id UInt8, s String",
        [fixed("id", "UInt8", np.arange(len(values)), "<u1"), string_column("s", values)],
        len(values),
        select="s, length(s)",
    )
    assert [r[0] for r in rows] == values
    assert [r[1] for r in rows] == [len(v.encode()) for v in values]
    # raw bytes (not UTF-8) go through the same String body
    rows = load(
        store,
        "id UInt8, s String",
        [fixed("id", "UInt8", [0, 1], "<u1"), Column("s", "String", strings([b"\xff\x00\xfe", b""]))],
        2,
        select="hex(s)",
        table="raw",
    )
    assert rows == [("FF00FE",), ("",)]


def test_low_cardinality_roundtrip(store):
    # u1 indexes (3, 255), u2 (256, 257, 65535), u4 (65536, 65537)
    for keys in (3, 255, 256, 257, 65535, 65536, 65537):
        dictionary = [f"k{i}-é" for i in range(keys)]
        rng = np.random.default_rng(keys)
        # every key at least once, the last key included, in shuffled order, plus repeats
        index = np.concatenate([rng.permutation(keys), rng.integers(0, keys, 50), [keys - 1, 0]])
        n = index.shape[0]
        table = f"lc{keys}"
        rows = load(
            store,
            "id UInt32, s LowCardinality(String)",
            [fixed("id", "UInt32", np.arange(n), "<u4"), low_cardinality("s", dictionary, index)],
            n,
            select="s",
            table=table,
        )
        assert [r[0] for r in rows] == [dictionary[k] for k in index.tolist()], keys
        typ = store.client.query(f"SELECT toTypeName(s), uniqExact(s) FROM {store.db}.{table} GROUP BY 1")
        assert typ.result_rows == [("LowCardinality(String)", keys)]


def test_low_cardinality_with_empty_string_key(store):
    rows = load(
        store,
        "id UInt8, s LowCardinality(String)",
        [fixed("id", "UInt8", np.arange(4), "<u1"), low_cardinality("s", ["x", ""], np.array([1, 0, 1, 0]))],
        4,
        select="s",
    )
    assert rows == [("",), ("x",), ("",), ("x",)]


def test_low_cardinality_zero_rows(store):
    rows = load(
        store,
        "id UInt8, s LowCardinality(String)",
        [fixed("id", "UInt8", np.zeros(0), "<u1"), low_cardinality("s", [], np.zeros(0, dtype=np.uint8))],
        0,
    )
    assert rows == []


def test_zero_row_block_of_other_columns(store):
    rows = load(
        store,
        "id UInt8, s String, a Array(UInt64), m Map(String, String)",
        [
            fixed("id", "UInt8", np.zeros(0), "<u1"),
            string_column("s", []),
            array_column("a", "UInt64", np.zeros(0, dtype=np.uint64), np.zeros(0), "<u8"),
            map_column("m", []),
        ],
        0,
    )
    assert rows == []


def test_array_columns_roundtrip(store):
    lengths = np.array([2, 0, 3, 0, 1])
    counts = np.array([1, 2**64 - 1, 3, 4, 5, 0], dtype=np.uint64)
    bounds = np.array([0.5, 1.0, -1.0, 2.0, 1e300, -np.inf])
    rows = load(
        store,
        "id UInt8, counts Array(UInt64), bounds Array(Float64), empty Array(Int64)",
        [
            fixed("id", "UInt8", np.arange(5), "<u1"),
            array_column("counts", "UInt64", lengths, counts, "<u8"),
            array_column("bounds", "Float64", lengths, bounds, "<f8"),
            array_column("empty", "Int64", np.zeros(5, dtype=np.int64), np.zeros(0), "<i8"),
        ],
        5,
        select="counts, bounds, empty, length(counts)",
    )
    assert [r[0] for r in rows] == [[1, 2**64 - 1], [], [3, 4, 5], [], [0]]
    assert [r[1] for r in rows] == [[0.5, 1.0], [], [-1.0, 2.0, 1e300], [], [-np.inf]]
    assert [r[2] for r in rows] == [[]] * 5
    assert [r[3] for r in rows] == [2, 0, 3, 0, 1]


def test_nullable_and_low_cardinality_of_roundtrip(store):
    values = np.array([1.5, 0.0, -0.0, 7.0, 0.0])
    nulls = np.array([False, True, False, False, True])
    words = ["x", "", "é", "x", "y"]
    rows = load(
        store,
        "id UInt8, v Nullable(Float64), s LowCardinality(String), ts DateTime64(9, 'UTC')",
        [
            fixed("id", "UInt8", np.arange(5), "<u1"),
            nullable(fixed("v", "Float64", values, "<f8"), nulls),
            low_cardinality_of("s", words),
            fixed("ts", "DateTime64(9, 'UTC')", np.arange(5) + 1_700_000_000_123_456_789, "<i8"),
        ],
        5,
        select="v, s, toUnixTimestamp64Nano(ts)",
    )
    assert [r[0] for r in rows] == [1.5, None, -0.0, 7.0, None]
    assert [r[1] for r in rows] == words
    assert [r[2] for r in rows] == [1_700_000_000_123_456_789 + i for i in range(5)]
    empty = load(
        store,
        "id UInt8, v Nullable(Float64)",
        [fixed("id", "UInt8", [], "<u1"), nullable(fixed("v", "Float64", [], "<f8"), np.zeros(0))],
        0,
        table="empty",
    )
    assert empty == []


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
        "id UInt8, m Map(String, String)",
        [fixed("id", "UInt8", np.arange(len(maps)), "<u1"), map_column("m", maps)],
        len(maps),
        select="m, mapKeys(m), mapValues(m)",
    )
    assert [r[0] for r in rows] == [dict(m) for m in maps]
    assert [r[1] for r in rows] == [[k for k, _ in m] for m in maps]
    assert [r[2] for r in rows] == [[v for _, v in m] for m in maps]
