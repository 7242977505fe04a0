"""The `[[alerts]]` tables of a rules file (`--rules FILE`): what each rule asks of the store and
when it fires. The keys are declared once below (docs/configuration.md lists them); a bad table
is refused naming the file, line, table and key.

    [[alerts]]
    name = "HighCPU"
    query = 'system.cpu.utilization{state="user"}'   # ferry query's expression language
    agg = "avg"
    by = ["host"]
    window = "1m"
    condition = "> 0.8"
    for = "5m"
    severity = "warning"
    annotations = { summary = "CPU on {{host}} at {{value}}" }

A rule is one of: a `condition` on its query; a `ratio` of two queries, then a condition;
`absent = true` (a group that had data has none for `window`); an `anomaly` (the value against
the same statistic over a baseline). Templates name the group's labels, `{{value}}` and
`{{threshold}}`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry.collector.cli.expr import ExprError, Selector, parse
from ferry.collector.query.sql import AGGREGATIONS, QUANTILES, QueryLimits
from ferry.limits import LABEL_KEY_RE
from ferry.runtime.config import ConfigError, parse_duration, parse_duration_or_zero, setting
from ferry.runtime.tables import Section

SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.-]{0,127}$")
_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%?)\s*$")
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
RESERVED = ("alertname", "severity")  # labels every alert carries, set by Ferry
MAX_BASELINE_BUCKETS = QueryLimits().max_buckets  # an anomaly baseline is read in buckets of the window


@dataclass(frozen=True)
class Condition:
    """`> 0.8`; a trailing % divides the number by 100 (`> 5%` is `> 0.05`)."""

    op: str
    number: float
    text: str

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.number)


def parse_condition(value: Any, what: str) -> Condition | None:
    if value is None:
        return None
    match = _CONDITION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{what}: {value!r} is not a condition: one of > >= < <= == != and a number")
    op, number, percent = match.groups()
    return Condition(op, float(number) / (100 if percent else 1), str(value).strip())  # finite: the regex


def parse_query(value: Any, what: str) -> Selector | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what}: {value!r} is not a query expression")
    try:
        return parse(value, require_name=True)
    except ExprError as exc:
        raise ConfigError(f"{what}: bad expression at column {exc.column + 1}: {exc}") from None


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is required and must match {_NAME.pattern}")
    return value


def _agg(value: Any, what: str) -> str:
    if value not in AGGREGATIONS:
        raise ConfigError(f"{what}: {value!r} is not an aggregation (one of {', '.join(AGGREGATIONS)})")
    return value


def _strings(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{what}: expected a table of strings")
    return dict(value)


@dataclass(frozen=True)
class Ratio:
    numerator: Selector
    denominator: Selector
    text: str


def _ratio(value: Any, what: str) -> Ratio | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"numerator", "denominator"}:
        raise ConfigError(f"{what}: expected {{ numerator = '...', denominator = '...' }}")
    num = parse_query(value["numerator"], f"{what}.numerator")
    den = parse_query(value["denominator"], f"{what}.denominator")
    return Ratio(num, den, f"{value['numerator']} / {value['denominator']}")


@dataclass(frozen=True)
class Anomaly:
    """z-score of the value over `window` against the same statistic over `baseline` (buckets
    of `window`; with `by_hour`, only those of the same hour of day)."""

    baseline_s: float
    threshold: float
    by_hour: bool = False
    direction: str = "both"  # above | below | both
    min_coverage: float = 0.9  # the baseline must hold data this far back, as a share of it


def _anomaly(value: Any, what: str) -> Anomaly | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected {{ method = 'zscore', baseline = '7d', threshold = 3 }}")
    unknown = set(value) - {"method", "baseline", "threshold", "by_hour", "direction"}
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(sorted(unknown))}")
    if value.get("method", "zscore") != "zscore":
        raise ConfigError(f"{what}.method: {value['method']!r} is not a method (zscore)")
    threshold = value.get("threshold", 3)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not math.isfinite(threshold)
        or threshold <= 0
    ):
        raise ConfigError(f"{what}.threshold: {threshold!r} must be a finite number > 0")
    direction = value.get("direction", "both")
    if direction not in ("above", "below", "both"):
        raise ConfigError(f"{what}.direction: {direction!r} is not one of above, below, both")
    by_hour = value.get("by_hour", False)
    if not isinstance(by_hour, bool):
        raise ConfigError(f"{what}.by_hour: {by_hour!r} is not true or false")
    baseline = parse_duration(value.get("baseline", "7d"), f"{what}.baseline")
    return Anomaly(baseline, float(threshold), by_hour, direction)


@dataclass
class AlertKeys:
    """The keys of one `[[alerts]]` table."""

    name: str = setting(
        None, help="the rule's name: the alerts' `alertname` label", parse=_name, required=True
    )
    query: Selector = setting(None, help="what it reads: ferry query's expression", parse=parse_query)
    agg: str = setting("avg", help="the aggregation over each group and the window", parse=_agg)
    by: list = setting([], "names", "the labels that make a group (one alert instance per group)")
    window: float = setting(60.0, "duration", "the range each evaluation reads, ending now")
    condition: Condition = setting(None, help="'> 0.8': any of > >= < <= == != and a number (or %)",
                                   parse=parse_condition)  # fmt: skip
    ratio: Ratio = setting(
        None, "table", "{ numerator = 'expr', denominator = 'expr' }, then condition", parse=_ratio
    )
    absent: bool = setting(False, "bool", "fire for a group that had data and has none for window")
    anomaly: Anomaly = setting(
        None,
        "table",
        "{ method = 'zscore', baseline = '7d', threshold = 3, by_hour = false, direction = 'both' }",
        parse=_anomaly,
    )
    for_: float = setting(
        0.0,
        "duration",
        "how long the condition must hold before it fires",
        parse=parse_duration_or_zero,
        key="for",
    )
    keep_firing_for: float = setting(
        0.0,
        "duration_or_zero",
        "keep firing this long after the condition stops",
        parse=parse_duration_or_zero,
    )
    severity: str = setting("warning", "choice", "info, warning or critical", choices=SEVERITIES)
    labels: dict = setting({}, "labels", "labels added to its alerts", parse=_strings)
    annotations: dict = setting(
        {}, "table", "summary, description, runbook_url...: templates", parse=_strings
    )
    enabled: bool = setting(True, "bool", "false: the rule is kept but not evaluated")


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # condition | ratio | absent | anomaly
    query: Selector | None
    agg: str
    by: tuple[str, ...]
    window_s: float
    condition: Condition | None = None
    ratio: Ratio | None = None
    anomaly: Anomaly | None = None
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    severity: str = "warning"
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    enabled: bool = True
    builtin: bool = False

    @property
    def threshold(self) -> str:
        """What the rule checks, as written: the condition, or what absence/anomaly means."""
        if self.kind == "absent":
            return f"no data for {self.window_s:g}s"
        if self.kind == "anomaly" and self.anomaly is not None:
            return f"|z| > {self.anomaly.threshold:g} over {self.anomaly.baseline_s / 86400:g}d"
        return self.condition.text if self.condition is not None else ""


def render(template: str, labels: dict[str, str], value: float | None, threshold: str) -> str:
    """`{{host}}` → the group's label, `{{value}}` → the value (4 significant digits),
    `{{threshold}}` → the rule's condition."""

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name == "value":
            return "" if value is None else f"{value:.4g}"
        if name == "threshold":
            return threshold
        return labels.get(name, "")

    return _TEMPLATE.sub(one, template)


def _check_template(text: str, known: set[str], where: str) -> None:
    stripped = _TEMPLATE.sub("", text)
    if "{{" in stripped or "}}" in stripped:
        raise ConfigError(f"{where}: {text!r} has a '{{{{' or '}}}}' that is not a {{{{name}}}} template")
    for name in _TEMPLATE.findall(text):
        if name not in known:
            raise ConfigError(
                f"{where}: template {{{{{name}}}}} names neither a label of its alerts "
                f"({', '.join(sorted(known - {'value', 'threshold'}))}) nor value or threshold"
            )


def _rule(values: dict[str, Any], at: str, earlier: list[Rule]) -> Rule:
    name = values["name"]
    if any(r.name == name for r in earlier):
        raise ConfigError(f"{at}: rule {name!r} is named twice")
    given = [k for k in ("condition", "ratio", "absent", "anomaly") if values[k]]
    if values["ratio"] is not None:
        if values["condition"] is None:
            raise ConfigError(f"{at}: rule {name!r}: a ratio needs a condition ('> 5%')")
        kind = "ratio"
    elif given == ["condition"]:
        kind = "condition"
    elif given in (["absent"], ["anomaly"]):
        kind = given[0]
    else:
        raise ConfigError(
            f"{at}: rule {name!r} needs one of condition, ratio (+ condition), absent = true or anomaly "
            f"({', '.join(given) or 'none'} given)"
        )
    if kind != "ratio" and values["query"] is None:
        raise ConfigError(f"{at}: rule {name!r} needs a query")
    if kind == "ratio" and values["query"] is not None:
        raise ConfigError(f"{at}: rule {name!r}: a ratio rule's queries are its numerator and denominator")
    if values["agg"] in QUANTILES and kind in ("ratio", "anomaly"):
        raise ConfigError(f"{at}: rule {name!r}: agg {values['agg']} cannot be used in a {kind} rule")
    by = tuple(values["by"])
    if len(set(by)) != len(by):
        raise ConfigError(f"{at}: key 'by': {list(by)} names a label twice")
    for key in (*values["labels"], *by):
        if key in RESERVED:
            raise ConfigError(f"{at}: rule {name!r}: {key!r} is a label Ferry sets itself")
        if not LABEL_KEY_RE.fullmatch(key):
            raise ConfigError(f"{at}: rule {name!r}: label {key!r} does not match {LABEL_KEY_RE.pattern}")
    overlap = sorted(set(values["labels"]) & set(by))
    if overlap:
        raise ConfigError(
            f"{at}: rule {name!r}: {', '.join(overlap)} is both a `by` label and one of its `labels` "
            "(it would make every group one alert)"
        )
    anomaly = values["anomaly"]
    if anomaly is not None:
        buckets = anomaly.baseline_s / values["window"]
        if anomaly.baseline_s <= values["window"]:
            raise ConfigError(f"{at}: rule {name!r}: the anomaly baseline must be longer than the window")
        if buckets > MAX_BASELINE_BUCKETS:
            raise ConfigError(
                f"{at}: rule {name!r}: a baseline of {anomaly.baseline_s:g}s in windows of "
                f"{values['window']:g}s is {buckets:.0f} buckets > {MAX_BASELINE_BUCKETS} (the query "
                "limit): a longer window or a shorter baseline"
            )
    known = {*RESERVED, *values["labels"], *by, "value", "threshold"}
    for key, text in values["annotations"].items():
        _check_template(text, known, f"{at}: key 'annotations.{key}'")
    for key, text in values["labels"].items():  # a label's template: the group's labels, not another's
        _check_template(text, {*RESERVED, *by, "threshold"}, f"{at}: key 'labels.{key}'")
    return Rule(
        name,
        kind,
        values["query"],
        values["agg"],
        by,
        values["window"],
        values["condition"],
        values["ratio"],
        values["anomaly"],
        values["for_"],
        values["keep_firing_for"],
        values["severity"],
        tuple(sorted(values["labels"].items())),
        tuple(sorted(values["annotations"].items())),
        values["enabled"],
    )


ALERTS = Section("alerts", AlertKeys, _rule)
