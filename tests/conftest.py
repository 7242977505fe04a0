"""Shared fixtures. chDB hosts one engine path per process, so in-process tests share one
store path for the whole session and isolate themselves with a database each.

Every test that uses a store (`store`, `store_dsn`, and the servicers built on them) runs twice:
on the embedded engine, and on a ClickHouse server when FERRY_TEST_CLICKHOUSE_URL is set
(e.g. `http://default:@127.0.0.1:8123`); without it the server runs are deselected and the
summary says how many.

A test's database is a copy of one migrated per DSN per session (tests/schema_template.py), not
a migration of its own.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ferry.collector.devrun import free_port  # noqa: F401  (re-exported for tests)
from ferry.collector.storage.store import Store
from tests.schema_template import SchemaTemplate


@pytest.fixture(scope="session")
def chdb_dsn(tmp_path_factory) -> str:
    return f"chdb://{tmp_path_factory.mktemp('chdb') / 'store'}"


SERVER_ENV = "FERRY_TEST_CLICKHOUSE_URL"


@pytest.fixture(params=["chdb", "server"])
def store_dsn(request, chdb_dsn) -> str:
    """The DSN of the store under test: the embedded engine, or the server in SERVER_ENV."""
    if request.param == "chdb":
        return chdb_dsn
    url = os.environ.get(SERVER_ENV, "")
    if not url:  # only when selected by hand: collection drops these runs without a server
        pytest.skip(f"{SERVER_ENV} is not set: the ClickHouse server run of this test is skipped")
    return url


@pytest.fixture(scope="session")
def schema_templates():
    """DSN -> the SchemaTemplate built there on first use; dropped at the end of the session."""
    built: dict[str, SchemaTemplate] = {}
    yield built
    for template in built.values():
        template.drop()


@pytest.fixture
def schema_template(store_dsn, schema_templates) -> SchemaTemplate:
    if store_dsn not in schema_templates:
        schema_templates[store_dsn] = SchemaTemplate.build(store_dsn)
    return schema_templates[store_dsn]


@pytest.fixture
def store(store_dsn, schema_template):
    """A Store on a fresh database with Ferry's schema (a copy of the session's template)."""
    s = Store.open(store_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    schema_template.copy(s.db)
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()


# Files that take minutes, collected first so that xdist (--dist loadfile hands out files in
# collection order) starts them at once rather than leave one running alone at the end
LONGEST_FIRST = ("tests/packaging/test_deb.py",)


def pytest_collection_modifyitems(config, items) -> None:
    """The longest files first; without a server, drop the server runs at collection (counted as
    deselected and named in the summary) rather than report each one as skipped."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda i: rank.get(i.nodeid.split("::")[0], len(rank)))  # stable: the rest keep order
    if os.environ.get(SERVER_ENV):
        return
    server = [i for i in items if _backend(i) == "server"]
    if server:
        config.hook.pytest_deselected(items=server)
        drop = set(server)
        items[:] = [i for i in items if i not in drop]
        config.stash[_SERVER_RUNS] = len(server)


_SERVER_RUNS = pytest.StashKey[int]()


def _backend(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("store_dsn") if callspec else None


def pytest_sessionfinish(session) -> None:
    """An xdist worker hands its count to the controller, which collects nothing itself."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["server_runs"] = session.config.stash.get(_SERVER_RUNS, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """(xdist, on the controller) every worker collects every test: any one's count is the count."""
    runs = getattr(node, "workeroutput", {}).get("server_runs", 0)
    node.config.stash[_SERVER_RUNS] = max(node.config.stash.get(_SERVER_RUNS, 0), runs)


def pytest_terminal_summary(terminalreporter, config) -> None:
    if config.stash.get(_SERVER_RUNS, 0):
        terminalreporter.write_line(
            f"{config.stash[_SERVER_RUNS]} ClickHouse server runs deselected: "
            f"set {SERVER_ENV} (e.g. http://default:@127.0.0.1:8123) to run them against a server"
        )
