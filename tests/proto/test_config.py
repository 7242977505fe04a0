"""Configuration: TOML keys and flags for both executables; errors name file, line and key."""

from __future__ import annotations

import dataclasses

import pytest

from ferry.agent.config import AgentConfig
from ferry.collector.config import CollectorConfig
from ferry.runtime.config import (
    ConfigError,
    checked,
    parse_address,
    parse_args,
    parse_duration,
    parse_duration_or_zero,
    setting,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("1m", 60),
        ("2h", 7200),
        ("1d", 86400),
        ("1.5s", 1.5),
        (3, 3.0),
        ("7", 7.0),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize("bad", ["", "ten", "5 weeks", "-1s", "0s", True])
def test_bad_durations(bad):
    with pytest.raises(ConfigError, match="x"):
        parse_duration(bad, "x")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(0, 0.0), (0.0, 0.0), ("0", 0.0), ("0s", 0.0), ("0ms", 0.0), (" 0m ", 0.0), ("0.0h", 0.0),
     ("500ms", 0.5), ("1m", 60.0), (3, 3.0)],
)  # fmt: skip
def test_durations_or_zero(value, seconds):
    assert parse_duration_or_zero(value, "x") == seconds


@pytest.mark.parametrize("bad", ["", "ten", "-1s", "-0s", -1, True, False, None])
def test_bad_durations_or_zero(bad):
    with pytest.raises(ConfigError, match="x"):
        parse_duration_or_zero(bad, "x")


@dataclasses.dataclass
class _Kinds:
    wait: float = setting(30.0, "duration_or_zero")
    port: int = setting(25, "port")
    table: dict = setting({}, "table")


@pytest.mark.parametrize(
    ("key", "value", "parsed"),
    [("wait", "0ms", 0.0), ("wait", "2m", 120.0), ("port", 2525, 2525), ("port", "65535", 65535),
     ("table", {"a": 1, "b": {"c": "d"}}, {"a": 1, "b": {"c": "d"}})],
)  # fmt: skip
def test_the_kinds_of_tables_ports_and_durations_that_may_be_zero(key, value, parsed):
    field = {f.name: f for f in dataclasses.fields(_Kinds)}[key]
    assert checked(field, value, "k") == parsed


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("wait", "soon", "not a duration"), ("port", 0, "port number from 1 to 65535"),
     ("port", 65536, "port number"), ("port", True, "port number"), ("table", "x", "expected a table")],
)  # fmt: skip
def test_bad_tables_ports_and_durations_that_may_be_zero(key, value, message):
    field = {f.name: f for f in dataclasses.fields(_Kinds)}[key]
    with pytest.raises(ConfigError, match=message):
        checked(field, value, "k")


@pytest.mark.parametrize("bad", ["localhost", ":80", "host:", "host:99999", "host:http"])
def test_bad_addresses(bad):
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_address(bad, "--listen")


def test_file_then_flags_win(tmp_path):
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(
        'interval = "30s"\ncollector = ["a:1", "b:2"]\nagent_id = "from-file"\n[labels]\nrack = "r1"\n'
    )
    cfg = parse_args(AgentConfig, ["--config", str(cfg_file), "--agent-id", "from-flag"], "ferry-agent", "")
    assert cfg.interval == 30.0
    assert cfg.collector == ["a:1", "b:2"]
    assert cfg.agent_id == "from-flag"
    assert cfg.labels == {"rack": "r1"}
    cfg = parse_args(AgentConfig, ["--collector", "c:3,d:4", "--interval", "250ms"], "ferry-agent", "")
    assert (cfg.collector, cfg.interval) == (["c:3", "d:4"], 0.25)


def test_collector_defaults_and_flags():
    cfg = parse_args(
        CollectorConfig, ["--store", "chdb:///tmp/x", "--metrics-listen", ""], "ferry-collector", ""
    )
    assert cfg.listen == "127.0.0.1:4770"
    assert cfg.store == "chdb:///tmp/x"
    assert cfg.metrics_listen == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('\n\nintervall = "10s"\n', ":3: key 'intervall': unknown key"),
        ('interval = "soon"\n', ":1: key 'interval': 'soon' is not a duration"),
        ('log_level = "loud"\n', ":1: key 'log_level': 'loud' is not one of debug, info, warning, error"),
        ("interval = \n", "agent.toml: Invalid value (at line 1, column 12)"),
        ('collector = "nohost"\n', ":1: key 'collector': 'nohost' is not HOST:PORT"),
        ("batch_max_points = 0\n", "batch_max_points 0 must be >= 1"),
    ],
)
def test_config_errors_exit_2_naming_file_line_key(tmp_path, capsys, content, expected):
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(AgentConfig, ["--config", str(cfg_file)], "ferry-agent", "")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ferry-agent: configuration error" in err
    assert expected in err


def test_flag_error_names_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(CollectorConfig, ["--listen", "nowhere"], "ferry-collector", "")
    assert exit_info.value.code == 2
    assert "--listen: 'nowhere' is not HOST:PORT" in capsys.readouterr().err


def test_missing_file(capsys):
    with pytest.raises(SystemExit):
        parse_args(CollectorConfig, ["--config", "/nonexistent/ferry.toml"], "ferry-collector", "")
    assert "/nonexistent/ferry.toml: no such config file" in capsys.readouterr().err
