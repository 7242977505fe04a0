"""The series a QueryRange matched, and the group of each: the lookup QueryRange runs first.

Without group-by labels every series is its own group, labelled with all its labels. With them,
the store groups the series itself (`matched_sql`): one row per distinct tuple of the group-by
labels' values, holding that group's series ids and kinds, so only groups cross into Python —
200 rows for 3,200 series grouped by host, not one labels map per series.

`Matched.locate` maps a column of series ids read back from a points table to group indexes
with numpy (searchsorted over the sorted ids), not a per-row dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ferry.collector.query.sql import LimitExceeded, series_where


@dataclass
class Matched:
    labels: list[dict[str, str]]  # per group, in answer order
    ids: np.ndarray  # uint64 series ids, ascending
    group: np.ndarray  # int64: the group of ids[i]
    kinds: np.ndarray  # str: the kind name of ids[i]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def locate(self, series_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group of each of `series_ids`, and which of them were matched (a series that
        arrived after the lookup is not: its rows are dropped)."""
        sids = np.asarray(series_ids, dtype=np.uint64)
        if self.ids.shape[0] == 0:
            known = np.zeros(sids.shape[0], dtype=bool)
            return np.zeros(0, dtype=np.int64), known
        at = np.minimum(np.searchsorted(self.ids, sids), self.ids.shape[0] - 1)
        known = self.ids[at] == sids
        return self.group[at[known]], known

    def kind_of(self, series_ids: np.ndarray) -> np.ndarray:
        """Kind names of `series_ids`, which must all have been matched."""
        return self.kinds[np.searchsorted(self.ids, np.asarray(series_ids, dtype=np.uint64))]


def matched_sql(db: str, metric: str, matchers, by: list[str], limit: int) -> tuple[str, dict[str, Any]]:
    """Series of `metric` under `matchers`, at most `limit` of them.

    A series may have a row in each unmerged part; kind and labels are functions of its id, so
    any one row (LIMIT 1 BY) is its row.
    Without `by`: one row (series_id, kind, labels) per series. With `by`: one row per group,
    (key, series ids, kinds, matched series in all), the key being the `by` labels' values (a
    missing label reads as "")."""
    params: dict[str, Any] = {"limit": limit}
    cond = series_where(metric, matchers, params)
    if not by:
        sql = (
            f"SELECT series_id, kind, labels FROM {db}.series WHERE {cond} "
            "LIMIT 1 BY series_id LIMIT {limit:UInt64}"
        )
        return sql, params
    params["by"] = list(by)
    sql = (
        "SELECT key, groupArray(series_id), groupArray(kind), sum(count()) OVER () "
        "FROM (SELECT series_id, kind, arrayMap(k -> labels[k], {by:Array(String)}) AS key "
        f"FROM {db}.series WHERE {cond} LIMIT 1 BY series_id LIMIT {{limit:UInt64}}) "
        "GROUP BY key ORDER BY key"
    )
    return sql, params


def matched(store, metric: str, matchers, by: list[str], max_series: int, settings: str) -> Matched:
    """Look up the series `metric` and `matchers` select and group them by the `by` labels;
    LimitExceeded when there are more than `max_series`."""
    sql, params = matched_sql(store.db, metric, matchers, by, max_series + 1)
    rows = store.query(sql + settings, params)
    total = (int(rows[0][3]) if by else len(rows)) if rows else 0
    if total > max_series:
        raise LimitExceeded(
            f"{metric} with these matchers has more than {max_series} series; narrow the matchers"
        )
    if not by:
        rows = sorted(rows, key=lambda r: sorted(r[2].items()))
        labels = [dict(r[2]) for r in rows]
        ids = [r[0] for r in rows]
        group = list(range(len(rows)))
        kinds = [r[1] for r in rows]
    else:
        labels = [dict(zip(by, key, strict=True)) for key, *_ in rows]
        ids = [sid for r in rows for sid in r[1]]
        group = [g for g, r in enumerate(rows) for _ in r[1]]
        kinds = [k for r in rows for k in r[2]]
    ids_a = np.asarray(ids, dtype=np.uint64)
    order = np.argsort(ids_a, kind="stable")
    return Matched(
        labels=labels,
        ids=ids_a[order],
        group=np.asarray(group, dtype=np.int64)[order],
        kinds=np.asarray(kinds, dtype=object)[order],
    )
