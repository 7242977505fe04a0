"""The groups an aggregated query answers: looked up in the `series` table, counted in the store.

An operand's series are those of its metric under its matchers; its groups are one per series
(`by` None), one for all of them (`by` ()), or one per distinct tuple of the `by` labels' values
(a missing label reads as ""). Every group has a 64-bit key, `h`: the series id, 0, or
cityHash64 of the labels' values. The lookup (`lookup`) answers only groups — their keys,
labels, series counts and kinds — so 256k matched series grouped by host cross into Python as
2,000 rows; the points statements (ferry.collector.query.grouped) compute the same key per
series with `source_sql` and aggregate by it in the store.

Two different label tuples with one cityHash64 would merge silently in the store; the lookup
compares keys and tuples and refuses such a query rather than answer it wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ferry.collector.query.answer import Operand
from ferry.collector.query.sql import LimitExceeded, QueryError, series_where

if TYPE_CHECKING:
    from ferry.collector.storage.store import Store


@dataclass
class Groups:
    labels: list[dict[str, str]]  # per group, in answer order
    keys: np.ndarray  # uint64 group keys, row-aligned with labels
    kinds: list[str]  # the distinct kind names of the matched series
    units: list[str] = field(default_factory=list)  # the distinct units of the matched series

    def __len__(self) -> int:
        return len(self.labels)

    def locate(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group index of each of `keys`, and which of them the lookup found (a group of
        series that arrived after it is not: its rows are dropped)."""
        found = np.asarray(keys, dtype=np.uint64)
        if not len(self):
            return np.zeros(0, dtype=np.int64), np.zeros(found.shape[0], dtype=bool)
        order = np.argsort(self.keys)
        sorted_keys = self.keys[order]
        at = np.minimum(np.searchsorted(sorted_keys, found), sorted_keys.shape[0] - 1)
        known = sorted_keys[at] == found
        return order[at[known]].astype(np.int64), known


# A series' group-by key: its `by` labels' values (a missing label reads ""). The lookup and the
# points statements must compute it alike, or `Groups.locate` drops the points of every group.
BY_KEY = "arrayMap(k -> labels[k], {by:Array(String)})"


def group_key(op: Operand, params: dict[str, Any]) -> str:
    """The SQL expression of a series row's group key (over the `series` table's columns)."""
    if op.by is None:
        return "series_id"
    if not op.by:
        return "toUInt64(0)"
    params["by"] = list(op.by)
    return f"cityHash64({BY_KEY})"


def source_sql(db: str, op: Operand, params: dict[str, Any]) -> str:
    """One row (series_id, kind, h) per matched series: what a points statement joins.

    A series may have a row in each unmerged part; kind and labels are functions of its id, so
    any one row (LIMIT 1 BY) is its row."""
    cond = series_where(op.metric, op.matchers, params)
    return (
        f"SELECT series_id, kind, {group_key(op, params)} AS h FROM {db}.series "
        f"WHERE {cond} LIMIT 1 BY series_id"
    )


def lookup_sql(db: str, op: Operand, limit: int) -> tuple[str, dict[str, Any]]:
    """At most `limit` groups of `op` as rows (h, labels or key, series, kinds, groups in all,
    units)."""
    params: dict[str, Any] = {"limit": limit}
    cond = series_where(op.metric, op.matchers, params)
    if op.by is None:
        sql = (
            "SELECT series_id, labels, 1, [kind], count() OVER (), [unit] FROM "
            f"(SELECT series_id, kind, labels, unit FROM {db}.series WHERE {cond} LIMIT 1 BY series_id) "
            "LIMIT {limit:UInt64}"
        )
        return sql, params
    if op.by:
        params["by"] = list(op.by)
        key, h = BY_KEY, "cityHash64(key)"
    else:  # one group, keyed 0 as `group_key` keys its series
        key, h = "CAST([], 'Array(String)')", "toUInt64(0)"
    sql = (
        f"SELECT {h}, key, count(), groupUniqArray(kind), count() OVER (), groupUniqArray(unit) FROM "
        f"(SELECT series_id, kind, unit, {key} AS key FROM {db}.series WHERE {cond} LIMIT 1 BY series_id) "
        "GROUP BY key ORDER BY key LIMIT {limit:UInt64}"
    )
    return sql, params


def lookup(store: Store, op: Operand, max_groups: int, settings: str) -> Groups:
    """The groups of `op`; LimitExceeded past `max_groups` of them."""
    sql, params = lookup_sql(store.db, op, max_groups + 1)
    rows = store.query(sql + settings, params)
    total = int(rows[0][4]) if rows else 0
    if total > max_groups:
        per = " (one per series: group them with --by / by (...))" if op.by is None else ""
        raise LimitExceeded(
            f"{op.metric} with these matchers has {total} groups{per} > query_max_groups "
            f"{max_groups} allowed; narrow the matchers or group by fewer labels"
        )
    if op.by is None:
        rows = sorted(rows, key=lambda r: sorted(r[1].items()))
        labels = [dict(r[1]) for r in rows]
    else:
        labels = [dict(zip(op.by, r[1], strict=True)) for r in rows]
    keys = np.asarray([r[0] for r in rows], dtype=np.uint64)
    if len(np.unique(keys)) != len(rows):
        raise QueryError(
            f"{op.metric}: two groups of by ({', '.join(op.by or ())}) share one 64-bit key; "
            "group by other labels"
        )
    kinds = sorted({k for r in rows for k in r[3]})
    units = sorted({u for r in rows for u in r[5]})
    return Groups(labels, keys, kinds, units)
