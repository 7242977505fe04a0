"""The `agent` collector: the agent's own delivery counters, as COUNTER series of the catalogue
whose values are the self-metrics' (on --metrics-listen) at each cycle; on by default."""

from __future__ import annotations

from prometheus_client import REGISTRY

from ferry.agent import catalogue as c
from ferry.agent import selfmetrics as m
from ferry.agent.collectors.agent_self import COUNTERS, AgentSelfCollector
from ferry.agent.collectors.base import HostEnv
from ferry.agent.collectors.system import COLLECTOR_NAMES, HostConfig, build_collectors
from ferry.series import COUNTER

EMITTED = {
    c.AGENT_SPOOL_DROPPED_FRAMES.name: "ferry_agent_spool_dropped_frames_total",
    c.AGENT_SPOOL_DROPPED_POINTS.name: "ferry_agent_spool_dropped_points_total",
    c.AGENT_FRAMES_REJECTED.name: "ferry_agent_frames_rejected_total",
    c.AGENT_POINTS_REJECTED.name: "ferry_agent_points_rejected_total",
}


def collect(collector) -> dict[str, tuple[float, int, str, tuple]]:
    out = {}
    collector.collect(0, lambda s, v: out.__setitem__(s.name, (v, s.kind, s.unit, s.labels)))
    return out


def exported() -> dict[str, float]:
    """The same counters as the self-metrics endpoint exports them (prometheus-client's registry)."""
    return {name: REGISTRY.get_sample_value(sample) or 0.0 for name, sample in EMITTED.items()}


def test_values_are_the_self_metrics_counters_after_they_grow():
    col = AgentSelfCollector()
    before = collect(col)
    assert {k: v[0] for k, v in before.items()} == exported()
    m.SPOOL_DROPPED_FRAMES.inc(3)
    m.SPOOL_DROPPED_POINTS.inc(1500)
    m.FRAMES_REJECTED.inc()
    m.POINTS_REJECTED.inc(40)
    after = collect(col)
    assert {k: v[0] for k, v in after.items()} == exported()
    grown = {k: after[k][0] - before[k][0] for k in after}
    assert grown == {
        "ferry.agent.spool.dropped_frames": 3.0,
        "ferry.agent.spool.dropped_points": 1500.0,
        "ferry.agent.frames.rejected": 1.0,
        "ferry.agent.points.rejected": 40.0,
    }
    # cumulative: a cycle with nothing new reports the same values
    assert collect(col) == after


def test_series_are_catalogue_counters_with_no_labels_of_their_own():
    got = collect(AgentSelfCollector())
    assert set(got) == set(EMITTED) == {d.name for d, _ in COUNTERS}
    for metric, _counter in COUNTERS:
        assert metric in c.ALL
        _value, kind, unit, labels = got[metric.name]
        assert (kind, unit, labels) == (COUNTER, metric.unit, ())
    assert got["ferry.agent.spool.dropped_frames"][2] == "{frame}"
    assert got["ferry.agent.spool.dropped_points"][2] == "{point}"


def test_it_is_a_host_collector_on_by_default():
    assert "agent" in COLLECTOR_NAMES
    assert "agent" in HostConfig().collectors
    (built,) = build_collectors(HostConfig(collectors=["agent"]), HostEnv())
    assert isinstance(built, AgentSelfCollector) and built.name == "agent"
    built.close()
