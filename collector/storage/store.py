"""The one way Ferry talks to ClickHouse: a clickhouse-connect client on a DSN.

`chdb:///path` opens the embedded engine in this process (one path per process); `http(s)://`
reaches a ClickHouse server. Same DDL and SQL for both. Calls block: the ingest and query
services run them on worker threads, never on the event loop. A Store is used by one thread at
a time; open one per worker (`Store.open` on the same DSN shares the engine).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
import numpy as np
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from ferry.collector.storage import migrate
from ferry.collector.storage.layout import check_identifier
from ferry.collector.storage.schema import SchemaOptions


class StoreError(RuntimeError):
    """The store refused or failed an operation; the message says which and why."""


def parse_dsn(dsn: str) -> tuple[str, str]:
    """Return (kind, location): ("chdb", absolute path) or ("http", the DSN as given)."""
    parsed = urlparse(dsn)
    if parsed.scheme == "chdb":
        path = (parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else parsed.path
        if not path:
            raise ValueError(f"store DSN {dsn!r}: chdb needs a path, e.g. chdb:///var/lib/ferry/store")
        return "chdb", os.path.abspath(path)
    if parsed.scheme in ("http", "https"):
        if not parsed.hostname:
            raise ValueError(f"store DSN {dsn!r}: no host")
        return "http", dsn
    raise ValueError(f"store DSN {dsn!r}: scheme must be chdb, http or https")


def database_of(dsn: str, default: str = "ferry") -> str:
    kind, _ = parse_dsn(dsn)
    if kind == "http":
        name = urlparse(dsn).path.strip("/")
        if name:
            return check_identifier(name)
    return default


class Store:
    def __init__(self, client: Client, database: str, cluster: str = "", path: str = ""):
        self.client = client
        self.path = path  # the embedded engine's directory; "" for a ClickHouse server
        self.db = check_identifier(database)
        self.cluster = cluster
        # one block per insert, and one block out of each view it feeds (a view's output is
        # otherwise cut at ~1 M rows, each cut its own part: measured, 2.5 M rows into a feed made
        # 3 parts of samples_1m), so each day's part holds its rows and their ledger together;
        # no block dedup. On a cluster, inserts go through Distributed tables: wait for the
        # shards' commit.
        whole = 1 << 40  # (the _for_materialized_views variants did not do it; these did)
        self._insert_settings = {
            "insert_deduplicate": 0,
            "max_insert_block_size": whole,
            "min_insert_block_size_rows": whole,
            "min_insert_block_size_bytes": whole,
        }
        if cluster:
            self._insert_settings["distributed_foreground_insert"] = 1

    @classmethod
    def open(cls, dsn: str, database: str | None = None, cluster: str = "") -> Store:
        kind, location = parse_dsn(dsn)
        try:
            if kind == "chdb":
                os.makedirs(location, exist_ok=True)
                client = clickhouse_connect.get_client(interface="chdb", path=location)
            else:
                parsed = urlparse(location)
                client = clickhouse_connect.get_client(
                    interface=parsed.scheme,
                    host=parsed.hostname,
                    port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
                    username=parsed.username or "default",
                    password=parsed.password or "",
                )
        except Exception as exc:
            raise StoreError(f"cannot open store {redact(dsn)}: {exc}") from exc
        return cls(client, database or database_of(dsn), cluster, location if kind == "chdb" else "")

    def ensure_schema(self, opts: SchemaOptions | None = None) -> migrate.Report:
        """Apply the migrations this store lacks and the configured TTLs (`migrate.apply`)."""
        opts = opts or SchemaOptions(database=self.db, cluster=self.cluster)

        def command(statement: str) -> None:
            try:
                self.client.command(statement)
            except Exception as exc:
                raise StoreError(f"schema statement failed: {exc}\n{statement}") from exc

        try:
            return migrate.apply(command, self.query, opts)
        except migrate.SchemaError as exc:
            raise StoreError(str(exc)) from exc

    def insert(self, table: str, block: pa.Table) -> None:
        """Insert `block` (`ferry.collector.storage.blocks.block`) into `table`, as an Arrow IPC
        file (`insert_arrow`; on chDB through a temp file, INSERT ... FROM INFILE), as one block:
        one part per day partition, each holding its rows and their ledger together. The
        engine's own block dedup is off: a resend is kept out by the ledger (docs/delivery.md),
        and two groups' identical blocks (say two refreshes of the same series rows) are both
        meant to be written."""
        self.client.insert_arrow(table, block, database=self.db, settings=self._insert_settings)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        with self._fresh_after_failure():
            return self.client.query(sql, parameters=parameters).result_rows

    def query_columns(self, sql: str, parameters: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        with self._fresh_after_failure():
            return self.client.query(sql, parameters=parameters).result_columns

    def query_np(self, sql: str, parameters: dict[str, Any] | None = None) -> np.ndarray:
        """The result as one numpy structured array (a field per column), for numeric results."""
        with self._fresh_after_failure():
            return self.client.query_np(sql, parameters=parameters)

    @contextlib.contextmanager
    def _fresh_after_failure(self):
        """On the embedded engine, a statement that failed mid-result (killed, timed out, over
        its memory cap) can leave the rest of its result in the chdb handle, and the handle's
        next statement then reads it as its own (the adversarial run saw ListLabelValues answer
        with a killed p99 query's rows, and SearchLogs with rows of another shape: UNKNOWN).
        So the handle of a failed statement is closed and a new one opened on the same engine."""
        try:
            yield
        except BaseException:
            if self.path:
                old, self.client = (
                    self.client,
                    clickhouse_connect.get_client(interface="chdb", path=self.path),
                )
                with contextlib.suppress(Exception):
                    old.close()
            raise

    def close(self) -> None:
        self.client.close()


def redact(dsn: str) -> str:
    parsed = urlparse(dsn)
    if parsed.password:
        return dsn.replace(f":{parsed.password}@", ":***@")
    return dsn


class ThreadStores:
    """One Store per thread, opened on first use; `close_all` closes every one it opened."""

    def __init__(self, open_store: Callable[[], Store]):
        self._open_store = open_store
        self._local = threading.local()
        self._stores: list[Store] = []
        self._lock = threading.Lock()

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._open_store()
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close_all(self) -> None:
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()
