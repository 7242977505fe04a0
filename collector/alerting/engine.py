"""The collector's alerting as it runs: the rules file loaded (and reloaded by SIGHUP), every
rule evaluated every `alert_eval_interval`, instances moved, their transitions written to the
store, the firing and just-resolved alerts handed to the notifier; acknowledgements and
silences kept. It is the `AlertBook` the Alerts service answers from.

Evaluation runs on a thread of its own, its rules' queries on a few threads at once (they wait
on the store), never on the event loop; a rule whose query fails is in state `error` with the
message, and the others go on.
A restart reads the instances still pending or firing back from the store, so `for` progress
is kept (to one interval) and what was notified is not notified again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ferry.collector.alerting.evaluate import Evaluation, Evaluator, NoData, QueryRange, group_of
from ferry.collector.alerting.model import Alert, InstanceState, RuleHealth, Silence, State, Transition
from ferry.collector.alerting.rules import Rule
from ferry.collector.alerting.rulesfile import RulesFile, load_rules
from ferry.collector.alerting.state import Instances

if TYPE_CHECKING:
    from ferry.collector.alerting.builtin import Builtins

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


MAX_INSTANCES = 10_000  # per rule: a `by` of higher cardinality puts the rule in error
STARTUP_GRACE_S = 5.0  # at least: the first evaluation after a restart waits for agents
EVAL_THREADS = 4  # rules evaluated at once (their queries wait on the store)


class Engine:
    def __init__(
        self,
        path: str,
        query_range: QueryRange,
        store: Persisting,
        notifier: Notifying | None = None,
        interval_s: float = 15.0,
        clock: Callable[[], float] = time.time,
        builtins: Callable[[RulesFile], Builtins | None] | None = None,
    ):
        self.path = path
        self.store = store
        self.notifier = notifier
        self.interval_s = interval_s
        self.clock = clock
        self.evaluator = Evaluator(query_range, clock)
        self.make_builtins = builtins or (lambda _file: None)
        self.rules_file: RulesFile = load_rules(path)  # ConfigError: the collector does not start
        self.builtins = self.make_builtins(self.rules_file)
        live = (State.PENDING, State.FIRING)  # resolved ones were notified before the restart
        self.states = Instances(s for s in store.current() if s.state in live)
        self.status: dict[str, RuleStatus] = {}
        self._silences: list[Silence] = []
        self._unwritten: list[Transition] = []  # a failed store write's transitions, retried
        self.startup_grace_s = max(STARTUP_GRACE_S, interval_s)
        self._pool = ThreadPoolExecutor(EVAL_THREADS, thread_name_prefix="alert-eval")
        self._lock = threading.Lock()  # the instances: evaluation (its thread) against RPCs and reloads
        self._retire(int(clock() * 1000))  # instances of rules this file no longer has
        self.restored = {s.id for s in self.states.by_id.values() if s.state == State.FIRING}
        now_ms = int(clock() * 1000)
        for s in self.states.by_id.values():  # keep_firing_for counts from the restart (not stored)
            s.last_true_ms = max(s.last_true_ms, now_ms)
        by_name = {r.name: r for r in self.rules}
        for s in self.states.by_id.values():  # the store keeps thresholds in transitions only
            s.threshold = s.threshold or (by_name[s.rule].threshold if s.rule in by_name else "")

    @property
    def rules(self) -> list[Rule]:
        return [*self.rules_file.alerts, *(self.builtins.rules if self.builtins else ())]

    def _retire(self, now_ms: int) -> None:
        """Resolve (firing) or drop the instances of rules not evaluated any more: removed from
        the file, disabled, or built-ins turned off. Their resolutions go out with the next
        update; the transitions are written with the next evaluation's."""
        keep = {r.name for r in self.rules if r.enabled}
        self._unwritten += self.states.retire(keep, now_ms)
        for name in [n for n in self.status if n not in keep]:
            del self.status[name]

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
            self.builtins = self.make_builtins(fresh)
            before = len(self.states.by_id)
            self._retire(int(self.clock() * 1000))
            retired = before - len(self.states.by_id)
        log.info(
            "rules reloaded: %d alerts, %d receivers, %d routes%s",
            len(fresh.alerts),
            len(fresh.receivers),
            len(fresh.routes),
            f"; instances of rules no longer evaluated resolved or dropped: {retired}" if retired else "",
        )
        return True

    def evaluate_once(self, now_ms: int | None = None) -> list[Transition]:
        """Every rule once, at `now_ms` (the clock's now by default). The queries run without the
        lock (RPCs are answered meanwhile); the instances move under it. The notifier is told
        whatever the store does: a store that fails loses no alert (the transitions are kept and
        written at a later evaluation) and does not hold FerryStoreErrors back."""
        now_ms = int(self.clock() * 1000) if now_ms is None else now_ms
        with self._lock:
            rules = [r for r in self.rules if r.enabled]
            known = {r.name: {group_of(s.label_map, r.by) for s in self.states.of(r.name)} for r in rules}
        # the rules' queries at once on a few threads: each waits on the store, GIL released
        results = self._pool.map(lambda r: self._evaluate(r, now_ms, known[r.name]), rules)
        evaluations = list(zip(rules, results, strict=True))
        with self._lock:
            transitions: list[Transition] = []
            for rule, evaluation in evaluations:
                if evaluation is not None:
                    transitions += self.states.apply(rule, evaluation.values, now_ms, evaluation.holding)
            self._unwritten += transitions
            self._persist(now_ms)
            if self.notifier is not None:
                self.notifier.update(self._alerts(), self._silences, now_ms)
            self.states.forget_resolved()
        return transitions

    def _persist(self, now_ms: int) -> None:
        pending, self._unwritten = self._unwritten, []
        try:
            if pending:
                self.store.write(pending)
                for t in pending:
                    if t.state in (State.RESOLVED, State.INACTIVE) and t.previous != State.INACTIVE:
                        self.store.clear_ack(t.id, now_ms)
            self._silences = self.store.silences(now_ms)
        except Exception as exc:  # the store: keep them for the next evaluation (bounded)
            self._unwritten = (pending + self._unwritten)[-100_000:]
            log.error("alert transitions not written (%d kept to retry): %s", len(pending), exc)

    def _evaluate(self, rule: Rule, now_ms: int, known: set) -> Evaluation | None:
        status = self.status.setdefault(rule.name, RuleStatus(rule.name))
        started = time.perf_counter()
        try:
            if rule.builtin:
                evaluation = self.builtins.evaluate(rule, now_ms)
            else:
                evaluation = self.evaluator.evaluate(rule, now_ms, known)
            if len(evaluation.values) > MAX_INSTANCES:
                raise ValueError(
                    f"{len(evaluation.values)} groups > {MAX_INSTANCES} allowed per rule: narrow its "
                    "query or its `by`"
                )
        except NoData as exc:
            status.health, status.message = RuleHealth.NODATA, str(exc)
            return None
        except Exception as exc:  # a rule's failure is its state; the others go on
            if status.health != RuleHealth.ERROR or status.message != str(exc)[:500]:
                log.error("rule %s failed: %s", rule.name, exc)
            status.health, status.message = RuleHealth.ERROR, str(exc)[:500]
            return None
        finally:
            status.last_eval_ms, status.seconds = now_ms, time.perf_counter() - started
        status.health = RuleHealth.OK if evaluation.values else RuleHealth.NODATA
        status.message = "" if evaluation.values else "the query matched no data in the window"
        return evaluation

    def _alerts(self) -> list[Alert]:
        """Every firing instance (those of a rule that failed this time too: they keep firing)
        and those resolved since the last update."""
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
                    s.threshold,
                    s.fired_at_ms,
                    s.resolved_at_ms if s.state == State.RESOLVED else 0,
                    bool(s.acked_by),
                )
            )
        return out

    def run(self, stop: threading.Event) -> None:
        """Evaluate every interval until `stop` (the engine's thread). After a restart with
        instances to resume, the first evaluation waits `startup_grace_s`: agents reconnect and
        resend what they spooled meanwhile, and a window read before that would find a gap and
        resolve (then fire again) what is still true."""
        if self.states.by_id:
            stop.wait(self.startup_grace_s)
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.evaluate_once()
            except Exception:  # unexpected: try again next interval
                log.exception("alert evaluation failed")
            stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    # the AlertBook the Alerts service answers from (copies: the engine thread moves the originals)
    def instances(self) -> list[InstanceState]:
        with self._lock:
            return [
                dataclasses.replace(s, annotations=dict(s.annotations))
                for s in self.states.by_id.values()
                if s.state in (State.PENDING, State.FIRING)
            ]

    def rule_status(self) -> list[tuple[str, str, str, int]]:
        with self._lock:
            return [(s.name, s.health.value, s.message, s.last_eval_ms) for s in self.status.values()]

    def ack(self, id: str, by: str, note: str) -> InstanceState:
        """Acknowledge a firing instance: its repeat notifications stop until it resolves (a
        pending one is not acknowledged: its first notification is still to be sent)."""
        now_ms = int(self.clock() * 1000)
        with self._lock:
            state = self.states.by_id.get(id)
            if state is None or state.state != State.FIRING:
                raise KeyError(f"no firing alert {id!r}" + (f" (it is {state.state})" if state else ""))
            self.store.ack(id, by, note, now_ms)
            state.acked_by, state.acked_at_ms, state.ack_note = by, now_ms, note
            return dataclasses.replace(state, annotations=dict(state.annotations))

    def add_silence(self, s: Silence) -> None:
        self.store.add_silence(s)
        fresh = self.store.silences(int(self.clock() * 1000))
        with self._lock:
            self._silences = fresh

    def silences(self, include_expired: bool) -> list[Silence]:
        return self.store.silences(int(self.clock() * 1000), include_expired)

    def expire_silence(self, id: str) -> Silence:
        expired = self.store.expire_silence(id, int(self.clock() * 1000))
        fresh = self.store.silences(int(self.clock() * 1000))
        with self._lock:
            self._silences = fresh
        return expired

    def history(self, since_ms: int, limit: int, state: str) -> list[Transition]:
        return self.store.history(since_ms, limit, state)
