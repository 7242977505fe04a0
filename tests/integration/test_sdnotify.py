"""systemd notify protocol, with a real datagram socket standing in for systemd."""

from __future__ import annotations

import contextlib
import socket
import time

import pytest

from tests.integration.procs import start_agent, start_collector, wait_for


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def as_systemd_would(monkeypatch, sock: socket.socket) -> None:
    """Environment for the next process started: a Type=notify unit with WatchdogSec=0.4."""
    monkeypatch.setenv("NOTIFY_SOCKET", sock.getsockname())
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)


def received(sock: socket.socket, seconds: float, until) -> list[str]:
    """The messages on `sock` within `seconds` from now, ending early once `until(messages)`."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline and not until(out):
        with contextlib.suppress(TimeoutError):
            out.append(sock.recv(4096).decode())
    return out


@pytest.mark.parametrize("which", ["agent", "collector"])
def test_ready_watchdog_stopping(tmp_path, notify_socket, monkeypatch, which):
    if which == "collector":
        as_systemd_would(monkeypatch, notify_socket)
    collector = start_collector(tmp_path)
    proc = collector
    if which == "agent":
        as_systemd_would(monkeypatch, notify_socket)
        proc = start_agent(tmp_path, collector.addr, "--interval", "1s")
    try:
        messages = received(notify_socket, 1.5, lambda got: got[1:].count("WATCHDOG=1") >= 4)
        assert messages[0].startswith("READY=1\nSTATUS=")
        assert messages[1:].count("WATCHDOG=1") >= 4
        proc.stop()
        assert "STOPPING=1" in received(notify_socket, 1.0, lambda got: "STOPPING=1" in got)
    finally:
        proc.stop()
        collector.stop()


def test_sighup_does_not_kill_either_process(tmp_path):
    import signal

    collector = start_collector(tmp_path)
    agent = start_agent(tmp_path, collector.addr, "--interval", "1s")
    try:
        for proc in (collector, agent):
            proc.popen.send_signal(signal.SIGHUP)
        # SIGHUP's default action ends a process at once: having logged, both have handled it
        wait_for(
            lambda: "SIGHUP: no TLS files, auth file or rules file to reload" in collector.output(),
            what="the collector's SIGHUP log",
        )
        # the agent reloads (test_reload)
        wait_for(lambda: "reload: applied nothing (no change)" in agent.output(), what="the agent's reload")
        assert collector.popen.poll() is None and agent.popen.poll() is None
    finally:
        agent.stop()
        collector.stop()
