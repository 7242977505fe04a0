"""Alert instances moved by each evaluation: inactive → pending → firing → resolved.

Per rule, `Instances.apply(rule, values, now_ms)` takes the value of every group the evaluation
found (None where the rule's condition does not hold: no data for a condition rule, or the
group's value failing it) and returns the transitions it made:

- condition holds: inactive/resolved → pending (firing at once when `for` is 0); pending →
  firing once it has held for `for`;
- condition does not hold (or the group is gone): pending → inactive; firing → resolved, unless
  it held less than `keep_firing_for` ago (then it keeps firing);
- a resolved instance is forgotten once its resolution was handed to the notifier
  (`forget_resolved`);
- the instances of a rule no longer evaluated (removed, disabled) are retired: a firing one
  resolves, the others go (`retire`).

A rule whose evaluation failed moves nothing: its instances keep their states until it
evaluates again (an error is the rule's state, not its alerts' resolution).
"""

from __future__ import annotations

from collections.abc import Iterable

from ferry.collector.alerting.model import InstanceState, Labels, State, Transition, fingerprint
from ferry.collector.alerting.rules import Rule, render


def instance_labels(rule: Rule, group: dict[str, str]) -> Labels:
    """An instance's labels: alertname, severity, the rule's labels (templated with the group's
    labels, alertname and severity) and the group's labels."""
    base = {**group, "alertname": rule.name, "severity": rule.severity}
    labels = {**group, **{k: render(v, base, None, rule.threshold) for k, v in rule.labels}}
    labels["alertname"] = rule.name
    labels["severity"] = rule.severity
    return tuple(sorted(labels.items()))


class Instances:
    """Every instance of every rule, by id (the fingerprint of its labels), and by rule."""

    def __init__(self, restored: Iterable[InstanceState] = ()):
        self.by_id: dict[str, InstanceState] = {}
        self._by_rule: dict[str, dict[str, InstanceState]] = {}
        for state in restored:
            self._put(state)

    def _put(self, state: InstanceState) -> None:
        self.by_id[state.id] = state
        self._by_rule.setdefault(state.rule, {})[state.id] = state

    def _drop(self, state: InstanceState) -> None:
        self.by_id.pop(state.id, None)
        of_rule = self._by_rule.get(state.rule, {})
        of_rule.pop(state.id, None)
        if not of_rule:
            self._by_rule.pop(state.rule, None)

    def of(self, rule: str) -> list[InstanceState]:
        return list(self._by_rule.get(rule, {}).values())

    def apply(
        self, rule: Rule, values: dict[Labels, float | None], now_ms: int, held: set[Labels] | None = None
    ) -> list[Transition]:
        """`values`: each group's labels → its value; `held`: the groups whose condition holds
        (default: every group whose value is not None)."""
        holding = {g for g, v in values.items() if v is not None} if held is None else held
        out: list[Transition] = []
        seen: set[str] = set()
        for group, value in values.items():
            labels = instance_labels(rule, dict(group))
            state = self.by_id.get(fingerprint(labels))
            if state is None:
                state = InstanceState(rule.name, labels, threshold=rule.threshold)
            seen.add(state.id)
            state.value = value
            if group in holding:
                out += self._holds(rule, state, now_ms)
            else:
                out += self._fails(rule, state, now_ms)
            if state.state != State.INACTIVE:
                self._put(state)
            else:
                self._drop(state)
        for state in self.of(rule.name):
            if state.id not in seen and state.state in (State.PENDING, State.FIRING):
                state.value = None  # its group is gone: not holding
                out += self._fails(rule, state, now_ms)
                if state.state == State.INACTIVE:
                    self._drop(state)
        return out

    def _holds(self, rule: Rule, state: InstanceState, now_ms: int) -> list[Transition]:
        state.last_true_ms = now_ms
        state.annotations = {
            k: render(v, dict(state.labels), state.value, rule.threshold) for k, v in rule.annotations
        }
        if state.state in (State.INACTIVE, State.RESOLVED):
            previous = state.state
            state.active_since_ms, state.fired_at_ms, state.resolved_at_ms = now_ms, 0, 0
            state.acked_by, state.acked_at_ms, state.ack_note = "", 0, ""
            state.state = State.PENDING
            moved = [self._moved(rule, state, previous, now_ms)]
            if rule.for_s <= 0:
                moved.append(self._fire(rule, state, now_ms))
            return moved
        if state.state == State.PENDING and now_ms - state.active_since_ms >= rule.for_s * 1000:
            return [self._fire(rule, state, now_ms)]
        return []

    def _fails(self, rule: Rule, state: InstanceState, now_ms: int) -> list[Transition]:
        if state.state == State.PENDING:
            state.state = State.INACTIVE
            return [self._moved(rule, state, State.PENDING, now_ms)]
        if state.state == State.FIRING:
            if now_ms - state.last_true_ms < rule.keep_firing_for_s * 1000:
                return []
            state.state, state.resolved_at_ms = State.RESOLVED, now_ms
            return [self._moved(rule, state, State.FIRING, now_ms)]
        return []

    def _fire(self, rule: Rule, state: InstanceState, now_ms: int) -> Transition:
        state.state, state.fired_at_ms = State.FIRING, now_ms
        return self._moved(rule, state, State.PENDING, now_ms)

    @staticmethod
    def _moved(rule: Rule, state: InstanceState, previous: State, now_ms: int) -> Transition:
        return Transition(
            now_ms,
            rule.name,
            state.id,
            state.labels,
            state.state,
            previous,
            state.value,
            rule.threshold,
            rule.severity,
            dict(state.annotations),
        )

    def forget_resolved(self) -> None:
        """Drop resolved instances (after the notifier was told of their resolution)."""
        for state in [s for s in self.by_id.values() if s.state == State.RESOLVED]:
            self._drop(state)

    def retire(self, keep: set[str], now_ms: int) -> list[Transition]:
        """The instances of rules not in `keep` (removed by a reload, disabled, or unknown to a
        restarted collector): a firing one resolved (its notification still goes out), the
        others dropped. Returns the transitions."""
        out = []
        for name in [n for n in self._by_rule if n not in keep]:
            for state in self.of(name):
                if state.state == State.FIRING:
                    previous, state.state, state.resolved_at_ms = state.state, State.RESOLVED, now_ms
                    out.append(_retired(state, previous, now_ms))
                elif state.state != State.RESOLVED:
                    previous, state.state = state.state, State.INACTIVE
                    out.append(_retired(state, previous, now_ms))
                    self._drop(state)
        return out


def _retired(state: InstanceState, previous: State, now_ms: int) -> Transition:
    labels = dict(state.labels)
    return Transition(
        now_ms, state.rule, state.id, state.labels, state.state, previous, state.value,
        state.threshold, labels.get("severity", ""), dict(state.annotations),
    )  # fmt: skip
