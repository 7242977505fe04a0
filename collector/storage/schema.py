"""The DDL of Ferry's ClickHouse tables; `ferry.collector.storage.migrate` applies it in numbered steps
when the collector starts. `ferry.collector.storage.layout` renders each table for one node or for a
cluster.

Names are interpolated only after `layout.check_identifier`; nothing user-supplied reaches DDL.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.collector.storage.layout import Layout, day_keys


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "ferry"
    raw_ttl_days: int = 15
    events_ttl_days: int = 30
    logs_ttl_days: int = 15
    rollup_1m_ttl_days: int = 90
    rollup_1h_ttl_days: int = 730
    # how many recent insert tokens each table remembers for dedup
    dedup_window: int = 10_000
    cluster: str = ""  # a ClickHouse cluster name: Replicated + Distributed tables ON CLUSTER

    def layout(self) -> Layout:
        return Layout(self.database, self.cluster, self.dedup_window)


def metric_tables(layout: Layout, ttl: int) -> list[str]:
    t = layout.table
    return [
        layout.database(),
        # kind..host are functions of series_id: any() keeps the one value
        *t(
            "series",
            """    series_id UInt64,
    name LowCardinality(String),
    kind SimpleAggregateFunction(any, LowCardinality(String)),
    unit SimpleAggregateFunction(any, LowCardinality(String)),
    labels SimpleAggregateFunction(any, Map(String, String)),
    host SimpleAggregateFunction(any, LowCardinality(String)),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))""",
            "AggregatingMergeTree",
            "ORDER BY (name, series_id)",
            "series_id",
            dedup=False,
        ),
        *t(
            "samples",
            """    series_id UInt64 CODEC(ZSTD(1)),
    name LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1))""",
            "MergeTree",
            day_keys("name, series_id, ts", ttl),
            "series_id",
        ),
        *t(
            "histograms",
            """    series_id UInt64 CODEC(ZSTD(1)),
    name LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    sum Float64 CODEC(Gorilla, ZSTD(1)),
    count UInt64 CODEC(T64, ZSTD(1)),
    bounds Array(Float64) CODEC(ZSTD(1)),
    counts Array(UInt64) CODEC(ZSTD(1))""",
            "MergeTree",
            day_keys("name, series_id, ts", ttl),
            "series_id",
        ),
        *t(
            "agents",
            """    agent_id String,
    host LowCardinality(String),
    version LowCardinality(String),
    address String,
    last_seen DateTime64(3, 'UTC')""",
            "ReplacingMergeTree(last_seen)",
            "ORDER BY agent_id",
            "cityHash64(agent_id)",
            dedup=False,
        ),
    ]


def record_tables(layout: Layout, opts: SchemaOptions) -> list[str]:
    """events and logs: one row per record, ts in ns. The sort keys put the columns searches
    filter on most (service, then type or level) before ts, so those filters prune granules and
    each (service, type) run is in time order; a day partition prunes the time range."""
    return [
        *layout.table(
            "events",
            """    ts DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    host LowCardinality(String),
    agent_id LowCardinality(String),
    service LowCardinality(String),
    type LowCardinality(String),
    category LowCardinality(String),
    action LowCardinality(String),
    label String CODEC(ZSTD(1)),
    value Nullable(Float64) CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    properties Map(String, String) CODEC(ZSTD(1)),
    INDEX user_id_bf user_id TYPE bloom_filter GRANULARITY 4,
    INDEX session_id_bf session_id TYPE bloom_filter GRANULARITY 4""",
            "MergeTree",
            day_keys("service, type, ts", opts.events_ttl_days),
            "cityHash64(agent_id)",
        ),
        *layout.table(
            "logs",
            """    ts DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    host LowCardinality(String),
    agent_id LowCardinality(String),
    service LowCardinality(String),
    level LowCardinality(String),
    message String CODEC(ZSTD(3)),
    attributes Map(String, String) CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    INDEX trace_id_bf trace_id TYPE bloom_filter GRANULARITY 4""",
            "MergeTree",
            day_keys("service, level, ts", opts.logs_ttl_days),
            "cityHash64(agent_id)",
        ),
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
MIN_COMPRESS_BLOCK = "min_compress_block_size = 1048576"


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
