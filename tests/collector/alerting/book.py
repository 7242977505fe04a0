"""An AlertBook as the engine keeps one, straight over AlertStore, and a store seeded with a few
instances: what the service and CLI tests ask."""

from __future__ import annotations

from dataclasses import replace

from ferry.collector.alerting.model import InstanceState, Silence, State, Transition, fingerprint, labels_of
from ferry.collector.alerting.store import AlertStore

NOW = 1_790_000_000_000
RULES = [("HighCPU", "ok", "", NOW - 5_000), ("Broken", "error", "query failed: no such metric", NOW - 5_000)]
WEB1 = labels_of({"alertname": "HighCPU", "severity": "warning", "host": "web-1"})
WEB2 = labels_of({"alertname": "HighCPU", "severity": "warning", "host": "web-2"})
DB1 = labels_of({"alertname": "HighCPU", "severity": "warning", "host": "db-1"})


class Book:
    """An AlertBook as the engine keeps one, straight over the store: instances as `current`
    rebuilds them, acks of pending or firing ones only."""

    def __init__(self, alerts: AlertStore):
        self.alerts = alerts

    def instances(self) -> list[InstanceState]:
        return self.alerts.current(NOW)

    def rule_status(self) -> list[tuple[str, str, str, int]]:
        return RULES

    def ack(self, id: str, by: str, note: str) -> InstanceState:
        found = next((i for i in self.instances() if i.id == id), None)
        if found is None or found.state not in (State.PENDING, State.FIRING):
            raise KeyError(id)
        self.alerts.ack(id, by, note, NOW)
        return replace(found, acked_by=by, acked_at_ms=NOW, ack_note=note)

    def add_silence(self, s: Silence) -> None:
        self.alerts.add_silence(s, NOW)

    def silences(self, include_expired: bool) -> list[Silence]:
        return self.alerts.silences(NOW, include_expired)

    def expire_silence(self, id: str) -> Silence:
        return self.alerts.expire_silence(id, NOW)

    def history(self, since_ms: int, limit: int, state: str) -> list[Transition]:
        return self.alerts.history(since_ms, limit, state)


def transition(at: int, lab, state: State, previous: State, value: float | None) -> Transition:
    return Transition(
        at, "HighCPU", fingerprint(lab), lab, state, previous, value, "> 0.8", "warning", {"s": "x"}
    )


def seeded(store) -> AlertStore:
    """An AlertStore on `store` holding web-1 firing, web-2 pending and db-1 resolved, at NOW."""
    for table in ("alerts", "alert_acks"):  # rows of NOW are kept whatever day the test runs
        store.client.command(f"ALTER TABLE {store.db}.{table} REMOVE TTL")
    s = AlertStore(store, clock=lambda: NOW)
    s.write(
        [
            transition(NOW - 300_000, WEB1, State.PENDING, State.INACTIVE, 0.9),
            transition(NOW - 240_000, WEB1, State.FIRING, State.PENDING, 0.95),
            transition(NOW - 60_000, WEB2, State.PENDING, State.INACTIVE, 0.85),
            transition(NOW - 200_000, DB1, State.FIRING, State.INACTIVE, 0.99),
            transition(NOW - 100_000, DB1, State.RESOLVED, State.FIRING, None),
        ]
    )
    return s
