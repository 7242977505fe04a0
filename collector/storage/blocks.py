"""Insert blocks for a declared table: a value per column in, a pyarrow Table out.

The row builders (collector.rows, records_rows, writer, agents) call `block` with one value per
column of a `ferry.collector.storage.tables.Table`; the Table's schema is `schema(table)`, made
from the declaration by `arrow_type`, so a block can neither miss a column nor carry a type the
table does not have. `Store.insert` sends it with clickhouse-connect's `insert_arrow` (an Arrow
IPC file, FORMAT Arrow), which bench/native.py (issue 14) measured within 10% of the hand-written Native
encoder this replaced, end to end (docs/performance.md). What a column's value is, by type:

- UInt64, Float64, Int64, ...: a numpy array (or anything np.asarray takes); a numpy array of
  the column's dtype is wrapped, not copied;
- DateTime64(p, tz): int64 ticks of 10^-p s, the same (an Arrow timestamp over the same memory);
- String: a sequence of str; LowCardinality(String): one too, or a `Dictionary`;
- Map(String, String): a sequence of (key, value) pair sequences;
- Array(T) of a fixed-width T: `Ragged(lengths, flat)`; Nullable(T): `Masked(values, is_null)`;
- SimpleAggregateFunction(f, T): a value of T (Arrow has no aggregate types: the engine takes
  T's values for the column, as it stores them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from ferry.collector.storage.tables import Column, Table


class Dictionary(NamedTuple):
    """A LowCardinality(String) column as its distinct values and each row's position."""

    keys: Sequence[str]
    index: np.ndarray


class Ragged(NamedTuple):
    """An Array(T) column: each row's length, then every row's values end to end."""

    lengths: np.ndarray
    flat: np.ndarray


class Masked(NamedTuple):
    """A Nullable(T) column: the values (anything at NULL rows) and which rows are NULL."""

    values: Any
    is_null: np.ndarray


_NUMBERS = {
    "UInt8": np.uint8,
    "UInt16": np.uint16,
    "UInt32": np.uint32,
    "UInt64": np.uint64,
    "Int8": np.int8,
    "Int16": np.int16,
    "Int32": np.int32,
    "Int64": np.int64,
    "Float32": np.float32,
    "Float64": np.float64,
}
_TICKS = {"0": "s", "3": "ms", "6": "us", "9": "ns"}  # DateTime64 precision → Arrow time unit
# LowCardinality(String) goes as an Arrow dictionary with Arrow's usual int32 indexes
_DICTIONARY = pa.dictionary(pa.int32(), pa.string())


def _inside(type_: str, wrapper: str) -> str | None:
    """T of `wrapper(T)`, or None when `type_` is not one."""
    prefix = wrapper + "("
    return type_[len(prefix) : -1] if type_.startswith(prefix) and type_.endswith(")") else None


def arrow_type(type_: str) -> pa.DataType:
    """The Arrow type a column of ClickHouse type `type_` is sent as (TypeError for a type no
    written table declares)."""
    if type_ in _NUMBERS:
        return pa.from_numpy_dtype(_NUMBERS[type_])
    if (args := _inside(type_, "DateTime64")) is not None:
        precision, _, tz = args.partition(",")
        if precision.strip() in _TICKS:
            return pa.timestamp(_TICKS[precision.strip()], tz=tz.strip(" '") or None)
    if type_ == "String":
        return pa.string()
    if type_ == "LowCardinality(String)":
        return _DICTIONARY
    # a map's values and an array's items are never NULL (nor read as Nullable)
    if type_ == "Map(String, String)":
        return pa.map_(pa.string(), pa.field("value", pa.string(), nullable=False))
    if (inner := _inside(type_, "Array")) in _NUMBERS:
        return pa.list_(pa.field("item", arrow_type(inner), nullable=False))
    if (inner := _inside(type_, "Nullable")) is not None:
        return arrow_type(inner)  # nullable is the field's, see `schema`
    if (inner := _inside(type_, "SimpleAggregateFunction")) is not None:
        return arrow_type(inner.split(", ", 1)[1])
    raise TypeError(f"no Arrow type for ClickHouse type {type_}")


def schema(table: Table) -> pa.Schema:
    """The Arrow schema of `table`'s insert blocks: its columns in order, a field nullable only
    where the column is Nullable (so the engine reads each field as the declared type)."""
    found = _SCHEMAS.get(table)
    if found is None:
        found = _SCHEMAS[table] = pa.schema(
            pa.field(c.name, arrow_type(c.type), nullable=c.type.startswith("Nullable("))
            for c in table.columns
        )
    return found


_SCHEMAS: dict[Table, pa.Schema] = {}  # a block per frame: the schema is built once per table


def _numbers(values: Any, dtype: type) -> pa.Array:
    """A fixed-width Arrow array over `values` (zero-copy for a contiguous numpy array of dtype)."""
    return pa.array(np.ascontiguousarray(values, dtype=dtype))


def _array(type_: str, value: Any) -> pa.Array:
    """`value` as an Arrow array of `type_`'s Arrow type."""
    if type_ in _NUMBERS:
        return _numbers(value, _NUMBERS[type_])
    if type_.startswith("DateTime64("):
        return _numbers(value, np.int64).view(arrow_type(type_))
    if type_ == "String":
        return pa.array(value, type=pa.string())
    if type_ == "LowCardinality(String)":
        if isinstance(value, Dictionary):
            index = _numbers(value.index, np.int32)
            keys = value.keys if isinstance(value.keys, pa.Array) else pa.array(value.keys, type=pa.string())
            # the builders make the indexes, each within its keys: no check of every row
            return pa.DictionaryArray.from_arrays(index, keys, safe=False)
        return pa.array(value, type=pa.string()).dictionary_encode()
    if type_ == "Map(String, String)":
        return pa.array(value, type=arrow_type(type_))
    if (inner := _inside(type_, "Array")) in _NUMBERS:
        offsets = np.zeros(len(value.lengths) + 1, dtype=np.int32)
        np.cumsum(value.lengths, out=offsets[1:])
        flat = _numbers(value.flat, _NUMBERS[inner])
        return pa.ListArray.from_arrays(pa.array(offsets), flat, type=arrow_type(type_))
    if (inner := _inside(type_, "Nullable")) is not None:
        values = _array(inner, value.values)
        if values.type.num_fields or pa.types.is_dictionary(values.type):
            raise TypeError(f"no Arrow array for ClickHouse type {type_}: only a flat T takes NULLs")
        # T's buffers under a validity bitmap (Arrow's bit per row, 1 = a value)
        valid = pa.array(~np.asarray(value.is_null, dtype=bool)).buffers()[1]
        return pa.Array.from_buffers(values.type, len(values), [valid, *values.buffers()[1:]])
    if (inner := _inside(type_, "SimpleAggregateFunction")) is not None:
        return _array(inner.split(", ", 1)[1], value)
    raise TypeError(f"no Arrow array for ClickHouse type {type_}")


def column(col: Column, value: Any) -> pa.Array:
    """One declared column of a block, as its declared type's Arrow array."""
    return _array(col.type, value)


def block(table: Table, rows: int, values: Mapping[str, Any]) -> pa.Table:
    """An insert block of `rows` rows for `table`: `values` holds exactly its columns."""
    if set(values) != set(table.names):
        missing, extra = set(table.names) - set(values), set(values) - set(table.names)
        raise KeyError(f"block for {table.name}: missing columns {sorted(missing)}, unknown {sorted(extra)}")
    arrays = [column(c, values[c.name]) for c in table.columns]
    for c, array in zip(table.columns, arrays, strict=True):
        if len(array) != rows:
            raise ValueError(f"block for {table.name}: column {c.name} has {len(array)} rows, not {rows}")
    return pa.Table.from_arrays(arrays, schema=schema(table))
