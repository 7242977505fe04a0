"""The DDL of Ferry's ClickHouse schema, created idempotently when the collector starts.

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
    # how many recent insert tokens each table remembers for dedup (non-replicated MergeTree)
    dedup_window: int = 10_000


def ddl(opts: SchemaOptions) -> list[str]:
    db = check_identifier(opts.database)
    settings = f"SETTINGS non_replicated_deduplication_window = {int(opts.dedup_window)}"
    ttl = int(opts.raw_ttl_days)
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
