"""Bring a store's schema to this version of Ferry: numbered migrations, recorded in
`schema_version`, and retention (TTL) kept equal to the configuration.

Called once when the collector starts (`Store.ensure_schema`). Every migration's statements are
idempotent (IF NOT EXISTS), so a store made before `schema_version` existed, or a migration cut
off halfway, is brought up to date by running them again. TTLs are configuration, not schema:
each start compares a table's TTL, as ClickHouse reports it in `system.tables`, with the
configured days and runs `ALTER TABLE … MODIFY TTL` when they differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ferry.collector.storage.layout import Layout
from ferry.collector.storage.rollups import feed_views, histogram_rollup_tables, rollup_tables
from ferry.collector.storage.schema import (
    SchemaOptions,
    alert_tables,
    delta_codecs,
    metric_tables,
    record_tables,
    series_by_host,
    value_codecs,
)
from ferry.records import KINDS

log = logging.getLogger("ferry.collector.schema")


class SchemaError(RuntimeError):
    """The store cannot be brought to this version (e.g. it is newer)."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Callable[[SchemaOptions], list[str]]


MIGRATIONS = [
    Migration(
        1, "series, samples, histograms, agents", lambda o: metric_tables(o.layout(), int(o.raw_ttl_days))
    ),
    Migration(2, "events and logs", lambda o: record_tables(o.layout(), o)),
    Migration(3, "1m and 1h rollups of samples", lambda o: rollup_tables(o.layout(), ttl_days(o))),
    Migration(
        4, "1m and 1h rollups of histograms", lambda o: histogram_rollup_tables(o.layout(), ttl_days(o))
    ),
    Migration(5, "values compressed with ZSTD(3), not Gorilla", lambda o: value_codecs(o.layout())),
    Migration(
        6, "sample and rollup values Delta-coded, 1 MiB compressed blocks", lambda o: delta_codecs(o.layout())
    ),
    Migration(
        7,
        "frame identity and ledger projections; rollups fed through their own feeds",
        lambda o: feed_views(o.layout()),
    ),
    Migration(
        8,
        "alert transitions, acknowledgements and silences",
        lambda o: alert_tables(o.layout(), int(o.alerts_ttl_days)),
    ),
    Migration(9, "series sorted by name, host, series_id", lambda o: series_by_host(o.layout())),
]
LATEST = MIGRATIONS[-1].version


def ttl_days(opts: SchemaOptions) -> dict[str, int]:
    """Each table with a TTL and its configured retention in days."""
    raw = int(opts.raw_ttl_days)
    return {
        "samples": raw,
        "histograms": raw,
        **{k.name: int(getattr(opts, f"{k.name}_ttl_days")) for k in KINDS},
        "samples_1m": int(opts.rollup_1m_ttl_days),
        "samples_1h": int(opts.rollup_1h_ttl_days),
        "histograms_1m": int(opts.rollup_1m_ttl_days),
        "histograms_1h": int(opts.rollup_1h_ttl_days),
        "alerts": int(opts.alerts_ttl_days),
        "alert_acks": int(opts.alerts_ttl_days),
    }


def version_table(layout: Layout) -> str:
    columns = """    version UInt32,
    description String,
    applied DateTime64(3, 'UTC') DEFAULT now64(3)"""
    return layout.shared_table("schema_version", columns, "version")


@dataclass
class Report:
    applied: list[int]  # migration versions run now
    ttl_changed: dict[str, int]  # table -> days, where the TTL was altered


def apply(command: Callable[[str], object], query: Callable[..., list], opts: SchemaOptions) -> Report:
    """`command(sql)` runs DDL; `query(sql, params)` returns rows."""
    layout = opts.layout()
    db = layout.db
    command(layout.database())
    command(version_table(layout))
    current = query(f"SELECT max(version) FROM {db}.schema_version")[0][0] or 0
    if current > LATEST:
        raise SchemaError(
            f"the store's schema is version {current}, newer than this collector's {LATEST}: "
            "upgrade the collector"
        )
    applied = []
    for m in MIGRATIONS:
        if m.version <= current:
            continue
        for statement in m.statements(opts):
            command(statement)
        command(
            f"INSERT INTO {db}.schema_version (version, description) VALUES ({m.version}, '{m.description}')"
        )
        log.info("schema: applied migration %d (%s)", m.version, m.description)
        applied.append(m.version)
    return Report(applied, _sync_ttls(command, query, layout, ttl_days(opts)))


def _sync_ttls(command, query, layout: Layout, wanted: dict[str, int]) -> dict[str, int]:
    """TTLs as this node's `system.tables` reports them; on a cluster the ALTER runs ON CLUSTER."""
    sql = "SELECT name, engine_full FROM system.tables WHERE database = {db:String}"
    rows = query(sql, {"db": layout.db})
    engines = dict(rows)
    changed = {}
    for table, days in wanted.items():
        if f"toIntervalDay({days})" not in engines.get(layout.local(table), ""):
            command(layout.alter_ttl(table, days))
            log.info("schema: %s retention is now %d days", table, days)
            changed[table] = days
    return changed
