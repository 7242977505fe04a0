"""bench.alerting at tiny sizes: the rule mix is a valid rules file of the kinds asked for, every
one of its rules evaluates cleanly (health ok) against the generated hosts, the typical rule's
values are the generated data's averages over the window read, and a real collector notifies
each crossing once, firing then resolved, with the rule's labels. No timing is asserted."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from bench import alerting, hostday
from ferry.agent import catalogue as c
from ferry.collector.alerting.rulesfile import load_rules


@pytest.mark.parametrize("n", [1, 40, 1000])
def test_the_rule_mix_is_a_rules_file_of_n_rules_in_the_mix(tmp_path, n):
    path = tmp_path / "rules.toml"
    path.write_text(alerting.rule_mix(n))
    rules = load_rules(str(path))
    assert not rules.builtin_rules and len(rules.alerts) == n
    assert len({r.name for r in rules.alerts}) == n
    kinds = [r.kind for r in rules.alerts]
    want = {"condition": round(n * 0.6), "ratio": round(n * 0.25)}
    want["absent"] = n - want["condition"] - want["ratio"]
    assert {k: kinds.count(k) for k in want} == want
    assert all(r.for_s == 300.0 for r in rules.alerts)
    if n == 1000:  # every template, thresholds spread over their range
        queries = {repr(r.query) for r in rules.alerts if r.kind == "condition"}
        assert len(queries) == len(alerting.CONDITIONS)
        conditions = [r for r in rules.alerts if r.kind == "condition"]
        assert len({(repr(r.query), r.agg, r.by, r.window_s, r.threshold) for r in conditions}) == 600
        first = repr(conditions[0].query)
        cpu_user = sorted(r.condition.number for r in conditions if repr(r.query) == first)
        assert len(cpu_user) == 50 and cpu_user[0] == 0.05 and cpu_user[-1] == 0.8


def test_tiny_store_every_rule_healthy_and_the_typical_rule_exact(store, store_dsn, tmp_path):
    hosts, rules = 2, 40
    r = alerting.eval_figures(store_dsn, store.db, hosts, rules, 1, 1, str(tmp_path))
    e = r["alert_eval"]
    steps = 3600 // 10
    assert e["points"] == e["stored_points"] == hosts * 59 * steps and e["series"] == hosts * 59
    assert e["rule_kinds"] == {"condition": 24, "ratio": 10, "absent": 6}
    assert e["rule_health"] == {"ok": rules}  # every query of the mix matches the generated data
    first, second = e["engine_runs"]
    # every rule has for = 5m: the first run makes pending instances, the second changes nothing
    assert first["transitions"] == e["pending_instances"] > 0 and second["transitions"] == 0
    assert r["alert_eval_fits_default_interval"] in (True, False) and r["alert_list_wait_s"] >= 0
    # the typical rule: avg of both cpus' user utilization over the buckets the window reads
    # (15 s buckets from the one holding now - 1m to the one holding now), from the generator
    family = hostday.host_metrics(np.random.default_rng(1), hosts, steps)  # storage.load's seed
    user = [v for s, v in family if s.name == c.CPU_UTILIZATION.name and dict(s.labels)["state"] == "user"]
    times = e["start_ms"] + np.arange(steps) * hostday.STEP_MS
    now = e["now_ms"]
    start, end = (now - 60_000) // 15_000 * 15_000, now // 15_000 * 15_000 + 15_000
    inside = (times >= start) & (times < end)
    want = {f"host-{h:03d}": float(np.mean([v[h][inside] for v in user])) for h in range(hosts)}
    assert e["typical_groups"] == hosts and e["typical_values"] == pytest.approx(want, rel=1e-12)
    assert e["typical_holding"] == sum(v > 0.8 for v in want.values())


def test_each_crossing_is_notified_once_firing_then_resolved():
    r = alerting.latency_figures(crossings=2, settle_s=1.5)
    n = r["alert_notify"]
    assert n["webhooks"] == ["firing", "resolved", "firing", "resolved"]
    for crossing in n["crossings"]:
        assert crossing["value"] == alerting.HOT
        assert crossing["labels"] == {"alertname": "BenchHot", "host": alerting.HOST, "severity": "critical"}
    assert r["alert_notify_latency_ms"] == statistics.median(c["latency_ms"] for c in n["crossings"])
