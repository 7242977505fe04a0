"""[[receivers]] and [[routes]] as the rules file holds them: what they build, and refusals that
name the file, the line, the table and the key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ferry.collector.alerting.notify import RECEIVERS, ROUTES, Receiver, Route, check_routes
from ferry.runtime.config import ConfigError, apply_file, load_toml
from ferry.runtime.tables import tables


@dataclass
class RulesFile:
    """What the rules loader composes: the two sections, as tables(...) fields."""

    receivers: list = tables(RECEIVERS, "where notifications go")
    routes: list = tables(ROUTES, "which alerts go where")


def load(tmp_path: Path, text: str) -> RulesFile:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    cfg = RulesFile()
    apply_file(cfg, load_toml(path), path)
    check_routes(cfg.receivers, cfg.routes)
    return cfg


GOOD = """
[[receivers]]
name = "ops"
type = "webhook"
url = "http://127.0.0.1:9000/hook"

[[receivers]]
name = "chat"
type = "slack"
url = "https://hooks.slack.example/services/T0/B0/x"
timeout = "3s"
max_retries = 2

[[receivers]]
name = "mail"
type = "email"
smtp_host = "127.0.0.1"
smtp_port = 2525
from = "ferry@example.com"
to = ["ops@example.com", "oncall@example.com"]
starttls = true

[[receivers]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093/"
resend_interval = "30s"

[[routes]]
match = { severity = "critical" }
receiver = "chat"
group_by = ["alertname", "host"]
group_wait = "0s"

[[routes]]
receiver = "ops"
group_by = ["..."]
group_interval = "1m"
repeat_interval = "1h"
"""


def test_a_rules_file_builds_receivers_and_routes(tmp_path):
    cfg = load(tmp_path, GOOD)
    ops, chat, mail, am = cfg.receivers
    assert ops == Receiver("ops", "webhook", url="http://127.0.0.1:9000/hook")
    assert (chat.type, chat.timeout, chat.max_retries) == ("slack", 3.0, 2)
    assert (mail.smtp_host, mail.smtp_port, mail.sender, mail.to, mail.starttls) == (
        "127.0.0.1", 2525, "ferry@example.com", ("ops@example.com", "oncall@example.com"), True,
    )  # fmt: skip
    assert (am.url, am.resend_interval, am.timeout, am.max_retries) == (
        "http://127.0.0.1:9093",
        30.0,
        10.0,
        5,
    )
    critical, catch_all = cfg.routes
    assert critical == Route("chat", (("severity", "critical"),), ("alertname", "host"), 0.0, 300.0, 14400.0)
    assert catch_all == Route("ops", (), ("...",), 30.0, 60.0, 3600.0)
    assert critical.matches({"severity": "critical", "host": "a"}) and not critical.matches(
        {"severity": "warning"}
    )
    assert catch_all.matches({})
    assert catch_all.group_labels({"b": "2", "a": "1"}) == (("a", "1"), ("b", "2"))
    assert critical.group_labels({"alertname": "X", "severity": "critical"}) == (("alertname", "X"),)


@pytest.mark.parametrize(("given", "seconds"), [('"0ms"', 0.0), ('"0m"', 0.0), ("0", 0.0), ('"1.5s"', 1.5)])
def test_group_wait_may_be_zero_in_any_unit(tmp_path, given, seconds):
    text = '[[receivers]]\nname = "ops"\ntype = "webhook"\nurl = "http://h/"\n\n'
    (r,) = load(tmp_path, text + f'[[routes]]\nreceiver = "ops"\ngroup_wait = {given}\n').routes
    assert r.group_wait == seconds


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    return str(exc.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[receivers]]\nname = "x"\ntype = "pager"\nurl = "http://h/"\n',
            "rules.toml:1: key 'receivers' [[receivers]] #1: key 'type' is 'pager', "
            "not one of webhook, slack, email, alertmanager",
        ),
        (
            '[[receivers]]\nname = "a"\ntype = "webhook"\nurl = "http://h/"\n\n'
            '[[receivers]]\nname = "x"\ntype = "slack"\n',
            "rules.toml:1: key 'receivers' [[receivers]] #2: key 'url' is required for a slack receiver",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "ftp://h/"\n',
            "[[receivers]] #1: key 'url' 'ftp://h/' must be an http:// or https:// url with a host",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "http://h/"\ntimeout = "soon"\n',
            "rules.toml:1: key 'receivers' [[receivers]] #1: key 'timeout': 'soon' is not a duration",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "http://h/"\nsmtp_host = "h"\n',
            "[[receivers]] #1: unknown key(s) smtp_host for a webhook receiver (known: max_retries, name, "
            "timeout, type, url)",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "email"\nsmtp_host = "h"\nto = ["a@b"]\n',
            "[[receivers]] #1: key 'from' is required for an email receiver",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "email"\nsmtp_host = "h"\nfrom = "a@b"\nto = ["nobody"]\n',
            "[[receivers]] #1: key 'to': 'nobody' given; expected e-mail addresses",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "email"\nsmtp_host = "h"\nfrom = "a@b"\nto = "c@d"\n'
            "smtp_port = 0\n",
            "[[receivers]] #1: key 'smtp_port' 0 must be a port number from 1 to 65535",
        ),
        (
            '\n\n[[routes]]\nreceiver = "ops"\ngroup_wait = "-0s"\n',
            "rules.toml:3: key 'routes' [[routes]] #1: key 'group_wait': '-0s' is not a duration",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "http://h/"\nmax_retries = 99\n',
            "[[receivers]] #1: key 'max_retries' 99 must be an integer from 0 to 20",
        ),
        (
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "http://h/"\n\n'
            '[[receivers]]\nname = "x"\ntype = "webhook"\nurl = "http://g/"\n',
            "[[receivers]] #2: key 'name' 'x' is used by another receiver",
        ),
        (
            '\n\n[[routes]]\nreceiver = "ops"\ngroup_wait = "30 parsecs"\n',
            "rules.toml:3: key 'routes' [[routes]] #1: key 'group_wait': '30 parsecs' is not a duration",
        ),
        (
            '[[routes]]\nreceiver = "ops"\nmatch = { severity = 2 }\n',
            "[[routes]] #1: key 'match': expected a table of label = string",
        ),
        (
            '[[routes]]\nreceiver = "ops"\ngroups = ["host"]\n',
            "[[routes]] #1: unknown key(s) groups (known: group_by, group_interval, group_wait, match, "
            "receiver, repeat_interval)",
        ),
        (
            '[[routes]]\nreceiver = "ops"\ngroup_by = ["...", "host"]\n',
            "[[routes]] #1: key 'group_by' ['...', 'host']: \"...\" stands alone",
        ),
        (
            '[[receivers]]\nname = "ops"\ntype = "webhook"\nurl = "http://h/"\n\n'
            '[[routes]]\nreceiver = "ops"\n\n[[routes]]\nreceiver = "opps"\n',
            "rules.toml:6: key 'routes' [[routes]] #2: key 'receiver' 'opps' is no receiver's name "
            "(known: ops)",
        ),
        (
            '[[receivers]]\nname = "am"\ntype = "alertmanager"\nurl = "http://h:9093"\n\n'
            '[[routes]]\nreceiver = "am"\n',
            "[[routes]] #1: key 'receiver' 'am' is an alertmanager receiver: "
            "it gets every alert without a route",
        ),
    ],
)
def test_refusals_name_file_line_table_and_key(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


def test_password_file_must_exist_and_goes_with_a_username(tmp_path):
    head = '[[receivers]]\nname = "m"\ntype = "email"\nsmtp_host = "h"\nfrom = "a@b"\nto = "c@d"\n'
    missing = tmp_path / "nope"
    assert f"key 'password_file' '{missing}': no such file" in refusal(
        tmp_path, head + f'username = "u"\npassword_file = "{missing}"\n'
    )
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    assert "key 'password_file' is set without 'username'" in refusal(
        tmp_path, head + f'password_file = "{secret}"\n'
    )
    (mail,) = load(tmp_path, head + f'username = "u"\npassword_file = "{secret}"\n').receivers
    assert (mail.to, mail.username, mail.password()) == (("c@d",), "u", "s3cret")
