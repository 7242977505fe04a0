"""Reload planning, the config source a reload re-reads, and the settings reload brought in."""

from __future__ import annotations

import pytest

from ferry.agent.collectors.system import build_collectors, collector_settings
from ferry.agent.config import AgentConfig
from ferry.agent.reload import split
from ferry.agent.wiring import Agent
from ferry.runtime.config import ConfigError, parse_command_line


def load(tmp_path, text: str, *flags: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return parse_command_line(AgentConfig, ["--config", str(path), *flags], "ferry-agent", "").load()


def test_live_keys_apply_and_the_rest_waits_for_a_restart(tmp_path):
    old = load(tmp_path, 'interval = "10s"\ncollector = ["127.0.0.1:4770"]\n')
    new = load(
        tmp_path,
        'interval = "1s"\ncollector = ["127.0.0.1:4999"]\nprocess_top_n = 3\n[labels]\nenv = "b"\n',
    )
    live, restart = split(old, new)
    assert set(live) == {"interval", "process_top_n", "labels"}
    assert restart == ["collector"]
    assert split(old, old) == ([], [])


def test_the_source_rereads_the_file_and_flags_keep_winning(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('interval = "10s"\nprocess_top_n = 5\n')
    source = parse_command_line(
        AgentConfig, ["--config", str(path), "--process-top-n", "2"], "ferry-agent", ""
    )
    assert (source.load().interval, source.load().process_top_n) == (10.0, 2)
    path.write_text('interval = "3s"\nprocess_top_n = 7\n')
    assert (source.load().interval, source.load().process_top_n) == (3.0, 2)
    path.write_text('interval = "soon"\n')
    with pytest.raises(ConfigError, match=r"agent.toml:1: key 'interval'"):
        source.load()


def test_collector_and_jitter_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown collector\(s\) gpu \(known: system, disk"):
        load(tmp_path, 'collectors = ["system", "gpu"]\n')
    with pytest.raises(ConfigError, match=r"jitter 20s must not exceed interval 10s"):
        load(tmp_path, 'jitter = "20s"\n')
    cfg = load(tmp_path, "", "--collectors", "system, network", "--filesystem-exclude-types", "tmpfs,proc")
    assert cfg.collectors == ["system", "network"] and cfg.filesystem_exclude_types == ["tmpfs", "proc"]
    assert [c.name for c in build_collectors(cfg)] == ["system", "network"]


def test_collectors_whose_settings_did_not_change_are_kept(tmp_path):
    old = load(tmp_path, "process_top_n = 5\n")
    new = load(tmp_path, "process_top_n = 6\n")
    assert collector_settings(old, "system") == collector_settings(new, "system")
    assert collector_settings(old, "processes") != collector_settings(new, "processes")
    running = build_collectors(old)
    kept = {c.name: c for c in running if c.name != "processes"}
    fresh = build_collectors(new, reuse=kept)
    assert [c.name for c in fresh] == [c.name for c in running]
    assert all(a is b for a, b in zip(running, fresh, strict=True) if a.name != "processes")
    assert next(c for c in fresh if c.name == "processes").top_n == 6


def test_jitter_offset_is_fixed_per_agent_and_inside_the_window(tmp_path):
    offsets = set()
    for agent_id in ("a", "b", "c", "web-01"):
        cfg = load(tmp_path, f'jitter = "5s"\nagent_id = "{agent_id}"\nspool = "{tmp_path / agent_id}"\n')
        agent = Agent(cfg, collectors=[])
        first = agent._offset_s()
        assert 0 <= first < 5 and agent._offset_s() == first
        offsets.add(round(first, 6))
        agent.spool.close()
        agent.pipeline.shutdown()
    assert len(offsets) == 4  # different agents, different places in the window
