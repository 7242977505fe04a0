"""The [[alerts]] tables: each kind of rule, templates, conditions, and refusals that name the
file, line and key."""

from __future__ import annotations

import pytest

from ferry.collector.alerting.model import State
from ferry.collector.alerting.rules import ALERTS, Rule, parse_condition, render
from ferry.collector.alerting.state import Instances
from ferry.runtime.config import ConfigError, apply_file, load_toml
from ferry.runtime.tables import tables


def rules(tmp_path, text: str) -> list[Rule]:
    from dataclasses import dataclass

    @dataclass
    class File:
        alerts: list = tables(ALERTS, "")

    path = tmp_path / "rules.toml"
    path.write_text(text)
    f = File()
    apply_file(f, load_toml(path), path)
    return f.alerts


HIGH_CPU = """
[[alerts]]
name = "HighCPU"
query = 'system.cpu.utilization{state="user"}'
agg = "avg"
by = ["host"]
window = "1m"
condition = "> 0.8"
for = "5m"
severity = "warning"
labels = { team = "ops" }
annotations = { summary = "CPU on {{host}} at {{value}} ({{threshold}})" }
"""


def test_a_condition_rule(tmp_path):
    (rule,) = rules(tmp_path, HIGH_CPU)
    assert (rule.name, rule.kind, rule.agg, rule.by, rule.window_s, rule.for_s) == (
        "HighCPU", "condition", "avg", ("host",), 60.0, 300.0,
    )  # fmt: skip
    assert rule.query.metric == "system.cpu.utilization" and rule.condition.holds(0.81)
    assert not rule.condition.holds(0.8)
    assert rule.labels == (("team", "ops"),)
    text = render(dict(rule.annotations)["summary"], {"host": "web-1"}, 0.8512, rule.threshold)
    assert text == "CPU on web-1 at 0.8512 (> 0.8)"


def test_ratio_absent_and_anomaly_rules(tmp_path):
    text = """
[[alerts]]
name = "ErrorRate"
ratio = { numerator = 'http.errors{code=~"5.."}', denominator = 'http.requests' }
agg = "increase"
by = ["service"]
condition = "> 5%"
for = "3m"
severity = "critical"

[[alerts]]
name = "AgentSilent"
query = "system.memory.usage"
by = ["host"]
absent = true
window = "30s"

[[alerts]]
name = "Spike"
query = "app.latency"
anomaly = { method = "zscore", baseline = "7d", threshold = 3, by_hour = true }
"""
    ratio, absent, anomaly = rules(tmp_path, text)
    assert ratio.kind == "ratio" and ratio.condition.number == pytest.approx(0.05)
    assert ratio.ratio.numerator.metric == "http.errors" and ratio.ratio.denominator.metric == "http.requests"
    assert absent.kind == "absent" and absent.threshold == "no data for 30s"
    assert anomaly.kind == "anomaly" and anomaly.anomaly.baseline_s == 7 * 86400 and anomaly.anomaly.by_hour


Q = 'name = "A"\nquery = "m"\ncondition = "> 1"\n'


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('name = "A"\nquery = "m"\nagg = "median"\ncondition = "> 1"', "'median' is not an aggregation"),
        ('name = "A"\nquery = "m"\ncondition = "above 1"', "is not a condition"),
        ('name = "A"\nquery = "m{"\ncondition = "> 1"', "bad expression at column"),
        ('name = "A"\nquery = "m"', "needs one of condition, ratio (+ condition), absent = true or anomaly"),
        ('name = "A"\nquery = "m"\ncondition = "> 1"\nabsent = true', "(condition, absent given)"),
        ('name = "A"\ncondition = "> 1"', "needs a query"),
        (
            'name = "A"\nquery = "m"\ncondition = "> 1"\nannotations = { s = "{{host" }',
            "not a {{name}} template",
        ),
        (
            'name = "A"\nquery = "m"\ncondition = "> 1"\nannotations = { s = "{{cpu}}" }',
            "template {{cpu}} names",
        ),
        ('name = "A"\nquery = "m"\ncondition = "> 1"\nfor = "soon"', "key 'for': 'soon' is not a duration"),
        ('name = "A"\nquery = "m"\ncondition = "> 1"\nseverity = "page"', "'page' is not one of info"),
        ('name = "A"\nquery = "m"\ncondition = "> 1"\nwhen = 1', "unknown key(s) when"),
        (
            'name = "A"\nquery = "m"\ncondition = "> 1"\nby = ["alertname"]',
            "'alertname' is a label Ferry sets",
        ),
        ('name = "A"\nquery = "m"\nagg = "p99"\nanomaly = { threshold = 3 }', "agg p99 cannot be used"),
    ],
)
def test_bad_rules_name_file_line_and_key(tmp_path, table, message):
    with pytest.raises(ConfigError) as exc:
        rules(tmp_path, "\n[[alerts]]\n" + table + "\n")
    assert message in str(exc.value)
    assert f"{tmp_path / 'rules.toml'}:2: key 'alerts' [[alerts]] #1" in str(exc.value)


def test_conditions():
    assert parse_condition(">= 2.5", "c").holds(2.5)
    assert parse_condition("!= 0", "c").holds(1)
    assert parse_condition("< -1e3", "c").number == -1000
    assert parse_condition("== 10%", "c").number == pytest.approx(0.1)


def rule(**kw) -> Rule:
    base = dict(name="R", kind="condition", query=None, agg="avg", by=("host",), window_s=60.0)
    return Rule(**{**base, **kw})


G1 = (("host", "a"),)


def test_pending_then_firing_after_for_then_resolved():
    r = rule(for_s=30.0)
    states = Instances()
    moved = states.apply(r, {G1: 0.9}, 1_000)
    assert [t.state for t in moved] == [State.PENDING]
    assert states.apply(r, {G1: 0.9}, 20_000) == []
    (fired,) = states.apply(r, {G1: 0.95}, 31_000)
    assert (fired.state, fired.previous, fired.value) == (State.FIRING, State.PENDING, 0.95)
    (resolved,) = states.apply(r, {G1: 0.1}, 40_000, held=set())
    assert (resolved.state, resolved.previous) == (State.RESOLVED, State.FIRING)
    states.forget_resolved()
    assert states.by_id == {}


def test_for_zero_fires_at_once_and_pending_that_stops_is_inactive():
    states = Instances()
    assert [t.state for t in states.apply(rule(), {G1: 1.0}, 0)] == [State.PENDING, State.FIRING]
    slow = Instances()
    slow.apply(rule(name="S", for_s=60.0), {G1: 1.0}, 0)
    (gone,) = slow.apply(rule(name="S", for_s=60.0), {G1: 0.0}, 10_000, held=set())
    assert (gone.previous, gone.state) == (State.PENDING, State.INACTIVE) and slow.by_id == {}


def test_keep_firing_for_holds_it_then_it_resolves():
    r = rule(keep_firing_for_s=30.0)
    states = Instances()
    states.apply(r, {G1: 1.0}, 0)
    assert states.apply(r, {G1: 0.0}, 10_000, held=set()) == []  # 10 s after it last held
    assert states.apply(r, {}, 29_000) == []  # its group gone: still within 30 s
    (resolved,) = states.apply(r, {}, 31_000)
    assert resolved.state == State.RESOLVED


def test_instance_labels_and_annotations():
    r = rule(
        severity="critical", labels=(("team", "{{host}}-ops"),), annotations=(("s", "{{host}}={{value}}"),)
    )
    states = Instances()
    states.apply(r, {G1: 2.0}, 0)
    (s,) = states.by_id.values()
    assert s.label_map == {"alertname": "R", "severity": "critical", "host": "a", "team": "a-ops"}
    assert s.annotations == {"s": "a=2"}


def test_silence_text_reads_back_as_its_matchers():
    from ferry.collector.alerting.model import Silence, parse_matchers

    matchers = parse_matchers(r'{alertname="HighCPU",host=~"web-\\d+",note!="say \"hi\""}')
    assert parse_matchers(Silence("s", matchers, 0, 1).text()) == matchers
    assert [m.matches({"alertname": "HighCPU", "host": "web-12"}) for m in matchers] == [True, True, True]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (Q + 'by = ["host name"]', "label 'host name' does not match"),
        (Q + 'by = ["host", "host"]', "names a label twice"),
        (Q + 'by = ["host"]\nlabels = { host = "x" }', "host is both a `by` label and one of its `labels`"),
        ('name = "A"\nquery = "m"\nwindow = "30s"\nanomaly = { baseline = "7d" }', "20160 buckets > 11000"),
        ('name = "A"\nquery = "m"\nwindow = "1h"\nanomaly = { baseline = "30m" }', "longer than the window"),
        ('name = "A"\nquery = "m"\nanomaly = { threshold = inf }', "must be a finite number > 0"),
        (Q + 'labels = { page = "{{value}}" }', "template {{value}} names"),
    ],
)
def test_rules_that_could_never_evaluate_are_refused_at_load(tmp_path, table, message):
    with pytest.raises(ConfigError) as exc:
        rules(tmp_path, "\n[[alerts]]\n" + table + "\n")
    assert message in str(exc.value)


def test_a_label_template_sees_alertname_and_severity():
    r = rule(severity="critical", labels=(("page", "{{severity}}-{{alertname}}"),))
    states = Instances()
    states.apply(r, {G1: 1.0}, 0)
    assert next(iter(states.by_id.values())).label_map["page"] == "critical-R"
