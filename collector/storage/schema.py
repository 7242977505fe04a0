"""The DDL of Ferry's migrations; `ferry.collector.storage.migrate` applies it in numbered steps
when the collector starts. Tables are created as `ferry.collector.storage.tables` declares them;
the column changes of later migrations (codecs) are kept as they were written.
`ferry.collector.storage.layout` renders each table for one node or for a cluster.

Names are interpolated only after `layout.check_identifier`; nothing user-supplied reaches DDL.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.collector.storage import tables
from ferry.collector.storage.layout import Layout


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "ferry"
    raw_ttl_days: int = 15
    events_ttl_days: int = 30
    logs_ttl_days: int = 15
    rollup_1m_ttl_days: int = 90
    rollup_1h_ttl_days: int = 730
    alerts_ttl_days: int = 90  # alert transitions and acknowledgements
    # how many recent insert tokens each table remembers for dedup
    dedup_window: int = 10_000
    cluster: str = ""  # a ClickHouse cluster name: Replicated + Distributed tables ON CLUSTER

    def layout(self) -> Layout:
        return Layout(self.database, self.cluster, self.dedup_window)


def metric_tables(layout: Layout, ttl: int) -> list[str]:
    """Migration 1: the database and the metric tables, as `tables` declares them now."""
    return [
        layout.database(),
        *tables.SERIES.create(layout),
        *tables.SAMPLES.create(layout, ttl),
        *tables.HISTOGRAMS.create(layout, ttl),
        *tables.AGENTS.create(layout),
    ]


def record_tables(
    layout: Layout, opts: SchemaOptions, kinds: tuple[str, ...] = ("events", "logs")
) -> list[str]:
    """Migration 2: the tables of the record kinds `kinds` (a kind added later brings its own
    migration naming it), retention `<kind>_ttl_days`."""
    return [s for k in kinds for s in tables.TABLES[k].create(layout, int(getattr(opts, f"{k}_ttl_days")))]


def alert_tables(layout: Layout, ttl_days: int) -> list[str]:
    """Migration 8: alert transitions and acknowledgements (retention `alerts_ttl_days`) and
    silences (no retention: a row per silence)."""
    return [
        *tables.ALERTS.create(layout, ttl_days),
        *tables.ALERT_ACKS.create(layout, ttl_days),
        *tables.SILENCES.create(layout),
    ]


# Measured on a generated day of 200 hosts' metrics (bench/storage.py --codecs): the value column
# took 2.52 bytes per point with Gorilla + ZSTD(1) and 1.66 with ZSTD(3) alone. Host metrics
# (ratios at full float precision, counters with large since-boot values) do not have the
# slowly-changing bit patterns Gorilla's XOR encoding pays off on.
VALUE_CODEC = "CODEC(ZSTD(3))"


def value_codecs(layout: Layout) -> list[str]:
    """Float columns of the raw and rollup tables from Gorilla to ZSTD(3). Existing parts keep
    their codec until merged; new parts use the new one."""
    c = VALUE_CODEC
    rollup = [
        f"min SimpleAggregateFunction(min, Float64) {c}",
        f"max SimpleAggregateFunction(max, Float64) {c}",
        f"sum SimpleAggregateFunction(sum, Float64) {c}",
    ]
    columns = {
        "samples": [f"value Float64 {c}"],
        "histograms": [f"sum Float64 {c}"],
        "samples_1m": [*rollup, f"last AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')) {c}"],
        "samples_1h": [*rollup, f"last AggregateFunction(argMax, Float64, DateTime64(3, 'UTC')) {c}"],
        "histograms_1m": [f"sum SimpleAggregateFunction(sum, Float64) {c}"],
        "histograms_1h": [f"sum SimpleAggregateFunction(sum, Float64) {c}"],
    }
    return [layout.alter_column(table, column) for table, cols in columns.items() for column in cols]


# Migration 6, measured the same way once the agent sent its utilizations rounded to 4 decimals
# (agent/collectors/filesystem.py `ratio`): samples took 1.22 bytes per point with ZSTD(3), 1.10
# with Delta + ZSTD(3) (counters, uptime and most gauges change by little from one point to the
# next; the integer difference of neighbouring doubles is mostly zero bytes), and 0.98 with Delta
# + ZSTD(5) in blocks of at least 1 MiB (MergeTree compresses a column from one mark to the next,
# 8192 rows or 64 KiB of values: ZSTD sees more of each series and its neighbours in 1 MiB).
# The rollups take Delta + ZSTD(3) and the same blocks (samples_1m 1.35 -> 1.09 bytes per raw
# point); ZSTD(5) gained nothing there. A read decompresses up to 1 MiB of a column for a
# granule instead of 64 KiB (max_compress_block_size, 1 MiB, is unchanged).
SAMPLES_VALUE_CODEC = "CODEC(Delta, ZSTD(5))"
ROLLUP_VALUE_CODEC = "CODEC(Delta, ZSTD(3))"
MIN_COMPRESS_BLOCK = tables.MIN_COMPRESS_BLOCK


def delta_codecs(layout: Layout) -> list[str]:
    """samples values and rollup min/max/sum with Delta first, and 1 MiB compressed blocks for
    those tables. Existing parts keep their codec and blocks until merged."""
    c = ROLLUP_VALUE_CODEC
    rollup = [
        f"min SimpleAggregateFunction(min, Float64) {c}",
        f"max SimpleAggregateFunction(max, Float64) {c}",
        f"sum SimpleAggregateFunction(sum, Float64) {c}",
    ]
    columns = {
        "samples": [f"value Float64 {SAMPLES_VALUE_CODEC}"],
        "samples_1m": rollup,
        "samples_1h": rollup,
    }
    return [
        *(layout.alter_column(table, column) for table, cols in columns.items() for column in cols),
        *(layout.alter_setting(table, MIN_COMPRESS_BLOCK) for table in columns),
    ]


# Migration 9, measured by bench/serieslookup.py on 994,000 generated series (2,000 hosts, 497
# each; `system.cpu.utilization` 256k of them): the lookup of `system.cpu.utilization{host=
# "h-0017"}` read every row of the metric (262,144, 27.8 ms median) sorted by (name, series_id),
# whose ids are hashes; sorted by (name, host, series_id) it reads one granule (8,192 rows,
# 2.5 ms). Skip indexes (bloom filters on mapKeys/mapValues), Map buckets and an inverted
# (name, key, value, series_id) table read as much or more: the series a host lookup returns
# are spread over every granule of the metric unless the sort key keeps them together. The
# copy takes 3.3 s for those 994k series (median of 3).
SERIES_REBUILT = "series_v9"  # the new table, filled, then exchanged with `series`
_LC = "LowCardinality(String)"
_MS = "DateTime64(3, 'UTC')"
# `series` as migration 9 makes it, written out (history, like the codecs above: a later change
# to tables.SERIES comes with a migration of its own, and this one still reads a version 8 table)
SERIES_9 = tables.Table(
    SERIES_REBUILT,
    (
        tables.Column("series_id", "UInt64"),
        tables.Column("name", _LC),
        tables.Column("kind", f"SimpleAggregateFunction(any, {_LC})"),
        tables.Column("unit", f"SimpleAggregateFunction(any, {_LC})"),
        tables.Column("labels", "SimpleAggregateFunction(any, Map(String, String))"),
        tables.Column("host", _LC),
        tables.Column("first_seen", f"SimpleAggregateFunction(min, {_MS})"),
        tables.Column("last_seen", f"SimpleAggregateFunction(max, {_MS})"),
    ),
    "AggregatingMergeTree",
    "(name, host, series_id)",
    "series_id",
    daily=False,
    dedup=False,
)


def series_by_host(layout: Layout) -> list[str]:
    """Migration 9: `series` sorted by (name, host, series_id), `host` a plain column equal to
    labels['host']. A sort key cannot change in place: the rows are copied into a new table made
    as SERIES_9 (what `tables.SERIES` declares), which is then exchanged with `series` (atomically) and the
    old one dropped. Run again after being cut off at any point, the statements drop what a
    previous run left under the new table's name (a partial copy, or the old table once
    exchanged: `series` then already holds the copy) and do it all again.

    On a cluster the copy goes through Distributed tables (read from every shard, written to
    the shard of each series id), the local tables are exchanged on every node, the Distributed
    `series` gets the new column type, and the new local table's replication path carries its
    UUID (`{uuid}`), so a run after an exchange never meets the path the current table uses.
    Runs at collector start, before ingest: rows written meanwhile by another collector of a
    cluster may miss the copy."""
    db, on, new = layout.db, layout.on_cluster, SERIES_REBUILT
    sync = " SYNC" if layout.cluster else ""
    drops = [f"DROP TABLE IF EXISTS {db}.{n}{on}{sync}" for n in dict.fromkeys((new, layout.local(new)))]
    create = SERIES_9.create(layout)
    if layout.cluster:
        local = layout.local(new)
        path = f"/clickhouse/tables/{{shard}}/{db}/{local}'"
        create[0] = create[0].replace(path, f"/clickhouse/tables/{{shard}}/{db}/{local}/{{uuid}}'")
    columns = ", ".join(SERIES_9.names)
    select = ", ".join("labels['host']" if c == "host" else c for c in SERIES_9.names)
    copy = f"INSERT INTO {db}.{new} ({columns}) SELECT {select} FROM {db}.series"
    if layout.cluster:
        copy += " SETTINGS distributed_foreground_insert = 1"
    out = [
        *drops,
        *create,
        copy,
        f"EXCHANGE TABLES {db}.{layout.local('series')} AND {db}.{layout.local(new)}{on}",
    ]
    if layout.cluster:  # the Distributed table over the exchanged local ones: its column type
        out.append(f"ALTER TABLE {db}.series{on} MODIFY COLUMN host {_LC}")
    return out + drops
