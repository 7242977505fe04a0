"""The collector's alerting as it runs: the rules file loaded (and reloaded by SIGHUP), every
rule evaluated every `alert_eval_interval`, instances moved, their transitions written to the
store, the firing and just-resolved alerts handed to the notifier; acknowledgements and
silences kept. It is the `AlertBook` the Alerts service answers from.

Evaluation runs on a thread of its own (its queries block on the store), never on the event
loop; a rule whose query fails is in state `error` with the message, and the others go on.
A restart reads the instances still pending or firing back from the store, so `for` progress
is kept (to one interval) and what was notified is not notified again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ferry.collector.alerting.evaluate import Evaluator, NoData, QueryRange
from ferry.collector.alerting.model import Alert, InstanceState, RuleHealth, Silence, State, Transition
from ferry.collector.alerting.rulesfile import RulesFile, load_rules
from ferry.collector.alerting.state import Instances

log = logging.getLogger("ferry.collector.alerting")


class Notifying(Protocol):
    def update(self, alerts: list[Alert], silences: list[Silence], now_ms: int) -> None: ...


class Persisting(Protocol):
    """What the engine keeps in the store (ferry.collector.alerting.store.AlertStore)."""

    def write(self, transitions: list[Transition]) -> None: ...
    def current(self) -> list[InstanceState]: ...
    def history(self, since_ms: int, limit: int, state: str = "") -> list[Transition]: ...
    def ack(self, id: str, by: str, note: str, now_ms: int) -> None: ...
    def clear_ack(self, id: str, now_ms: int) -> None: ...
    def add_silence(self, s: Silence) -> None: ...
    def silences(self, now_ms: int, include_expired: bool = False) -> list[Silence]: ...
    def expire_silence(self, id: str, now_ms: int) -> Silence: ...


@dataclass
class RuleStatus:
    name: str
    health: RuleHealth = RuleHealth.OK
    message: str = ""
    last_eval_ms: int = 0
    seconds: float = 0.0  # the last evaluation's time


class Engine:
    def __init__(
        self,
        path: str,
        query_range: QueryRange,
        store: Persisting,
        notifier: Notifying | None = None,
        interval_s: float = 15.0,
        clock: Callable[[], float] = time.time,
        builtins: Any = None,
    ):
        self.path = path
        self.store = store
        self.notifier = notifier
        self.interval_s = interval_s
        self.clock = clock
        self.evaluator = Evaluator(query_range, clock)
        self.builtins = builtins  # ferry.collector.alerting.builtin.Builtins, or None
        self.rules_file: RulesFile = load_rules(path)  # ConfigError: the collector does not start
        self.states = Instances(store.current())
        self.status: dict[str, RuleStatus] = {}
        self._silences: list[Silence] = []
        self._lock = threading.Lock()  # evaluation (its thread) against acks and reloads (RPCs)
        self.restored = {s.id for s in self.states.by_id.values() if s.state == State.FIRING}
        for s in self.states.by_id.values():  # the store keeps thresholds in transitions only
            s.threshold = s.threshold or _threshold(self.rules, s.rule)

    @property
    def rules(self) -> list:
        return [*self.rules_file.alerts, *(self.builtins.rules if self.builtins else ())]

    def reload(self) -> bool:
        """SIGHUP: the rules file read again; a bad one keeps the rules running (False)."""
        from ferry.runtime.config import ConfigError

        try:
            fresh = load_rules(self.path)
        except ConfigError as exc:
            log.error("rules not reloaded, the old rules keep running: %s", exc)
            return False
        with self._lock:
            self.rules_file = fresh
            gone = self.states.drop_rules({r.name for r in self.rules})
            for name in [n for n in self.status if n not in {r.name for r in self.rules}]:
                del self.status[name]
        log.info(
            "rules reloaded: %d alerts, %d receivers, %d routes%s",
            len(fresh.alerts),
            len(fresh.receivers),
            len(fresh.routes),
            f"; {len(gone)} instances of removed rules dropped" if gone else "",
        )
        return True

    def evaluate_once(self, now_ms: int | None = None) -> list[Transition]:
        """Every rule once, at `now_ms` (the clock's now by default)."""
        now_ms = int(self.clock() * 1000) if now_ms is None else now_ms
        transitions: list[Transition] = []
        with self._lock:
            for rule in self.rules:
                if not rule.enabled:
                    continue
                transitions += self._one(rule, now_ms)
            if transitions:
                self.store.write(transitions)
                for t in transitions:
                    if t.state == State.RESOLVED:
                        self.store.clear_ack(t.id, now_ms)
            self._silences = self.store.silences(now_ms)
            alerts = self._alerts()
            if self.notifier is not None:
                self.notifier.update(alerts, self._silences, now_ms)
            self.states.forget_resolved()
        return transitions

    def _one(self, rule, now_ms: int) -> list[Transition]:
        status = self.status.setdefault(rule.name, RuleStatus(rule.name))
        started = time.perf_counter()
        known = {_group_of(s, rule) for s in self.states.of(rule.name)}
        try:
            if rule.builtin:
                evaluation = self.builtins.evaluate(rule, now_ms)
            else:
                evaluation = self.evaluator.evaluate(rule, now_ms, known)
        except NoData as exc:
            status.health, status.message = RuleHealth.NODATA, str(exc)
            return []
        except Exception as exc:  # a rule's failure is its state; the others go on
            if status.health != RuleHealth.ERROR or status.message != str(exc):
                log.error("rule %s failed: %s", rule.name, exc)
            status.health, status.message = RuleHealth.ERROR, str(exc)[:500]
            return []
        finally:
            status.last_eval_ms, status.seconds = now_ms, time.perf_counter() - started
        status.health = RuleHealth.OK if evaluation.values else RuleHealth.NODATA
        status.message = "" if evaluation.values else "the query matched no data in the window"
        return self.states.apply(rule, evaluation.values, now_ms, evaluation.holding)

    def _alerts(self) -> list[Alert]:
        out = []
        for s in self.states.by_id.values():
            if s.state not in (State.FIRING, State.RESOLVED) or not s.fired_at_ms:
                continue
            out.append(
                Alert(
                    s.id,
                    s.label_map,
                    dict(s.annotations),
                    s.value,
                    _threshold(self.rules, s.rule),
                    s.fired_at_ms,
                    s.resolved_at_ms if s.state == State.RESOLVED else 0,
                    bool(s.acked_by),
                )
            )
        return out

    def run(self, stop: threading.Event) -> None:
        """Evaluate every interval until `stop` (the engine's thread)."""
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.evaluate_once()
            except Exception:  # the store's write or read failed: try again next interval
                log.exception("alert evaluation failed")
            stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    # the AlertBook the Alerts service answers from
    def instances(self) -> list[InstanceState]:
        with self._lock:
            return [s for s in self.states.by_id.values() if s.state in (State.PENDING, State.FIRING)]

    def rule_status(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return [(s.name, s.health.value, s.message, s.last_eval_ms) for s in self.status.values()]

    def ack(self, id: str, by: str, note: str) -> InstanceState:
        now_ms = int(self.clock() * 1000)
        with self._lock:
            state = self.states.by_id.get(id)
            if state is None or state.state not in (State.PENDING, State.FIRING):
                raise KeyError(f"no pending or firing alert {id!r}")
            self.store.ack(id, by, note, now_ms)
            state.acked_by, state.acked_at_ms, state.ack_note = by, now_ms, note
            return state

    def add_silence(self, s: Silence) -> None:
        with self._lock:
            self.store.add_silence(s)
            self._silences = self.store.silences(int(self.clock() * 1000))

    def silences(self, include_expired: bool) -> list[Silence]:
        return self.store.silences(int(self.clock() * 1000), include_expired)

    def expire_silence(self, id: str) -> Silence:
        with self._lock:
            expired = self.store.expire_silence(id, int(self.clock() * 1000))
            self._silences = self.store.silences(int(self.clock() * 1000))
            return expired

    def history(self, since_ms: int, limit: int, state: str) -> list[Transition]:
        return self.store.history(since_ms, limit, state)


def _group_of(state: InstanceState, rule) -> tuple[tuple[str, str], ...]:
    labels = state.label_map
    return tuple(sorted((k, labels.get(k, "")) for k in rule.by))


def _threshold(rules, name: str) -> str:
    return next((r.threshold for r in rules if r.name == name), "")
