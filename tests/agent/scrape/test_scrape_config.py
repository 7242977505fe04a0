"""[[scrape]] tables through the real config parser: good ones load with their defaults, bad ones
name the file, line, table and key."""

from __future__ import annotations

import pytest

from ferry.agent.config import AgentConfig
from ferry.agent.reload import split
from ferry.agent.scrape.config import ScrapeTarget
from ferry.runtime.config import ConfigError, ConfigSource

GOOD = """\
[[scrape]]
job = "app"
url = "http://127.0.0.1:8000/metrics"
interval = "5s"
labels = { env = "prod", team = "web" }

[[scrape]]
job = "node"
url = "https://user:secret@[::1]/metrics"

[[scrape]]
job = "app"
url = "http://127.0.0.1:8001/metrics"
interval = "2s"
"""


def load(tmp_path, text: str) -> AgentConfig:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return ConfigSource(AgentConfig, str(path), {}).load()


def test_targets_load_with_defaults(tmp_path):
    app, node, app2 = load(tmp_path, GOOD).scrape
    assert app == ScrapeTarget(
        "app", "http://127.0.0.1:8000/metrics", 5.0, 5.0, (("env", "prod"), ("team", "web"))
    )
    assert (node.interval, node.timeout, node.labels) == (15.0, 10.0, ())
    assert node.instance == "[::1]:443"  # the scheme's port; never the url's credentials
    assert app.instance == "127.0.0.1:8000"
    assert (app2.interval, app2.timeout) == (2.0, 2.0)  # the timeout is at most the interval


def test_no_scrape_tables_means_no_targets(tmp_path):
    assert load(tmp_path, 'interval = "10s"\n').scrape == []


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('url = "http://a:1/m"\n', "[[scrape]] #1: key 'job' None is required"),
        ('job = "a b"\nurl = "http://a:1/m"\n', "[[scrape]] #1: key 'job' 'a b' is required and must match"),
        ('job = "j"\n', "[[scrape]] #1: key 'url' is required"),
        ('job = "j"\nurl = "ftp://a/m"\n', "key 'url' 'ftp://a/m' must start with http:// or https://"),
        ('job = "j"\nurl = "http:///m"\n', "key 'url' 'http:///m' has no host"),
        ('job = "j"\nurl = "http://a:99999/m"\n', "key 'url' 'http://a:99999/m' is not a url"),
        ('job = "j"\nurl = "http://a/m"\ninterval = "often"\n', "key 'interval': 'often' is not a duration"),
        (
            'job = "j"\nurl = "http://a/m"\ninterval = "5s"\ntimeout = "6s"\n',
            "key 'timeout' 6s must not exceed the interval 5s",
        ),
        ('job = "j"\nurl = "http://a/m"\nport = 1\n', "unknown key(s) port (known: interval, job,"),
        ('job = "j"\nurl = "http://a/m"\nlabels = "env"\n', "key 'labels' must be a table of strings"),
        ('job = "j"\nurl = "http://a/m"\nlabels = { job = "x" }\n', "'job' is set by the agent"),
        ('job = "j"\nurl = "http://a/m"\nlabels = { "a-b" = "x" }\n', "label 'a-b' must match"),
        ('job = "j"\nurl = "http://a/m"\nlabels = { n = 1 }\n', "value of 'n' is 1, not a string"),
        (
            f'job = "j"\nurl = "http://a/m"\nlabels = {{ v = "{"x" * 300}" }}\n',
            "value of 'v' is 300 bytes > 256 allowed",
        ),
    ],
)
def test_bad_tables_name_file_line_and_key(tmp_path, table, expected):
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, "interval = '10s'\n\n[[scrape]]\n" + table)
    message = str(exc.value)
    assert expected in message
    assert message.startswith(f"{tmp_path / 'agent.toml'}:3: key 'scrape' [[scrape]] #1")


def test_one_job_cannot_scrape_an_instance_twice(tmp_path):
    text = (
        '[[scrape]]\njob = "j"\nurl = "http://127.0.0.1:80/a"\n\n'
        '[[scrape]]\njob = "j"\nurl = "http://127.0.0.1/b"\n'  # the same host:port
    )
    with pytest.raises(ConfigError, match=r"#2: job 'j' already scrapes instance 127.0.0.1:80"):
        load(tmp_path, text)
    other_job = text.replace('job = "j"\nurl = "http://127.0.0.1/b"', 'job = "k"\nurl = "http://127.0.0.1/b"')
    assert [t.job for t in load(tmp_path, other_job).scrape] == ["j", "k"]


def test_scrape_reloads_live(tmp_path):
    old = load(tmp_path, GOOD)
    new = load(tmp_path, GOOD.replace('interval = "5s"', 'interval = "7s"'))
    assert split(old, new) == (["scrape"], [])
    assert split(old, load(tmp_path, GOOD)) == ([], [])


def test_a_target_keeps_its_state_across_interval_changes_but_not_label_changes():
    base = ScrapeTarget("app", "http://127.0.0.1:8000/metrics", 5.0, 5.0, (("env", "prod"),))
    assert ScrapeTarget("app", base.url, 9.0, 1.0, base.labels).key == base.key
    # new labels are new series: histogram totals and validated series start afresh
    assert ScrapeTarget("app", base.url, 5.0, 5.0, (("env", "dev"),)).key != base.key
