"""What the alerting parts hand each other: alert instances, their states, and the view of an
alert the notifier routes, groups and sends.

    rules (ferry.collector.alerting.rules) → evaluator → states (one `Instance` per rule and
    group, moved by ferry.collector.alerting.state) → `Alert` views → notifier (routes,
    grouping, silences, acks, receivers) → webhook / Slack / email / Alertmanager

Times are milliseconds since the epoch (int) throughout; the evaluator's clock is injectable.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from enum import StrEnum

Labels = tuple[tuple[str, str], ...]  # sorted (key, value) pairs


class State(StrEnum):
    """An instance's state. `inactive`: its condition is false (or it resolved and was
    forgotten); `pending`: true for less than `for`; `firing`; `resolved`: was firing, its
    condition is false again (and `keep_firing_for` has passed)."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class RuleHealth(StrEnum):
    """A rule's own state, beside its instances': `ok`; `nodata` (its query matched nothing, or
    an anomaly rule's baseline is not full yet: `RuleStatus.message` says which); `error` (its
    query failed: the message; the evaluator carries on with the other rules)."""

    OK = "ok"
    NODATA = "nodata"
    ERROR = "error"


def labels_of(pairs: dict[str, str]) -> Labels:
    return tuple(sorted(pairs.items()))


def fingerprint(labels: Labels) -> str:
    """A stable id of an alert instance, from its labels (which carry `alertname`): 16 hex."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in labels)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class InstanceState:
    """One alert instance (a rule and one of its groups) and where it stands."""

    rule: str
    labels: Labels  # alertname, severity, the rule's labels, the group's labels
    state: State = State.INACTIVE
    value: float | None = None  # the last value evaluated
    active_since_ms: int = 0  # when the condition became true (pending began)
    fired_at_ms: int = 0  # when it began firing (0: never)
    resolved_at_ms: int = 0
    last_true_ms: int = 0  # the last evaluation the condition held (for keep_firing_for)
    annotations: dict[str, str] = field(default_factory=dict)  # templated at the last evaluation
    acked_by: str = ""
    acked_at_ms: int = 0
    ack_note: str = ""
    threshold: str = ""  # what its rule checks, as written ("> 0.8")

    @property
    def id(self) -> str:
        return fingerprint(self.labels)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Transition:
    """A change of an instance's state, as the `alerts` table holds it."""

    time_ms: int
    rule: str
    id: str
    labels: Labels
    state: State
    previous: State
    value: float | None
    threshold: str  # the condition as written ("> 0.8"), or what an absent/anomaly rule checks
    severity: str
    annotations: dict[str, str]


@dataclass(frozen=True)
class Alert:
    """An alert as the notifier sees it: firing, or resolved (`ends_at_ms` set)."""

    id: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float | None
    threshold: str
    starts_at_ms: int
    ends_at_ms: int = 0  # 0 while firing
    acked: bool = False  # acknowledged: no repeat notifications while it fires

    @property
    def resolved(self) -> bool:
        return self.ends_at_ms != 0

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


@dataclass(frozen=True)
class Matcher:
    """`label op value` over an alert's labels; op one of = != =~ !~ (regexes match whole
    values, as in queries and Alertmanager). A label the alert lacks matches as ''."""

    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        found = re.fullmatch(self.value, got) is not None
        return found if self.op == "=~" else not found


_OPS = {0: "=", 1: "!=", 2: "=~", 3: "!~"}  # ferry.v1.MatchOp: EQ, NEQ, RE, NRE


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """`{alertname="HighCPU",host=~"web-.*"}` (ferry query's matcher syntax; a leading name is
    taken as `alertname="name"`). Raises ValueError naming the column and what was wrong."""
    from ferry.collector.cli.expr import ExprError, parse

    try:
        selector = parse(text, require_name=False)
    except ExprError as exc:
        raise ValueError(f"matchers {text!r}: at column {exc.column + 1}: {exc}") from None
    out = [Matcher("alertname", "=", selector.metric)] if selector.metric else []
    for m in selector.matchers:
        op = _OPS[int(m.op)]
        if op in ("=~", "!~"):
            try:
                re.compile(m.value)
            except re.error as exc:
                raise ValueError(f"matchers {text!r}: {m.label}{op}{m.value!r}: bad regex: {exc}") from None
        out.append(Matcher(m.label, op, m.value))
    if not out:
        raise ValueError(f"matchers {text!r}: at least one matcher is needed (a silence of everything)")
    return tuple(out)


@dataclass(frozen=True)
class Silence:
    """Notifications of alerts whose labels match every matcher are held back from `starts_ms`
    to `ends_ms`."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_ms: int
    ends_ms: int
    comment: str = ""
    created_by: str = ""

    def active(self, now_ms: int) -> bool:
        return self.starts_ms <= now_ms < self.ends_ms

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def text(self) -> str:
        return matchers_text(self.matchers)


def matchers_text(matchers: tuple[Matcher, ...]) -> str:
    """`{label="value",...}` that `parse_matchers` reads back as `matchers` (quotes, backslashes
    and newlines escaped: a regex's `\\d` stays one)."""
    return "{" + ",".join(f'{m.label}{m.op}"{_escape(m.value)}"' for m in matchers) + "}"


def now_ms() -> int:
    """The wall clock in milliseconds: the alerting parts' default clock."""
    return time.time_ns() // 1_000_000


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
