"""Insert blocks for a declared table: a value per column in, a Native block out.

The row builders (collector.rows, records_rows, writer, agents) call `block` with one value per
column of a `ferry.collector.storage.tables.Table`; each column is encoded by its declared type
with `ferry.collector.storage.native` and sent under that type, so a block can neither miss a
column nor carry a type the table does not have. What a column's value is, by type:

- UInt64, Float64, Int64, DateTime64 (ticks): a numpy array (or anything np.asarray takes);
- String: a sequence of str; LowCardinality(String): one too, or a `Dictionary`;
- Map(String, String): a sequence of (key, value) pair sequences;
- Array(T) of a fixed-width T: `Ragged(lengths, flat)`; Nullable(T): `Masked(values, is_null)`;
- SimpleAggregateFunction(f, T): a value of T (its Native form is T's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ferry.collector.storage import native
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


_FIXED = {"UInt8": "<u1", "UInt32": "<u4", "UInt64": "<u8", "Int64": "<i8", "Float64": "<f8"}


def _inside(type_: str, wrapper: str) -> str | None:
    """T of `wrapper(T)`, or None when `type_` is not one."""
    prefix = wrapper + "("
    return type_[len(prefix) : -1] if type_.startswith(prefix) and type_.endswith(")") else None


def _encoded(name: str, type_: str, value: Any) -> native.Column:
    """`value` as a Native column of `type_` (the type it is sent as is the caller's)."""
    if type_ in _FIXED:
        return native.fixed(name, type_, value, _FIXED[type_])
    if type_.startswith("DateTime64("):
        return native.fixed(name, type_, value, "<i8")
    if type_ == "String":
        return native.string_column(name, value)
    if type_ == "LowCardinality(String)":
        if isinstance(value, Dictionary):
            return native.low_cardinality(name, value.keys, value.index)
        return native.low_cardinality_of(name, value)
    if type_ == "Map(String, String)":
        return native.map_column(name, value)
    if (inner := _inside(type_, "Array")) in _FIXED:
        return native.array_column(name, inner, value.lengths, value.flat, _FIXED[inner])
    if (inner := _inside(type_, "Nullable")) is not None:
        return native.nullable(_encoded(name, inner, value.values), value.is_null)
    if (inner := _inside(type_, "SimpleAggregateFunction")) is not None:
        return _encoded(name, inner.split(", ", 1)[1], value)
    raise TypeError(f"column {name!r}: no Native encoding for {type_}")


def column(col: Column, value: Any) -> native.Column:
    """One declared column of a block, under its declared type."""
    encoded = _encoded(col.name, col.type, value)
    return native.Column(col.name, col.type, encoded.data)


def block(table: Table, rows: int, values: Mapping[str, Any]) -> bytes:
    """A Native block of `rows` rows for `table`: `values` holds exactly its columns."""
    if set(values) != set(table.names):
        missing, extra = set(table.names) - set(values), set(values) - set(table.names)
        raise KeyError(f"block for {table.name}: missing columns {sorted(missing)}, unknown {sorted(extra)}")
    return native.block([column(c, values[c.name]) for c in table.columns], rows)
