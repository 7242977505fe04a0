"""Who may reach a real agent's Local service: the unix socket's mode and group, the loopback
rule for its TCP listener, and the local token (apps with and without it, a token rotated by
SIGHUP, the Node example), through a real agent to a real collector."""

from __future__ import annotations

import grp
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
import pytest

from ferry import transport
from ferry.collector.devrun import agent_command
from ferry.collector.query.client import query_range
from ferry.series import GAUGE
from ferry.v1 import local_pb2, local_pb2_grpc
from tests.conftest import free_port
from tests.integration.procs import collector_and_agent, diagnose, ferry_cli, start_agent, wait_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_APP = ROOT / "tests" / "apps" / "sample_app.py"
NODE_EXAMPLE = ROOT / "docs" / "examples" / "node" / "send.js"
TOKEN = "itest-token-7f3a9c"


@pytest.fixture
def sock_dir():
    d = Path(tempfile.mkdtemp(prefix="ferry-"))  # unix socket paths must stay under 108 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


def last_values(addr: str, metric: str, label: str, agg: str = "last") -> dict[str, float]:
    resp = query_range(addr, metric, agg=agg, window_ms=600_000, by=[label], timeout=10)
    return {s.labels.get(label, ""): s.value[-1] for s in resp.series if s.value}


def send(target: str, token: str | None, *records: local_pb2.MetricRecord) -> str:
    """One Send; 'OK <accepted>' or 'CODE: details'."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    with transport.channel(target) as channel:
        try:
            resp = local_pb2_grpc.LocalStub(channel).Send(
                local_pb2.Records(metrics=list(records)), metadata=metadata, timeout=10
            )
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return f"OK {resp.accepted}"


def gauge(name: str, value: float, **labels: str) -> local_pb2.MetricRecord:
    return local_pb2.MetricRecord(name=name, kind=GAUGE, value=value, labels=labels)


def other_group() -> grp.struct_group:
    """A group the socket can be given that differs from the one it would get anyway, when this
    user may use one (a supplementary group, or any group for root); else the primary group."""
    primary = os.getgid()
    candidates = [g for g in os.getgroups() if g != primary]
    if not candidates and os.geteuid() == 0:
        candidates = [g.gr_gid for g in grp.getgrall() if g.gr_gid != primary]
    return grp.getgrgid(candidates[0] if candidates else primary)


SEND_ONE = """
import sys, grpc
from ferry import transport
from ferry.v1 import local_pb2, local_pb2_grpc
with transport.channel(sys.argv[1]) as channel:
    try:
        local_pb2_grpc.LocalStub(channel).Send(local_pb2.Records(), timeout=5)
        print("OK")
    except grpc.RpcError as exc:
        print(exc.code().name, exc.details())
"""
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup"]


def _nobody_can_run_python() -> bool:
    """Root with setpriv, and this checkout and interpreter readable by the user nobody."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    probe = [*NOBODY, "--clear-groups", sys.executable, "-c", "import ferry.v1.local_pb2"]
    return subprocess.run(probe, capture_output=True, cwd=ROOT, timeout=60).returncode == 0


def send_as_nobody(target: str, *groups: int) -> str:
    """One empty Send from a process of the user nobody (in `groups` only): 'OK' or the error."""
    who = list(NOBODY)
    who += [f"--groups={','.join(map(str, groups))}"] if groups else ["--clear-groups"]
    done = subprocess.run(
        [*who, sys.executable, "-c", SEND_ONE, target], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    return done.stdout.strip() or done.stderr


def test_the_socket_is_0660_by_default_and_takes_a_configured_mode_and_group(tmp_path, sock_dir):
    default_sock, configured_sock = sock_dir / "a.sock", sock_dir / "b.sock"
    group = other_group()
    flags = ("--collectors", "", "--local-socket", str(default_sock))
    with collector_and_agent(tmp_path, *flags) as (c, a), diagnose(c, a):
        st = default_sock.stat()
        assert (stat.S_ISSOCK(st.st_mode), stat.S_IMODE(st.st_mode)) == (True, 0o660)
        assert "local service on unix:" in a.output() and "(mode 0660)" in a.output()
        agent = start_agent(
            tmp_path,
            c.addr,
            "--collectors",
            "",
            "--batch-max-age",
            "1s",
            "--local-socket",
            str(configured_sock),
            "--local-socket-mode",
            "0620",  # connecting needs write permission: the owner and the group may
            "--local-socket-group",
            group.gr_name,
            agent_id="it-agent-2",
        )
        try:
            st = configured_sock.stat()
            assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o620, group.gr_gid)
            assert f"(mode 0620, group {group.gr_name})" in agent.output()
            # the owner (this user) sends through it
            assert send(f"unix:{configured_sock}", None, gauge("app.mode", 6.5, via="0620")) == "OK 1"
            assert wait_for(lambda: last_values(c.addr, "app.mode", "via")) == {"0620": 6.5}
            if (
                _nobody_can_run_python()
            ):  # another user: refused by both sockets, unless in the socket's group
                sock_dir.chmod(0o755)
                for sock in (default_sock, configured_sock):
                    refused = send_as_nobody(f"unix:{sock}")
                    assert refused.startswith("UNAVAILABLE") and "Permission denied" in refused, refused
                assert send_as_nobody(f"unix:{configured_sock}", group.gr_gid) == "OK"
        finally:
            agent.stop()
    assert not configured_sock.exists() and not default_sock.exists()


def test_a_non_loopback_listener_needs_insecure(tmp_path):
    port = free_port()
    args = agent_command(
        "127.0.0.1:1", f"127.0.0.1:{free_port()}", "--collectors", "", "--spool", str(tmp_path)
    )
    for address in (f"0.0.0.0:{port}", f"[::]:{port}"):
        done = subprocess.run([*args, "--local-listen", address], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"ferry-agent: configuration error: local_listen {address!r} is not a loopback address: any host "
            "that reaches it could send records as this agent (use 127.0.0.1, [::1] or the unix socket; "
            "set insecure = true, --insecure, to allow it)\n"
        )
    with (
        collector_and_agent(
            tmp_path,
            "--collectors",
            "",
            "--batch-max-age",
            "1s",
            "--local-listen",
            f"0.0.0.0:{port}",
            "--insecure",
        ) as (collector, agent),
        diagnose(collector, agent),
    ):
        assert (
            f"local service listens on 0.0.0.0:{port}, not on loopback (insecure = true): any host "
            "that reaches it can send records as this agent" in agent.output()
        )
        done = ferry_cli("send", "app.insecure", "41.25", "--agent", f"127.0.0.1:{port}")
        assert (done.returncode, done.stdout) == (0, "accepted 1\n"), done.stderr
        got = wait_for(lambda: last_values(collector.addr, "app.insecure", "host"))
        assert list(got.values()) == [41.25]


@pytest.fixture
def token_stack(tmp_path, sock_dir):
    token_file = tmp_path / "local.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    socket_path = sock_dir / "agent.sock"
    flags = ("--collectors", "", "--batch-max-age", "1s", "--local-socket", str(socket_path))
    token_flags = (*flags, "--local-token-file", str(token_file))
    with collector_and_agent(tmp_path, *token_flags) as (collector, agent), diagnose(collector, agent):
        yield collector, agent, f"unix:{socket_path}", token_file


def test_without_the_token_or_with_a_wrong_one_nothing_is_stored(token_stack):
    collector, agent, target, _token_file = token_stack
    missing = send(target, None, gauge("app.refused", 1.0, how="missing"))
    assert missing == (
        "UNAUTHENTICATED: this agent's Local service needs a token: send the metadata "
        "'authorization: Bearer <token>' (the token is in the agent's local_token_file; Python "
        "clients read FERRY_LOCAL_TOKEN)"
    )
    wrong = send(target, TOKEN + "x", gauge("app.refused", 2.0, how="wrong"))
    assert wrong == "UNAUTHENTICATED: the token sent is not this agent's local token"
    assert send(target, "", gauge("app.refused", 3.0, how="malformed")).startswith("UNAUTHENTICATED: the ")
    with transport.channel(target) as channel, pytest.raises(grpc.RpcError) as err:
        requests = iter([local_pb2.Records(metrics=[gauge("app.refused", 4.0, how="stream")])] * 3)
        local_pb2_grpc.LocalStub(channel).SendStream(requests, timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # the right token: stored, exactly
    right = send(target, TOKEN, gauge("app.allowed", 12.75, how="token"))
    assert right == "OK 1"
    assert wait_for(lambda: last_values(collector.addr, "app.allowed", "how")) == {"token": 12.75}
    assert last_values(collector.addr, "app.refused", "how") == {}
    scraped = agent.scrape()
    failures = {k: v for k, v in scraped.items() if k.startswith("ferry_agent_local_auth_failures_total")}
    assert failures == {
        'ferry_agent_local_auth_failures_total{reason="missing"}': 2.0,  # the Send and the stream
        'ferry_agent_local_auth_failures_total{reason="wrong"}': 1.0,
        'ferry_agent_local_auth_failures_total{reason="malformed"}': 1.0,
    }
    assert scraped["ferry_agent_local_records_total"] == 1
    assert TOKEN not in agent.output()  # never logged


def test_ferry_send_presents_the_local_token(token_stack):
    collector, _agent, target, token_file = token_stack
    refused = ferry_cli("send", "app.cli", "1.5", "--agent", target)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    done = ferry_cli("send", "app.cli", "2.5", "--agent", target, "--local-token-file", str(token_file))
    assert (done.returncode, done.stdout) == (0, "accepted 1\n"), done.stderr
    by_env = ferry_cli("send", "app.cli2", "3.5", "--agent", target, env={"FERRY_LOCAL_TOKEN": TOKEN})
    assert (by_env.returncode, by_env.stdout) == (0, "accepted 1\n"), by_env.stderr
    assert wait_for(lambda: last_values(collector.addr, "app.cli", "host")).popitem()[1] == 2.5
    assert wait_for(lambda: last_values(collector.addr, "app.cli2", "host")).popitem()[1] == 3.5


def test_an_app_with_the_token_in_its_environment_is_stored_exactly(token_stack):
    collector, _agent, target, _token_file = token_stack
    env = {**os.environ, "FERRY_LOCAL_TOKEN": TOKEN}
    done = subprocess.run(
        [sys.executable, str(SAMPLE_APP), target, "burst"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    stats = json.loads(done.stdout.splitlines()[-1])
    assert stats["flushed"] and stats["dropped"] == 0, stats
    sums = wait_for(
        lambda: (
            (r := last_values(collector.addr, "app.requests", "route", "sum"))
            and sum(r.values()) == 100_000
            and r
        ),
        60,
        what="100k increments",
    )
    assert sums == {f"/r{i}": 10_000.0 for i in range(10)}

    env["FERRY_LOCAL_TOKEN"] = "not-" + TOKEN  # the same app with a wrong token: nothing delivered
    # (its flush and its close can only time out, after the first refused Send: 5 s each, not 20 + 5)
    done = subprocess.run(
        [sys.executable, str(SAMPLE_APP), target, "burst", "5"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    stats = json.loads(done.stdout.splitlines()[-1])
    assert not stats["flushed"] and stats["sent"] == 0, stats
    assert stats["last_error"] == "UNAUTHENTICATED: the token sent is not this agent's local token"
    assert "ferry client: the agent refused the token" in done.stderr


def test_sighup_reads_a_rotated_token_without_rebinding(token_stack):
    collector, agent, target, token_file = token_stack
    assert send(target, TOKEN, gauge("app.rotated", 1.0, phase="before")) == "OK 1"
    token_file.write_text("rotated-" + TOKEN)
    agent.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: f"reload: local token read from {token_file}" in agent.output(), what="the reload")
    assert send(target, TOKEN, gauge("app.rotated", 2.0, phase="old")).startswith("UNAUTHENTICATED")
    assert send(target, "rotated-" + TOKEN, gauge("app.rotated", 3.0, phase="after")) == "OK 1"
    token_file.write_text("")  # a broken file: the reload is refused and the token in use stays
    agent.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "holds no token" in agent.output(), what="the refused reload")
    assert send(target, "rotated-" + TOKEN, gauge("app.rotated", 4.0, phase="kept")) == "OK 1"
    got = wait_for(lambda: len(r := last_values(collector.addr, "app.rotated", "phase")) == 3 and r)
    assert got == {"before": 1.0, "after": 3.0, "kept": 4.0}
    assert "needs a restart" not in agent.output() and "restart the agent" not in agent.output()


def _node_ready() -> bool:
    if shutil.which("node") is None:
        return False
    probe = subprocess.run(
        ["node", "-e", "require.resolve('@grpc/grpc-js'); require.resolve('@grpc/proto-loader')"],
        cwd=NODE_EXAMPLE.parent,
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.mark.skipif(
    not _node_ready(), reason="node with @grpc/grpc-js (npm install in docs/examples/node, or NODE_PATH)"
)
def test_the_node_example_sends_the_token_from_its_environment(token_stack):
    collector, _agent, target, _token_file = token_stack

    def node(token: str | None, *flags: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "FERRY_LOCAL_TOKEN"}
        if token is not None:
            env["FERRY_LOCAL_TOKEN"] = token
        return subprocess.run(
            ["node", str(NODE_EXAMPLE), target, *flags], capture_output=True, text=True, env=env, timeout=60
        )

    refused = node(None)
    assert refused.returncode == 1 and refused.stderr.startswith("UNAUTHENTICATED: "), refused.stderr
    assert node("wrong").stderr == "UNAUTHENTICATED: the token sent is not this agent's local token\n"
    done = node(TOKEN)
    assert (done.returncode, done.stdout) == (0, "accepted 6\n"), done.stderr
    streamed = node(TOKEN, "--stream")
    assert (streamed.returncode, streamed.stdout) == (0, "accepted 6\n"), streamed.stderr
    assert node(None, "--stream").stderr.startswith("UNAUTHENTICATED: ")
    assert wait_for(lambda: last_values(collector.addr, "app.queue.depth", "queue")) == {"orders": 17.0}
    sums = wait_for(
        lambda: (
            (r := last_values(collector.addr, "app.http.requests", "route", "sum")) == {"/pay": 100.0} and r
        )
    )
    assert sums == {"/pay": 100.0}  # 50 per run, the two runs with the token only
