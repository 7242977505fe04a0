"""Every ClickHouse table Ferry creates, column by column (name, type, codec), with its engine,
sort key, sharding key and settings: the one place a table's columns are written down.

`ferry.collector.storage.schema` and `rollups` render the CREATE TABLE statements from these
declarations (one node or a cluster, through `layout.Layout`), and `ferry.collector.storage.blocks`
encodes every insert block by them: a block carries exactly the declared columns, under the
declared types. Migrations that changed a column after its table was created (schema.py's
`value_codecs`, `delta_codecs`) are history and stay literal; a fresh store gets the declared
state at creation and those migrations then reapply it (tests/collector/storage/test_tables.py
compares a migrated store with this module). A column added to an existing table needs, as well
as its line here, a migration that adds it to stores made before (`Layout.alter_column` style).

The tables of the record kinds (`ferry.records.KINDS`) are named by the kind and hold `ts`,
`host`, `agent_id`, then one column per field of the kind's message, under the field's name.

The data is the dedup ledger (docs/delivery.md). The raw tables (samples, histograms, events,
logs) carry the identity of the frame each row came in, `agent_id`, `epoch` and `seq`
(IDENTITY_COLUMNS), and a `ledger` projection: max(seq) per (agent_id, epoch, day), kept by the
engine inside every part, so it is committed atomically with the rows and read back at start
without scanning them. The rollups (AggregatingMergeTree: their rows merge, so a projection would
not survive) are written through `<rollup>_feed` tables (FEEDS: Null engine, the raw table's
columns, a materialized view into the rollup) and hold ledger rows: `name` = LEDGER_PREFIX +
agent_id, `series_id` = epoch, `ts` = the day, `seq` = the highest seq of that agent and epoch
whose rows of that day the rollup holds (a SimpleAggregateFunction(max): merges keep it exact).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ferry.collector.storage.layout import Layout, day_keys
from ferry.records import KINDS

# MergeTree compresses a column from one mark to the next; samples and the rollups compress
# 1 MiB blocks instead (the measurements are with migration 6 in schema.py)
MIN_COMPRESS_BLOCK = "min_compress_block_size = 1048576"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the ClickHouse type, as system.columns reports it; insert blocks send this type
    codec: str = ""  # the CODEC(...) arguments, e.g. "DoubleDelta, ZSTD(1)"

    def ddl(self) -> str:
        return f"{self.name} {self.type}" + (f" CODEC({self.codec})" if self.codec else "")


@dataclass(frozen=True)
class Projection:
    name: str
    select: str  # the projection's SELECT ... GROUP BY ..., without FROM

    def ddl(self) -> str:
        return f"PROJECTION {self.name} ({self.select})"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    engine: str  # a MergeTree family engine with its arguments
    order_by: str  # the sort key; with `daily`, inside ORDER BY (...)
    shard_key: str  # on a cluster, the Distributed table's sharding key
    daily: bool = True  # day partitions and a retention (TTL) on ts
    dedup: bool = True  # keeps a window of insert tokens (unused since group commit: see Dedup)
    bloom_filters: tuple[str, ...] = ()  # columns with a bloom filter skip index
    settings: tuple[str, ...] = ()  # MergeTree settings, `name = value`
    projections: tuple[Projection, ...] = ()

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        """The column names in order (asked for with every insert block: kept once made)."""
        return tuple(c.name for c in self.columns)

    def columns_ddl(self) -> str:
        lines = [f"    {c.ddl()}" for c in self.columns]
        lines += [f"    INDEX {c}_bf {c} TYPE bloom_filter GRANULARITY 4" for c in self.bloom_filters]
        lines += [f"    {p.ddl()}" for p in self.projections]
        return ",\n".join(lines)

    def create(self, layout: Layout, ttl_days: int = 0) -> list[str]:
        """The CREATE TABLE statements (one on a node; `_local` and Distributed on a cluster);
        `ttl_days` is the retention of a `daily` table."""
        if not self.order_by:  # a Null table (a feed) has no keys
            keys = ""
        else:
            keys = day_keys(self.order_by, ttl_days) if self.daily else f"ORDER BY {self.order_by}"
        return layout.table(
            self.name,
            self.columns_ddl(),
            self.engine,
            keys,
            self.shard_key,
            dedup=self.dedup,
            settings=self.settings,
        )


def _c(name: str, type_: str, codec: str = "") -> Column:
    return Column(name, type_, codec)


LC = "LowCardinality(String)"
MAP = "Map(String, String)"
MS = "DateTime64(3, 'UTC')"
NS = "DateTime64(9, 'UTC')"


def _any(type_: str) -> str:
    """A column that is a function of the sort key: a merge keeps any one value."""
    return f"SimpleAggregateFunction(any, {type_})"


# Which frame a raw row came in (docs/delivery.md). Along a series (the sort key) they hardly
# change: agent_id and epoch are constant, seq goes up by one a frame (bench/storage.py measured
# 0.008 bytes a point for the three, storage_identity_bytes_per_point; ZSTD(1) alone on epoch: 0.25).
EPOCH = _c("epoch", "UInt64", "DoubleDelta, ZSTD(1)")
SEQ = _c("seq", "UInt64", "DoubleDelta, ZSTD(1)")
IDENTITY_COLUMNS = (_c("agent_id", LC), EPOCH, SEQ)
LEDGER = Projection(
    "ledger", "SELECT agent_id, epoch, toDate(ts), max(seq) GROUP BY agent_id, epoch, toDate(ts)"
)
# a rollup's ledger rows are named by this prefix and the agent id; no metric name starts with it
LEDGER_PREFIX = "#"


# One row per series (and per part it is written to: the merges keep one). `host` is the
# series' `host` label (the collector writes the frame's host into both), a plain column in the
# sort key, so the series of one host are adjacent and a lookup by host (`host="h-0017"`, the
# fleet's usual matcher; ferry.collector.query.sql.matcher_sql reads it from this column) reads
# their granule only. It is a function of series_id, as the labels are, so the merges of the
# AggregatingMergeTree are those of (name, series_id). Migration 9 (schema.py `series_by_host`).
SERIES = Table(
    "series",
    (
        _c("series_id", "UInt64"),
        _c("name", LC),
        _c("kind", _any(LC)),
        _c("unit", _any(LC)),
        _c("labels", _any(MAP)),
        _c("host", LC),
        _c("first_seen", f"SimpleAggregateFunction(min, {MS})"),
        _c("last_seen", f"SimpleAggregateFunction(max, {MS})"),
    ),
    "AggregatingMergeTree",
    "(name, host, series_id)",
    "series_id",
    daily=False,
    dedup=False,
)

SAMPLES = Table(
    "samples",
    (
        _c("series_id", "UInt64", "ZSTD(1)"),
        _c("name", LC),
        _c("ts", MS, "DoubleDelta, ZSTD(1)"),
        _c("value", "Float64", "Delta, ZSTD(5)"),  # measured: schema.py, migrations 5 and 6
        *IDENTITY_COLUMNS,
    ),
    "MergeTree",
    "name, series_id, ts",
    "series_id",
    settings=(MIN_COMPRESS_BLOCK,),
    projections=(LEDGER,),
)

HISTOGRAMS = Table(
    "histograms",
    (
        _c("series_id", "UInt64", "ZSTD(1)"),
        _c("name", LC),
        _c("ts", MS, "DoubleDelta, ZSTD(1)"),
        _c("sum", "Float64", "ZSTD(3)"),
        _c("count", "UInt64", "T64, ZSTD(1)"),
        _c("bounds", "Array(Float64)", "ZSTD(1)"),
        _c("counts", "Array(UInt64)", "ZSTD(1)"),
        *IDENTITY_COLUMNS,
    ),
    "MergeTree",
    "name, series_id, ts",
    "series_id",
    projections=(LEDGER,),
)

AGENTS = Table(
    "agents",
    (
        _c("agent_id", "String"),
        _c("host", LC),
        _c("version", LC),
        _c("address", "String"),
        _c("last_seen", MS),
    ),
    "ReplacingMergeTree(last_seen)",
    "agent_id",
    "cityHash64(agent_id)",
    daily=False,
    dedup=False,
)


# a rollup's ledger: the highest seq of its ledger rows (0 on data rows)
ROLLUP_SEQ = _c("seq", "SimpleAggregateFunction(max, UInt64)", "T64, ZSTD(1)")


def _rollup(name: str, *columns: Column, order_by: str, settings: tuple[str, ...] = ()) -> Table:
    return Table(
        name, (*columns, ROLLUP_SEQ), "AggregatingMergeTree", order_by, "series_id", settings=settings
    )


def _samples_rollup(name: str) -> Table:
    """min, max, sum and count merge exactly; `last` is an argMax state on the point's ms time.
    An argMax state is not fixed-width, so it takes no Delta."""
    delta = "Delta, ZSTD(3)"
    return _rollup(
        name,
        _c("series_id", "UInt64", "ZSTD(1)"),
        _c("name", LC),
        _c("ts", "DateTime('UTC')", "DoubleDelta, ZSTD(1)"),
        _c("min", "SimpleAggregateFunction(min, Float64)", delta),
        _c("max", "SimpleAggregateFunction(max, Float64)", delta),
        _c("sum", "SimpleAggregateFunction(sum, Float64)", delta),
        _c("count", "SimpleAggregateFunction(sum, UInt64)", "T64, ZSTD(1)"),
        _c("last", f"AggregateFunction(argMax, Float64, {MS})", "ZSTD(3)"),
        order_by="name, series_id, ts",
        settings=(MIN_COMPRESS_BLOCK,),
    )


def _histograms_rollup(name: str) -> Table:
    return _rollup(
        name,
        _c("series_id", "UInt64", "ZSTD(1)"),
        _c("name", LC),
        _c("ts", "DateTime('UTC')", "DoubleDelta, ZSTD(1)"),
        _c("bounds", "Array(Float64)", "ZSTD(1)"),
        _c("sum", "SimpleAggregateFunction(sum, Float64)", "ZSTD(3)"),
        _c("count", "SimpleAggregateFunction(sum, UInt64)", "T64, ZSTD(1)"),
        _c("counts", "AggregateFunction(sumForEach, Array(UInt64))"),
        order_by="name, series_id, ts, bounds",
    )


# every record table starts with these: when, and who sent it (the same on a frame's rows)
RECORD_COLUMNS = (_c("ts", NS, "Delta, ZSTD(1)"), _c("host", LC), _c("agent_id", LC))


def _records(name: str, *columns: Column, order_by: str, bloom_filters: tuple[str, ...] = ()) -> Table:
    """A record kind's table. The sort key puts the columns searches filter on most (service,
    then type or level) before ts, so those filters prune granules and each run is in time
    order; a day partition prunes the time range. Sharded by agent, like `agents`. `agent_id`
    is among RECORD_COLUMNS; epoch and seq, added later, come last."""
    return Table(
        name,
        (*RECORD_COLUMNS, *columns, EPOCH, SEQ),
        "MergeTree",
        order_by,
        "cityHash64(agent_id)",
        bloom_filters=bloom_filters,
        projections=(LEDGER,),
    )


EVENTS = _records(
    "events",
    _c("service", LC),
    _c("type", LC),
    _c("category", LC),
    _c("action", LC),
    _c("label", "String", "ZSTD(1)"),
    _c("value", "Nullable(Float64)", "ZSTD(1)"),
    _c("user_id", "String", "ZSTD(1)"),
    _c("session_id", "String", "ZSTD(1)"),
    _c("properties", MAP, "ZSTD(1)"),
    order_by="service, type, ts",
    bloom_filters=("user_id", "session_id"),
)

LOGS = _records(
    "logs",
    _c("service", LC),
    _c("level", LC),
    _c("message", "String", "ZSTD(3)"),
    _c("attributes", MAP, "ZSTD(1)"),
    _c("trace_id", "String", "ZSTD(1)"),
    _c("span_id", "String", "ZSTD(1)"),
    order_by="service, level, ts",
    bloom_filters=("trace_id",),
)

# Alerting (ferry.collector.alerting.store): each state transition of an alert instance; the
# acknowledgements (a row per ack, and one with `cleared` when its instance resolves); the
# silences, a row per version (expiring one writes it again with `ends` = now), read FINAL.
# Sharded by the instance's or silence's id, so an id's rows are on one shard (FINAL per shard).
ALERTS = Table(
    "alerts",
    (
        _c("ts", MS, "DoubleDelta, ZSTD(1)"),
        _c("rule", LC),
        _c("id", "String"),
        _c("labels", MAP, "ZSTD(1)"),
        _c("state", LC),
        _c("previous", LC),
        _c("value", "Nullable(Float64)"),
        _c("threshold", "String"),
        _c("severity", LC),
        _c("annotations", MAP, "ZSTD(3)"),
    ),
    "MergeTree",
    "rule, id, ts",
    "cityHash64(id)",
    dedup=False,
)

ALERT_ACKS = Table(
    "alert_acks",
    (
        _c("ts", MS),
        _c("id", "String"),
        _c("acked_by", "String"),
        _c("note", "String"),
        _c("cleared", "UInt8"),
    ),
    "MergeTree",
    "id, ts",
    "cityHash64(id)",
    dedup=False,
)

SILENCES = Table(
    "silences",
    (
        _c("id", "String"),
        _c("matchers", "String"),
        _c("starts", MS),
        _c("ends", MS),
        _c("comment", "String"),
        _c("created_by", "String"),
        _c("updated", MS),
    ),
    "ReplacingMergeTree(updated)",
    "id",
    "cityHash64(id)",
    daily=False,
    dedup=False,
)

# the tables whose rows carry their frame's identity, and the rollups fed from each
RAW = ("samples", "histograms", *(k.name for k in KINDS))
ROLLUPS = {"samples": ("samples_1m", "samples_1h"), "histograms": ("histograms_1m", "histograms_1h")}

TABLES = {
    t.name: t
    for t in (
        SERIES,
        SAMPLES,
        HISTOGRAMS,
        AGENTS,
        EVENTS,
        LOGS,
        _samples_rollup("samples_1m"),
        _samples_rollup("samples_1h"),
        _histograms_rollup("histograms_1m"),
        _histograms_rollup("histograms_1h"),
        ALERTS,
        ALERT_ACKS,
        SILENCES,
    )
}


def feed(rollup: str) -> Table:
    """`<rollup>_feed`: a Null table with the columns of the raw table `rollup` is made from; what
    is inserted there reaches the rollup only, through its materialized view."""
    source = next(raw for raw, rolled in ROLLUPS.items() if rollup in rolled)
    t = TABLES[source]
    return Table(f"{rollup}_feed", t.columns, "Null", "", t.shard_key, daily=False, dedup=False)


FEEDS = {r: feed(r) for rolled in ROLLUPS.values() for r in rolled}
