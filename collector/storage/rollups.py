"""DDL of the 1-minute and 1-hour rollups of `samples` and `histograms`, fed by materialized
views.

Since migration 7 (issue 16) each rollup is fed by its own view from its own Null table,
`<rollup>_feed` (`feed_views`): the collector inserts a group's raw rows there, with the rollup's
ledger rows (ferry.collector.storage.tables), as one insert per rollup, so that every table has
its own dedup marks and a crash between two of a group's inserts is repaired table by table on
resend. Until then (migrations 3 and 4, below, kept as they ran) the views read every insert into
`samples` and `histograms`, and a crash between the raw part and a view's part lost that block
from the rollup for good.

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
Until migration 7 the 1m view read each insert into `samples` and the 1h view what the 1m view
wrote; since, each view reads its own feed, the raw rows of a group (each insert aggregated in
the view, merged exactly by the engine later).
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


def feed_views(layout: Layout) -> list[str]:
    """Migration 7: the ledger columns and projections, and the rollups fed from their feeds
    instead of from every insert into the raw tables (the old views are dropped)."""
    out: list[str] = []
    for raw in tables.RAW:
        if raw in tables.ROLLUPS:
            added = [c.ddl() for c in tables.IDENTITY_COLUMNS]
        else:  # a record table has had agent_id from the start
            added = [tables.EPOCH.ddl(), tables.SEQ.ddl()]
        out += layout.add_columns(raw, added)
        out += layout.add_projection(raw, tables.LEDGER.ddl(), tables.LEDGER.name)
    for rolled in tables.ROLLUPS.values():
        for rollup in rolled:
            out += layout.add_columns(rollup, [tables.ROLLUP_SEQ.ddl()])
            out.append(layout.drop_view(f"{rollup}_mv"))
            out += tables.FEEDS[rollup].create(layout)
    for r in RESOLUTIONS:
        out.append(layout.view(f"{r.table}_mv", r.table, _feed_select(layout, r)))
        out.append(
            layout.view(f"{r.histogram_table}_mv", r.histogram_table, _histogram_feed_select(layout, r))
        )
    return out


def _ledger_seq() -> str:
    """A rollup row's `seq`: a ledger row's own, 0 for data rows."""
    return f"max(if(startsWith(s.name, '{tables.LEDGER_PREFIX}'), s.seq, 0)) AS seq"


def _feed_select(layout: Layout, r: Resolution) -> str:
    return f"""SELECT series_id, name, {r.bucket_fn}(s.ts) AS ts,
    min(value) AS min, max(value) AS max, sum(value) AS sum, count() AS count,
    argMaxState(value, s.ts) AS last, {_ledger_seq()}
FROM {_source(layout, f"{r.table}_feed", True)} AS s GROUP BY series_id, name, ts"""


def _histogram_feed_select(layout: Layout, r: Resolution) -> str:
    return f"""SELECT series_id, name, {r.bucket_fn}(s.ts) AS ts, bounds,
    sum(s.sum) AS sum, sum(s.count) AS count, sumForEachState(s.counts) AS counts, {_ledger_seq()}
FROM {_source(layout, f"{r.histogram_table}_feed", True)} AS s GROUP BY series_id, name, ts, bounds"""


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
    the collector uses (on a cluster, the Distributed ones), so it runs once, from one node.
    It fills the columns the rollups had then (`seq`, added by migration 7, stays 0)."""
    columns = ", ".join(c.name for c in tables.TABLES[table].columns if c != tables.ROLLUP_SEQ)
    return f"INSERT INTO {layout.db}.{table} ({columns}) {select}"


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
