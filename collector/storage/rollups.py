"""DDL of the 1-minute and 1-hour rollups of `samples` and `histograms`, fed by materialized
views.

Each `samples_*` row holds, per series and bucket: min, max, sum and count (SimpleAggregateFunction
columns: a merge keeps them exact) and the last value (argMax state on the point's ms time).
Each `histograms_*` row holds, per series, bucket and bound list: the observations' sum and
count and the bucket counts added element-wise (a sumForEach state). Added bucket counts are
exactly the histogram of the bucket, so quantiles of histograms come from these rollups with
the same interpolation as from raw points; a series that changed its bounds within a bucket
keeps one row per bound list.

There is no quantile state for plain series: a t-digest column made every insert into
`samples` about twice as slow again (measured per 50k-point insert on embedded chDB: no views
3.0 M points/s; 1m view with min/max/sum/count 2.0 M; + last 1.5 M; + t-digest and the 1h view
0.7 M), and quantiles are answered exactly from the raw samples (within their retention)
instead.
The 1m view reads each insert into `samples`; the 1h view reads what the 1m view writes (its
partial aggregates, far fewer rows than the raw points) and merges them, which keeps min, max,
sum, count and last exact. A deduplicated insert into `samples` (a resent frame's token) reaches
neither view.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.collector.storage import tables
from ferry.collector.storage.layout import Layout


@dataclass(frozen=True)
class Resolution:
    name: str  # "1m", "1h"
    table: str  # samples_1m
    histogram_table: str  # histograms_1m
    bucket_fn: str  # toStartOfMinute
    step_ms: int


RESOLUTIONS = (
    Resolution("1m", "samples_1m", "histograms_1m", "toStartOfMinute", 60_000),
    Resolution("1h", "samples_1h", "histograms_1h", "toStartOfHour", 3_600_000),
)


def rollup_tables(layout: Layout, ttl_days: dict[str, int]) -> list[str]:
    """Tables, views, and a backfill from the raw samples already stored (for a store that had
    samples before this migration; the collector runs it before it takes any frame)."""
    out = []
    for r in RESOLUTIONS:
        out += [
            *tables.TABLES[r.table].create(layout, ttl_days[r.table]),
            _backfill(layout, r.table, _select(layout, r, False, _empty(layout, r.table))),
            layout.view(f"{r.table}_mv", r.table, _select(layout, r, True)),
        ]
    return out


def histogram_rollup_tables(layout: Layout, ttl_days: dict[str, int]) -> list[str]:
    """The same for `histograms`: tables, a one-time backfill, views (1h reads the 1m rollup)."""
    out = []
    for r in RESOLUTIONS:
        table = r.histogram_table
        out += [
            *tables.TABLES[table].create(layout, ttl_days[table]),
            _backfill(layout, table, _histogram_select(layout, r, False, _empty(layout, table))),
            layout.view(f"{table}_mv", table, _histogram_select(layout, r, True)),
        ]
    return out


def _backfill(layout: Layout, table: str, select: str) -> str:
    """INSERT the rollup of what is stored into the rollup table. The select names the tables
    the collector uses (on a cluster, the Distributed ones), so it runs once, from one node."""
    return f"INSERT INTO {layout.db}.{table} {select}"


def _empty(layout: Layout, table: str) -> str:
    """Backfill only an empty table: skipped if a cut-off earlier run got this far."""
    return f"WHERE (SELECT count() FROM {layout.db}.{table}) = 0"


def _source(layout: Layout, table: str, local: bool) -> str:
    """`table` as the collector names it, or (`local`, for a view) its rows on this node."""
    return f"{layout.db}.{layout.local(table) if local else table}"


def _select(layout: Layout, r: Resolution, local: bool, where: str = "") -> str:
    if r.name == "1h":  # from the 1m rollup: merge its partial aggregates
        return f"""SELECT series_id, name, {r.bucket_fn}(s.ts) AS ts,
    min(s.min) AS min, max(s.max) AS max, sum(s.sum) AS sum, sum(s.count) AS count,
    argMaxMergeState(s.last) AS last
FROM {_source(layout, "samples_1m", local)} AS s {where} GROUP BY series_id, name, ts"""
    return f"""SELECT series_id, name, {r.bucket_fn}(s.ts) AS ts,
    min(value) AS min, max(value) AS max, sum(value) AS sum, count() AS count,
    argMaxState(value, s.ts) AS last
FROM {_source(layout, "samples", local)} AS s {where} GROUP BY series_id, name, ts"""


def _histogram_select(layout: Layout, r: Resolution, local: bool, where: str = "") -> str:
    if r.name == "1h":
        source, counts = _source(layout, "histograms_1m", local), "sumForEachMergeState(s.counts)"
    else:
        source, counts = _source(layout, "histograms", local), "sumForEachState(s.counts)"
    return f"""SELECT series_id, name, {r.bucket_fn}(s.ts) AS ts, bounds,
    sum(s.sum) AS sum, sum(s.count) AS count, {counts} AS counts
FROM {source} AS s {where} GROUP BY series_id, name, ts, bounds"""
