"""[[checks]] tables through the real config parser: good ones load, bad ones name file, line, table, key."""

from __future__ import annotations

import pytest

from ferry.agent.config import AgentConfig
from ferry.runtime.config import parse_args

GOOD = """\
interval = "10s"

[[checks]]
name = "web"
type = "http"
url = "http://127.0.0.1:8080/health"
interval = "15s"
timeout = "2s"
retries = 2
body_match = "ok"

[[checks]]
name = "db"
type = "tcp"
address = "127.0.0.1:5432"

[[checks]]
name = "disk-ok"
type = "command"
command = "test -w /tmp"
"""


def load(tmp_path, text: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return parse_args(AgentConfig, ["--config", str(path)], "ferry-agent", "")


def test_checks_load(tmp_path):
    checks = load(tmp_path, GOOD).checks
    assert [(c.name, c.type, c.target) for c in checks] == [
        ("web", "http", "http://127.0.0.1:8080/health"),
        ("db", "tcp", "127.0.0.1:5432"),
        ("disk-ok", "command", "test -w /tmp"),
    ]
    assert (checks[0].interval, checks[0].timeout, checks[0].retries, checks[0].body_match) == (
        15,
        2,
        2,
        "ok",
    )
    assert (checks[1].interval, checks[1].timeout, checks[1].retries) == (30, 5, 0)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('name = "x"\ntype = "ping"\n', "[[checks]] #1: key 'type' is 'ping', not one of http, tcp, command"),
        ('name = "x"\ntype = "tcp"\n', "[[checks]] #1: key 'address' is required for a tcp check"),
        (
            'name = "x"\ntype = "tcp"\naddress = "a:1"\nurl = "http://x"\n',
            "unknown key(s) url for a tcp check",
        ),
        ('name = "x"\ntype = "http"\nurl = "ftp://x"\n', "key 'url' 'ftp://x' must start with http://"),
        (
            'name = "x"\ntype = "command"\ncommand = "true"\ninterval = "often"\n',
            "[[checks]] #1: key 'interval': 'often' is not a duration",
        ),
        (
            'name = "x"\ntype = "command"\ncommand = "true"\nretries = 99\n',
            "key 'retries' 99 must be an integer",
        ),
        ('name = "a b"\ntype = "command"\ncommand = "true"\n', "key 'name' 'a b' must match"),
        (
            'name = "x"\ntype = "http"\nurl = "http://x"\nbody_match = "("\n',
            "key 'body_match' '(' is not a regex",
        ),
    ],
)
def test_bad_checks_name_file_line_table_and_key(tmp_path, capsys, table, expected):
    with pytest.raises(SystemExit) as exit_info:
        load(tmp_path, f'interval = "10s"\n\n[[checks]]\n{table}')
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "agent.toml:3: key 'checks'" in err  # the line of the first [[checks]] header
    assert expected in err


def test_duplicate_check_names(tmp_path, capsys):
    table = '[[checks]]\nname = "x"\ntype = "command"\ncommand = "true"\n'
    with pytest.raises(SystemExit):
        load(tmp_path, table + table)
    assert "[[checks]] #2: key 'name' 'x' is used by another check" in capsys.readouterr().err
