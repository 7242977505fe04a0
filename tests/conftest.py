"""Shared fixtures. chDB hosts one engine path per process, so in-process tests share one
store path for the whole session and isolate themselves with a database each."""

from __future__ import annotations

import uuid

import pytest

from collector.devrun import free_port  # noqa: F401  (re-exported for tests)
from collector.storage.schema import SchemaOptions
from collector.storage.store import Store


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'store'}"


@pytest.fixture
def store(chdb_dsn):
    """A Store on a fresh database with Ferry's schema."""
    s = Store.open(chdb_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    s.ensure_schema(SchemaOptions(database=s.db))
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()
