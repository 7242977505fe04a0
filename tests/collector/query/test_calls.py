"""QueryCall on the real engine: a call's statements carry its limits and its tag, KILL QUERY by
the tag stops a running statement, the deadline bounds a statement, and a call that ended asks
the store nothing more."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from clickhouse_connect.driver.exceptions import ClickHouseError

from ferry.collector.query.calls import TAG_PREFIX, Cancelled, QueryCall, kill_sql
from ferry.collector.storage.store import Store

# minutes of work for the engine, whatever the machine
ENDLESS = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 3"


def _running(store: Store, tag: str) -> bool:
    rows = store.query(
        "SELECT count() FROM system.processes "
        "WHERE position(query, {t:String}) > 0 AND query NOT LIKE 'SELECT count() FROM system.processes%'",
        {"t": TAG_PREFIX + tag},
    )
    return rows[0][0] > 0


def test_kill_by_the_calls_tag_stops_its_running_statement(store, store_dsn):
    call = QueryCall(max_execution_s=600, max_memory_bytes=1 << 30)
    errors: list[str] = []

    def run():
        worker = Store.open(store_dsn, database=store.db)
        try:
            worker.query(ENDLESS + call.settings())
        except ClickHouseError as exc:
            errors.append(str(exc))
        finally:
            worker.close()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not _running(store, call.tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running(store, call.tag)
    store.client.command(kill_sql(call.tag))
    thread.join(120)
    assert not thread.is_alive()
    assert errors and "Code: 394." in errors[0], errors  # QUERY_WAS_CANCELLED


def test_the_clients_deadline_bounds_each_statement(store):
    call = QueryCall(max_execution_s=600, max_memory_bytes=1 << 30, deadline=time.monotonic() + 0.5)
    settings = call.settings()
    assert "max_execution_time = 0.4" in settings or "max_execution_time = 0.5" in settings, settings
    with pytest.raises(ClickHouseError, match=r"Code: 159\."):  # TIMEOUT_EXCEEDED
        store.query(ENDLESS + settings)


def test_the_memory_cap_rides_on_each_statement(store):
    call = QueryCall(max_execution_s=600, max_memory_bytes=10 << 20)
    with pytest.raises(ClickHouseError, match=r"Code: 241\."):  # MEMORY_LIMIT_EXCEEDED
        store.query("SELECT quantileExact(0.99)(number) FROM numbers(50000000)" + call.settings())


def test_a_call_that_ended_asks_the_store_nothing_more():
    cancelled = QueryCall(30, 1 << 30, cancelled=True)
    with pytest.raises(Cancelled) as info:
        cancelled.settings()
    assert info.value.code == grpc.StatusCode.CANCELLED
    late = QueryCall(30, 1 << 30, deadline=time.monotonic() - 1)
    with pytest.raises(Cancelled) as info:
        late.settings()
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_the_kill_statement_does_not_match_itself():
    call = QueryCall(30, 1 << 30)
    assert TAG_PREFIX + call.tag not in kill_sql(call.tag)
    with pytest.raises(ValueError):
        kill_sql("x' OR 1 --")
