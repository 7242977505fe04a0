"""ferry.collector.storage.native: Native-format blocks, byte layout and a real insert into chDB."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest

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


def u64(*xs: int) -> bytes:
    return struct.pack(f"<{len(xs)}Q", *xs)


def load(
    store, ddl: str, columns: list[Column], rows: int, select: str = "*", order: str = "id", table: str = "t"
) -> list[tuple]:
    """Create `table` with `ddl`, insert the Native block, read back `select` ordered by `order`."""
    store.client.command(f"CREATE TABLE {store.db}.{table} ({ddl}) ENGINE = Memory")
    store.client.raw_insert(f"{store.db}.{table}", None, insert_block=block(columns, rows), fmt="Native")
    return store.client.query(f"SELECT {select} FROM {store.db}.{table} ORDER BY {order}").result_rows


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


def test_ferry_tables_accept_blocks_like_the_write_path(store):
    """The samples / histograms / series layouts rows.py and writer.py build, into Ferry's own schema."""
    # recent timestamps: these tables have a TTL, and expired rows may be dropped as soon as they land
    now = int(time.time()) * 1000
    t = np.array([now - 1000, now - 500, now], dtype=np.int64)
    store.insert_native(
        "samples",
        block(
            [
                fixed("series_id", "UInt64", np.array([2**64 - 5, 7, 7], dtype=np.uint64), "<u8"),
                low_cardinality("name", ["cpu", "mem"], np.array([1, 0, 0])),
                fixed("ts", "DateTime64(3, 'UTC')", t, "<i8"),
                fixed("value", "Float64", np.array([1.25, -2.0, 3.5]), "<f8"),
            ],
            3,
        ),
    )
    assert store.query(
        f"SELECT series_id, name, toUnixTimestamp64Milli(ts), value FROM {store.db}.samples ORDER BY ts"
    ) == [(2**64 - 5, "mem", t[0], 1.25), (7, "cpu", t[1], -2.0), (7, "cpu", t[2], 3.5)]

    store.insert_native(
        "histograms",
        block(
            [
                fixed("series_id", "UInt64", np.array([1, 1]), "<u8"),
                low_cardinality("name", ["lat"], np.array([0, 0])),
                fixed("ts", "DateTime64(3, 'UTC')", t[:2], "<i8"),
                fixed("sum", "Float64", np.array([10.0, 0.0]), "<f8"),
                fixed("count", "UInt64", np.array([6, 0]), "<u8"),
                array_column("bounds", "Float64", np.array([2, 0]), np.array([1.0, 5.0]), "<f8"),
                array_column("counts", "UInt64", np.array([3, 1]), np.array([1, 2, 3, 0]), "<u8"),
            ],
            2,
        ),
    )
    assert store.query(f"SELECT name, sum, count, bounds, counts FROM {store.db}.histograms ORDER BY ts") == [
        ("lat", 10.0, 6, [1.0, 5.0], [1, 2, 3]),
        ("lat", 0.0, 0, [], [0]),
    ]

    store.insert_native(
        "series",
        block(
            [
                fixed("series_id", "UInt64", np.array([9]), "<u8"),
                string_column("name", ["cpu"]),
                string_column("kind", ["gauge"]),
                string_column("unit", ["1"]),
                map_column("labels", [[("cpu", "0"), ("state", "idle")]]),
                string_column("host", ["h1"]),
                fixed("first_seen", "DateTime64(3, 'UTC')", t[:1], "<i8"),
                fixed("last_seen", "DateTime64(3, 'UTC')", t[2:], "<i8"),
            ],
            1,
        ),
    )
    assert store.query(
        f"SELECT series_id, name, kind, unit, labels, host, toUnixTimestamp64Milli(first_seen), "
        f"toUnixTimestamp64Milli(last_seen) FROM {store.db}.series"
    ) == [(9, "cpu", "gauge", "1", {"cpu": "0", "state": "idle"}, "h1", t[0], t[2])]
