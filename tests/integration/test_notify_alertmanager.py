"""A real Alertmanager (Debian package prometheus-alertmanager; .ci/run installs it) takes the
Notifier's alerts on /api/v2/alerts and delivers them to its own webhook receiver, a local HTTP
server of this test: the firing alert with its labels and annotations, then its resolution."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from ferry.collector.alerting.model import Alert, fingerprint, labels_of
from ferry.collector.alerting.notify import Notifier, Receiver
from ferry.collector.devrun import free_port
from tests.collector.notify_sink import Sink, running

NAMES = ("prometheus-alertmanager", "alertmanager")  # the Debian name, then upstream's
CONFIG = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}
        send_resolved: true
"""


def binary() -> str:
    for name in NAMES:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if found:
            return found
    pytest.skip(
        "SKIPPED: no Alertmanager binary (prometheus-alertmanager or alertmanager on PATH); "
        "install it with: apt-get install -y prometheus-alertmanager (.ci/run does)"
    )


def start_alertmanager(tmp_path: Path, hook_url: str) -> tuple[subprocess.Popen, str]:
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=hook_url))
    for _ in range(3):  # a port another process took meanwhile is chosen again
        address = f"127.0.0.1:{free_port()}"
        log = (tmp_path / "alertmanager.log").open("ab")
        proc = subprocess.Popen(
            [
                binary(),
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address={address}",
                "--cluster.listen-address=",  # no gossip: one Alertmanager, no cluster port
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://{address}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return proc, address
            except OSError:
                time.sleep(0.1)
        proc.kill()
        proc.wait()
    raise AssertionError(f"alertmanager did not start: {(tmp_path / 'alertmanager.log').read_text()[-800:]}")


@pytest.fixture
def alertmanager(tmp_path):
    with Sink() as hook:
        proc, address = start_alertmanager(tmp_path, hook.url + "/am")
        try:
            yield hook, address
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_alertmanager_delivers_the_notifiers_alert_firing_then_resolved(alertmanager):
    hook, address = alertmanager
    receiver = Receiver("am", "alertmanager", url=f"http://{address}", resend_interval=60.0)
    labels = {"alertname": "HighCPU", "severity": "warning", "host": "web-1"}
    starts = int(time.time() * 1000)
    firing = Alert(
        fingerprint(labels_of(labels)), labels, {"summary": "CPU on web-1 at 0.93"}, 0.93, "> 0.8", starts
    )
    with running(Notifier([receiver], [], tick_s=0.05)) as n:
        n.update([firing], [], starts)
        (fired,) = hook.wait(1, timeout=10)
        ended = int(time.time() * 1000)
        n.update([dataclasses.replace(firing, ends_at_ms=ended)], [], ended)
        _, cleared = hook.wait(2, timeout=10)
    assert fired.path == "/am"
    assert (fired.body["receiver"], fired.body["status"], fired.body["groupLabels"]) == (
        "hook", "firing", {"alertname": "HighCPU"},
    )  # fmt: skip
    (sent,) = fired.body["alerts"]
    assert (sent["status"], sent["labels"]) == ("firing", labels)
    assert sent["annotations"] == {"summary": "CPU on web-1 at 0.93"}
    (gone,) = cleared.body["alerts"]
    assert (cleared.body["status"], gone["status"], gone["labels"]) == ("resolved", "resolved", labels)
