"""Where Ferry's tables live: on one ClickHouse node (the default, and the embedded store), or
across a cluster (`cluster = NAME`).

On one node each table is what its DDL says. On a cluster every table is two:
- `<table>_local` on every node, `ON CLUSTER NAME`, with the Replicated variant of its engine
  (`/clickhouse/tables/{shard}/<db>/<table>_local`, replica `{replica}`: the server's macros),
  which holds that shard's rows and keeps insert tokens in Keeper
  (`replicated_deduplication_window`);
- `<table>`, a Distributed table over them, sharded by a deterministic key (the series for
  metric tables, the agent for events, logs and agents), so a resent frame's rows go to the
  same shards as the first time, and are deduplicated there, whichever collector sends them.

The collector reads and writes the Distributed names (writes with `distributed_foreground_insert`,
so an ack follows the shards' commit); materialized views read and write the `_local` tables,
so each shard rolls up its own rows. `schema_version` is one ReplicatedMergeTree shared by every
node of the cluster (no shard in its path).

Names here come from configuration and pass `check_identifier`; nothing user-supplied reaches DDL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: str, what: str = "database") -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must match {_IDENT.pattern}")
    return name


def day_keys(order_by: str, ttl_days: int) -> str:
    """Day partitions, the sort key and a retention of `ttl_days` on `ts`."""
    return (
        f"PARTITION BY toDate(ts)\nORDER BY ({order_by})\nTTL toDateTime(ts) + INTERVAL {int(ttl_days)} DAY"
    )


@dataclass(frozen=True)
class Layout:
    db: str
    cluster: str = ""  # empty: one node
    dedup_window: int = 10_000

    def __post_init__(self) -> None:
        check_identifier(self.db)
        if self.cluster:
            check_identifier(self.cluster, "cluster")

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER {self.cluster}" if self.cluster else ""

    def local(self, table: str) -> str:
        """The table that holds `table`'s rows on a node (what views and ALTERs name)."""
        return f"{table}_local" if self.cluster else table

    def database(self) -> str:
        return f"CREATE DATABASE IF NOT EXISTS {self.db}{self.on_cluster}"

    def table(
        self,
        name: str,
        columns: str,
        engine: str,
        keys: str,
        shard_key: str,
        dedup: bool = True,
        settings: tuple[str, ...] = (),
    ) -> list[str]:
        """CREATE TABLE statements for `name`: one on a node; `_local` plus Distributed on a
        cluster. `engine` is a MergeTree family engine with its arguments, e.g.
        `ReplacingMergeTree(last_seen)`; `keys` the PARTITION BY / ORDER BY / TTL clauses;
        `dedup` whether inserts carry tokens to remember; `settings` more MergeTree settings."""
        check_identifier(name, "table")
        local = self.local(name)
        window = "replicated" if self.cluster else "non_replicated"
        every = [f"{window}_deduplication_window = {int(self.dedup_window)}"] if dedup else []
        every += settings
        settings_sql = f"\nSETTINGS {', '.join(every)}" if every else ""
        create = (
            f"CREATE TABLE IF NOT EXISTS {self.db}.{local}{self.on_cluster} (\n{columns}\n) "
            f"ENGINE = {self._engine(engine, local)}" + (f"\n{keys}" if keys else "") + settings_sql
        )
        if not self.cluster:
            return [create]
        return [
            create,
            f"CREATE TABLE IF NOT EXISTS {self.db}.{name}{self.on_cluster} AS {self.db}.{local} "
            f"ENGINE = Distributed('{self.cluster}', '{self.db}', '{local}', {shard_key})",
        ]

    def view(self, name: str, target: str, select: str) -> str:
        """A materialized view writing into the `target` table's rows on each node."""
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {self.db}.{name}{self.on_cluster} "
            f"TO {self.db}.{self.local(target)} AS {select}"
        )

    def shared_table(self, name: str, columns: str, order_by: str) -> str:
        """A small MergeTree every node reads the same copy of (`schema_version`)."""
        engine = "MergeTree"
        if self.cluster:  # one replica set spanning the cluster: no {shard} in the path
            engine = f"ReplicatedMergeTree('/clickhouse/ferry/{self.db}/{name}', '{{shard}}-{{replica}}')"
        return (
            f"CREATE TABLE IF NOT EXISTS {self.db}.{name}{self.on_cluster} (\n{columns}\n) "
            f"ENGINE = {engine}\nORDER BY {order_by}"
        )

    def alter_column(self, table: str, column: str) -> str:
        """MODIFY COLUMN `column` (name, type and codec) of `table`'s rows on every node."""
        return f"ALTER TABLE {self.db}.{self.local(table)}{self.on_cluster} MODIFY COLUMN {column}"

    def add_columns(self, table: str, columns: list[str]) -> list[str]:
        """ADD COLUMN IF NOT EXISTS each of `columns` (name, type and codec) to `table`: its rows
        on every node and, on a cluster, the Distributed table over them."""
        adds = ", ".join(f"ADD COLUMN IF NOT EXISTS {c}" for c in columns)
        names = [self.local(table), *([table] if self.cluster else [])]
        return [f"ALTER TABLE {self.db}.{n}{self.on_cluster} {adds}" for n in names]

    def add_projection(self, table: str, projection: str, name: str) -> list[str]:
        """ADD PROJECTION IF NOT EXISTS (`projection` is its DDL) to `table`'s rows on every node,
        then build it for the parts made before (a mutation, in the background)."""
        target = f"{self.db}.{self.local(table)}{self.on_cluster}"
        return [
            f"ALTER TABLE {target} ADD PROJECTION IF NOT EXISTS {projection.removeprefix('PROJECTION ')}",
            f"ALTER TABLE {target} MATERIALIZE PROJECTION {name}",
        ]

    def drop_view(self, name: str) -> str:
        check_identifier(name, "view")
        return f"DROP VIEW IF EXISTS {self.db}.{name}{self.on_cluster}"

    def alter_setting(self, table: str, setting: str) -> str:
        """MODIFY SETTING (a MergeTree setting, `name = value`) of `table`'s rows on every node."""
        return f"ALTER TABLE {self.db}.{self.local(table)}{self.on_cluster} MODIFY SETTING {setting}"

    def alter_ttl(self, table: str, days: int) -> str:
        return (
            f"ALTER TABLE {self.db}.{self.local(table)}{self.on_cluster} "
            f"MODIFY TTL toDateTime(ts) + INTERVAL {int(days)} DAY"
        )

    def _engine(self, engine: str, local: str) -> str:
        if not self.cluster or engine == "Null":  # a Null table holds nothing to replicate
            return engine
        family, _, args = engine.partition("(")
        args = args.rstrip(")")
        path = f"'/clickhouse/tables/{{shard}}/{self.db}/{local}', '{{replica}}'"
        return f"Replicated{family}({path}{', ' + args if args else ''})"
