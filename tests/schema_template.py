"""One database migrated by `Store.ensure_schema`, copied for each test that needs a store.

Migrating a database runs every numbered migration (about fifty statements, ALTERs included);
recreating the finished tables from the DDL ClickHouse reports for them (`create_table_query`)
takes a quarter of the statements and a third of the time. tests/conftest.py builds one template
per store DSN per session and gives each test a copy; tests/collector/storage/test_schema_template.py
checks that a copy is what `ensure_schema` gives, materialized views on the copy's own tables.
"""

from __future__ import annotations

import re
import uuid

from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store


class SchemaTemplate:
    """A database with Ferry's schema, and the statements that recreate it under another name."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        store.ensure_schema(SchemaOptions(database=self.db))
        rows = store.query(
            "SELECT name, engine = 'MaterializedView', create_table_query, total_rows"
            " FROM system.tables WHERE database = {db:String}"
            " ORDER BY engine = 'MaterializedView', name",  # views after the tables they read and fill
            {"db": self.db},
        )
        self._qualified = re.compile(rf"\b{re.escape(self.db)}\.")
        self._ddl = [ddl for _name, _view, ddl, _rows in rows]
        # what the migrations wrote (schema_version): copied as data; no view reads these tables
        self._filled = [name for name, view, _ddl, total in rows if not view and total]

    @classmethod
    def build(cls, dsn: str) -> SchemaTemplate:
        return cls(Store.open(dsn, database=f"template_{uuid.uuid4().hex[:12]}"))

    def copy(self, database: str) -> None:
        """Create `database` with the template's tables, views (reading and filling the copy's
        tables) and schema_version rows."""
        command = self.store.client.command
        command(f"CREATE DATABASE {database}")
        for ddl in self._ddl:
            command(self._qualified.sub(f"{database}.", ddl))
        for table in self._filled:
            command(f"INSERT INTO {database}.{table} SELECT * FROM {self.db}.{table}")

    def drop(self) -> None:
        self.store.client.command(f"DROP DATABASE IF EXISTS {self.db}")
        self.store.close()
