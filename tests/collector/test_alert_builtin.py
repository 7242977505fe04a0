"""Ferry's built-in rules in the engine: FerrySpoolDropping is a condition rule read by the
evaluator (the increase of ferry.agent.spool.dropped_frames over 5 minutes, by host) over the
real query service and embedded store, with the evaluation time chosen by the test; the built-in
names are reserved unless builtin_rules = false."""

from __future__ import annotations

import time

import pytest

from ferry.collector.alerting.builtin import NAMES, Builtins
from ferry.collector.alerting.engine import Engine
from ferry.collector.alerting.model import State
from ferry.collector.alerting.rulesfile import load_rules
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import Store, ThreadStores
from ferry.runtime.config import ConfigError
from ferry.wire.columns import COUNTER
from tests import framegen
from tests.collector.test_alert_eval import batch
from tests.collector.test_servicers import INGEST, unary
from tests.collector.test_servicers import servers as servers  # the Ingest + Query servicers fixture

MIN = 60_000


class Kept:
    """The engine's store, in memory: transitions written, no silences, nothing to resume."""

    def __init__(self):
        self.written = []

    def write(self, transitions):
        self.written += transitions

    def current(self):
        return []

    def clear_ack(self, id, now_ms):
        pass

    def silences(self, now_ms, include_expired=False):
        return []


def push(server, host: str, points: list[tuple[int, float]]) -> None:
    frame = framegen.frame(
        batch("ferry.agent.spool.dropped_frames", COUNTER, {(): points}),
        1,
        agent_id=f"agent-{host}",
        host=host,
    )
    _ack, code, details = unary(server, INGEST, "Push", frame)
    assert code.name == "OK", details


def test_spool_dropping_fires_for_the_hosts_whose_dropped_frames_grew_in_5_minutes(
    servers, store_dsn, tmp_path
):
    server, store = servers
    now = (int(time.time()) - 600) // 60 * 60_000  # ten minutes ago, on a minute
    at = [now - 4 * MIN, now - 3 * MIN, now - 2 * MIN, now - MIN]
    push(server, "grew", list(zip(at, [0.0, 0.0, 4.0, 9.0], strict=True)))
    push(server, "steady", list(zip(at, [5.0] * 4, strict=True)))  # dropped before the window: no alert
    push(server, "restarted", list(zip(at, [12.0, 12.0, 2.0, 2.0], strict=True)))  # a reset: 2 new
    push(server, "long-ago", [(now - 20 * MIN, 0.0), (now - 15 * MIN, 7.0)])  # out of the window
    rules = tmp_path / "rules.toml"
    rules.write_text("")
    service = QueryService(ThreadStores(lambda: Store.open(store_dsn, database=store.db)))
    kept = Kept()
    engine = Engine(str(rules), service.query_range, kept, clock=lambda: now / 1000)
    engine.builtins = Builtins(lambda: [], lambda: True)
    assert [r.name for r in engine.rules] == list(NAMES)
    transitions = engine.evaluate_once(now)
    fired = {
        dict(t.labels)["host"]: (t.state, t.severity, dict(t.labels)["alertname"])
        for t in transitions
        if t.rule == "FerrySpoolDropping"
    }
    assert fired == {
        "grew": (State.FIRING, "warning", "FerrySpoolDropping"),
        "restarted": (State.FIRING, "warning", "FerrySpoolDropping"),
    }
    values = {dict(t.labels)["host"]: t.value for t in transitions if t.rule == "FerrySpoolDropping"}
    # 0, 0, 4, 9: grew by 9; 12, 12, 2, 2: a reset, 2 since (the evaluator may scale an
    # increase from the up to 1.25 x window it reads to the window: at most down to 0.8 x)
    assert 0.8 * 9 <= values["grew"] <= 9 and 0.8 * 2 <= values["restarted"] <= 2
    (grew,) = [s for s in engine.instances() if s.label_map.get("host") == "grew"]
    assert dict(grew.annotations)["summary"] == (
        f"the agent on grew is dropping spooled frames ({values['grew']:.4g} in 5 minutes)"
    )
    status = {name: health for name, health, _msg, _at in engine.rule_status()}
    assert status["FerrySpoolDropping"] == "ok"
    # five minutes on, nothing new: both resolve
    later = now + 6 * MIN
    push(server, "grew", [(later - MIN, 9.0), (later, 9.0)])
    resolved = [t for t in engine.evaluate_once(later) if t.rule == "FerrySpoolDropping"]
    assert sorted((dict(t.labels)["host"], t.state) for t in resolved) == [
        ("grew", State.RESOLVED),
        ("restarted", State.RESOLVED),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_built_in_names_are_reserved_unless_builtin_rules_are_off(tmp_path, name):
    rules = tmp_path / "rules.toml"
    rule = f'[[alerts]]\nname = "{name}"\nquery = "x"\ncondition = "> 0"\n'
    rules.write_text(rule)
    with pytest.raises(ConfigError, match=f"{name}: .*are built-in rule names"):
        load_rules(str(rules))
    rules.write_text("builtin_rules = false\n" + rule)
    assert [r.name for r in load_rules(str(rules)).alerts] == [name]
