"""The shipped configs load with the real parser, and the units run what the project installs."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

from ferry.agent.config import AgentConfig
from ferry.collector.config import CollectorConfig
from ferry.runtime.config import parse_args

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"


def test_default_configs_load_without_errors():
    agent = parse_args(AgentConfig, ["--config", str(PACKAGING / "config" / "agent.toml")], "ferry-agent", "")
    assert agent.collector == ["127.0.0.1:4770"] and agent.interval == 10.0 and agent.spool_fsync == "frame"
    assert agent.process_top_n == 10 and {"processes", "agent"} <= set(agent.collectors)
    collector = parse_args(
        CollectorConfig, ["--config", str(PACKAGING / "config" / "collector.toml")], "ferry-collector", ""
    )
    assert collector.store == "chdb:///var/lib/ferry/store" and collector.drain_timeout == 30.0


def test_units_start_the_installed_scripts_as_notify_services():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name in ("ferry-agent", "ferry-collector"):
        unit = configparser.ConfigParser(interpolation=None, strict=False)
        unit.read(ROOT / "systemd" / f"{name}.service")
        service = unit["Service"]
        assert service["Type"] == "notify"
        assert int(service["WatchdogSec"]) > 0
        executable = service["ExecStart"].split()[0]
        assert Path(executable).name == name and name in scripts
        assert f"/etc/ferry/{name.removeprefix('ferry-')}.toml" in service["ExecStart"]
        if name == "ferry-agent":
            assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # the agent reloads on SIGHUP
