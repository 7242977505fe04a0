"""The engine on the real embedded store and query service, its clock and evaluation times
chosen by the test: a store that fails still lets alerts out (and keeps their transitions),
reloads resolve the instances of removed or disabled rules, acks take firing instances only,
and a rule with too many groups is in error."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ferry.collector.alerting.engine import Engine
from ferry.collector.alerting.model import Alert, Silence, State
from ferry.collector.alerting.store import AlertStore
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests.collector.query.test_query_quantiles import _push
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

RULE = """
[[alerts]]
name = "Hot"
query = "temp"
agg = "max"
by = ["node"]
window = "30s"
condition = "> 50"
"""


class Notes:
    def __init__(self):
        self.updates: list[list[Alert]] = []

    def update(self, alerts: list[Alert], silences: list[Silence], now_ms: int) -> None:
        self.updates.append(alerts)


class Flaky(AlertStore):
    """The real store, whose writes fail while `down`."""

    down = False

    def write(self, transitions):
        if self.down:
            raise RuntimeError("store down")
        super().write(transitions)


@pytest.fixture
def setup(servers, store_dsn, tmp_path):
    server, store = servers
    stores = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    service = QueryService(stores)
    now = (int(time.time()) - 300) // 60 * 60_000
    rules = tmp_path / "rules.toml"
    rules.write_text("builtin_rules = false\n" + RULE)

    def push(seq: int, values: dict[str, float], at: int) -> None:
        series = [SeriesDef("temp", GAUGE, "C", (("node", n),)) for n in values]
        batch = MetricBatch(
            series=series,
            series_ref=np.arange(len(series), dtype=np.uint32),
            time_ms=np.full(len(series), at, dtype=np.int64),
            value=np.array(list(values.values())),
        )
        _push(server, batch, seq)

    def engine(store: AlertStore | None = None) -> tuple[Engine, Notes]:
        notes = Notes()
        e = Engine(str(rules), service.query_range, store or Flaky(stores), notes, clock=lambda: now / 1000)
        return e, notes

    return engine, push, now, rules, stores


def test_a_failing_store_still_lets_the_alert_out_and_keeps_its_transitions(setup):
    engine, push, now, _rules, stores = setup
    store = Flaky(stores)
    e, notes = engine(store)
    push(1, {"a": 80.0}, now - 5_000)
    store.down = True
    moved = e.evaluate_once(now)
    assert [t.state for t in moved] == [State.PENDING, State.FIRING]
    assert [a.labels["node"] for a in notes.updates[-1]] == ["a"]  # notified whatever the store does
    assert store.history(0, 10) == []
    store.down = False
    e.evaluate_once(now + 1_000)
    assert [t.state for t in store.history(0, 10)] == [State.FIRING, State.PENDING]  # written later


def test_a_reload_resolves_the_instances_of_a_removed_or_disabled_rule(setup):
    engine, push, now, rules, _stores = setup
    e, notes = engine()
    push(1, {"a": 80.0, "b": 90.0}, now - 5_000)
    e.evaluate_once(now)
    rules.write_text(rules.read_text().replace('name = "Hot"', 'name = "Hot"\nenabled = false'))
    assert e.reload()
    e.evaluate_once(now + 1_000)
    last = notes.updates[-1]
    assert sorted((a.labels["node"], a.resolved) for a in last) == [("a", True), ("b", True)]
    assert e.states.by_id == {}
    assert sorted(t.state for t in e.store.history(0, 10)).count(State.RESOLVED) == 2
    # a restarted engine does not bring back instances of rules its file does not have
    fresh, _ = engine()
    assert fresh.states.by_id == {}


def test_acks_take_firing_instances_only(setup):
    engine, push, now, rules, _stores = setup
    rules.write_text(rules.read_text().replace('condition = "> 50"', 'condition = "> 50"\nfor = "1m"'))
    e, _ = engine()
    push(1, {"a": 80.0}, now - 5_000)
    e.evaluate_once(now)
    (pending,) = e.instances()
    with pytest.raises(KeyError, match="it is pending"):
        e.ack(pending.id, "ops", "looking")
    copy = e.instances()[0]
    copy.acked_by = "nobody"  # a copy: the engine's own is untouched
    assert e.instances()[0].acked_by == ""


def test_a_rule_with_too_many_groups_is_in_error(setup, monkeypatch):
    engine, push, now, _rules, _stores = setup
    monkeypatch.setattr("ferry.collector.alerting.engine.MAX_INSTANCES", 3)
    e, _ = engine()
    push(1, {n: 80.0 for n in "abcd"}, now - 5_000)
    e.evaluate_once(now)
    (status,) = e.rule_status()
    assert status[1] == "error" and "4 groups > 3 allowed per rule" in status[2]
    assert e.states.by_id == {}
