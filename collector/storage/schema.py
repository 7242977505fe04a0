"""The DDL of Ferry's ClickHouse tables; `collector.storage.migrate` applies it in numbered steps
when the collector starts.

Names are interpolated only after `check_identifier`; nothing user-supplied reaches DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: str, what: str = "database") -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must match {_IDENT.pattern}")
    return name


@dataclass(frozen=True)
class SchemaOptions:
    database: str = "ferry"
    raw_ttl_days: int = 15
    events_ttl_days: int = 30
    logs_ttl_days: int = 15
    rollup_1m_ttl_days: int = 90
    rollup_1h_ttl_days: int = 730
    # how many recent insert tokens each table remembers for dedup (non-replicated MergeTree)
    dedup_window: int = 10_000


def metric_tables(db: str, settings: str, ttl: int) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"""CREATE TABLE IF NOT EXISTS {db}.series (
    series_id UInt64,
    name LowCardinality(String),
    kind SimpleAggregateFunction(any, LowCardinality(String)),
    unit SimpleAggregateFunction(any, LowCardinality(String)),
    labels SimpleAggregateFunction(any, Map(String, String)),
    host SimpleAggregateFunction(any, LowCardinality(String)),
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
) ENGINE = AggregatingMergeTree
ORDER BY (name, series_id)""",  # kind..host are functions of series_id: any() keeps the one value
        f"""CREATE TABLE IF NOT EXISTS {db}.samples (
    series_id UInt64 CODEC(ZSTD(1)),
    name LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    value Float64 CODEC(Gorilla, ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (name, series_id, ts)
TTL toDateTime(ts) + INTERVAL {ttl} DAY
{settings}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.histograms (
    series_id UInt64 CODEC(ZSTD(1)),
    name LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    sum Float64 CODEC(Gorilla, ZSTD(1)),
    count UInt64 CODEC(T64, ZSTD(1)),
    bounds Array(Float64) CODEC(ZSTD(1)),
    counts Array(UInt64) CODEC(ZSTD(1))
) ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (name, series_id, ts)
TTL toDateTime(ts) + INTERVAL {ttl} DAY
{settings}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.agents (
    agent_id String,
    host LowCardinality(String),
    version LowCardinality(String),
    address String,
    last_seen DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(last_seen)
ORDER BY agent_id""",
    ]


def record_tables(db: str, settings: str, opts: SchemaOptions) -> list[str]:
    """events and logs: one row per record, ts in ns. The sort keys put the columns searches
    filter on most (service, then type or level) before ts, so those filters prune granules and
    each (service, type) run is in time order; a day partition prunes the time range."""
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.events (
    ts DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
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
    INDEX session_id_bf session_id TYPE bloom_filter GRANULARITY 4
) ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, type, ts)
TTL toDateTime(ts) + INTERVAL {int(opts.events_ttl_days)} DAY
{settings}""",
        f"""CREATE TABLE IF NOT EXISTS {db}.logs (
    ts DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    host LowCardinality(String),
    agent_id LowCardinality(String),
    service LowCardinality(String),
    level LowCardinality(String),
    message String CODEC(ZSTD(3)),
    attributes Map(String, String) CODEC(ZSTD(1)),
    trace_id String CODEC(ZSTD(1)),
    span_id String CODEC(ZSTD(1)),
    INDEX trace_id_bf trace_id TYPE bloom_filter GRANULARITY 4
) ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (service, level, ts)
TTL toDateTime(ts) + INTERVAL {int(opts.logs_ttl_days)} DAY
{settings}""",
    ]
