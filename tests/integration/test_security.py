"""TLS, mTLS, principals, roles and rate limits, with real processes and real TLS handshakes.

One collector serves TLS with client certificates required and an auth file; the certificates
are made here (ferry.collector.devcerts). Agents are real `ferry-agent` processes; the refused
cases are also tried with direct calls, to see the exact status each side gets.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from ferry import transport
from ferry.collector.auth.principals import token_hash
from ferry.collector.auth.tokens import new_token, principal_table
from ferry.collector.devcerts import DevCA
from ferry.collector.query.client import total
from ferry.transport import ClientTLS, Endpoint
from ferry.v1 import ingest_pb2_grpc, query_pb2, query_pb2_grpc
from tests import framegen
from tests.conftest import free_port
from tests.integration.procs import (
    diagnose,
    ferry_cli,
    start_agent,
    start_collector,
    synthetic_stored,
    wait_for,
)


class Pki:
    """A CA, the collector's certificate, client certificates and tokens, in one folder."""

    def __init__(self, root: Path):
        self.root = root
        self.ca = DevCA.create("test CA")
        self.ca.write_ca(root / "ca.pem")
        self.ca.issue("collector", ["localhost", "127.0.0.1"]).write(root / "collector")
        for name in ("web-1", "db-1", "ops", "slow-1", "sensor-1"):
            self.ca.issue(name, client=True).write(root / name)
        other = DevCA.create("another CA")
        other.issue("web-1", client=True).write(root / "other-web-1")
        self.ca.issue("web-1", client=True, days=1, starts_days_ago=3).write(root / "expired-web-1")
        self.tokens = {name: new_token() for name in ("web", "ops", "slow", "pinned")}
        for name, token in self.tokens.items():
            (root / f"{name}.token").write_text(token + "\n")
        tables = [
            principal_table("web", self.tokens["web"], ["ingest"], ["web-*"], ["*"]),
            principal_table("ops", self.tokens["ops"], ["query"], []),
            principal_table("slow", self.tokens["slow"], ["ingest"], ["slow-*"], ["*"]),
            '[[principals]]\nname = "sensors"\ncert_subject = "sensor-*"\nroles = ["ingest"]\n'
            'agent_ids = ["sensor-*"]\nhosts = ["*"]\n',
            principal_table("pinned", self.tokens["pinned"], ["ingest"], ["pin-*"], ["pin-host"]),
        ]
        tables[2] = tables[2].replace(
            'agent_ids = ["slow-*"]', 'agent_ids = ["slow-*"]\npoints_per_second = 1'
        )
        (root / "auth.toml").write_text("burst_seconds = 3\n\n" + "\n".join(tables))

    def path(self, name: str) -> str:
        return str(self.root / name)

    def tls(self, client: str | None = "ops", ca: str = "ca.pem", server_name: str = "") -> ClientTLS:
        if client is None:
            return ClientTLS.from_files(self.path(ca), server_name=server_name)
        return ClientTLS.from_files(
            self.path(ca), self.path(f"{client}.pem"), self.path(f"{client}.key"), server_name
        )

    def endpoint(self, addr: str, client: str | None = "ops", token: str = "ops", **kw) -> Endpoint:
        return Endpoint(addr, tls=self.tls(client, **kw), token=self.tokens.get(token, token))

    def agent_flags(self, client: str, token: str | None) -> list[str]:
        flags = ["--tls-ca", self.path("ca.pem"), "--tls-cert", self.path(f"{client}.pem")]
        flags += ["--tls-key", self.path(f"{client}.key")]
        return flags + (["--token-file", self.path(f"{token}.token")] if token else [])

    def collector_flags(self) -> list[str]:
        return [
            *("--tls-cert", self.path("collector.pem"), "--tls-key", self.path("collector.key")),
            *("--tls-client-ca", self.path("ca.pem"), "--auth", self.path("auth.toml")),
        ]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def collector(tmp_path_factory, pki):
    proc = start_collector(tmp_path_factory.mktemp("collector"), *pki.collector_flags(), tls=pki.tls())
    yield proc
    proc.stop()


def push(endpoint: Endpoint, agent_id: str, seq: int, epoch: int = 7) -> grpc.RpcError | None:
    """One frame of 3 series x 5 points by Push; the error it got (None: stored or duplicate)."""
    frame = framegen.frame(framegen.gauge_batch("sec.test"), seq, agent_id=agent_id, epoch=epoch)
    with transport.channel(endpoint) as channel:
        try:
            ingest_pb2_grpc.IngestStub(channel).Push(frame, timeout=10)
        except grpc.RpcError as exc:
            return exc
    return None


def agents(pki: Pki, addr: str) -> set[str]:
    with transport.channel(pki.endpoint(addr)) as channel:
        resp = query_pb2_grpc.QueryStub(channel).ListAgents(query_pb2.ListAgentsRequest(), timeout=10)
    return {a.agent_id for a in resp.agents}


def acked(agent) -> float:
    return agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)


def test_good_agent_streams_and_bad_credentials_are_refused(tmp_path, pki, collector):
    good = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                       *pki.agent_flags("web-1", "web"), agent_id="web-1")  # fmt: skip
    wrong_token = None
    try:
        with diagnose(collector, good):
            wait_for(lambda: acked(good) >= 2, what="the good agent's frames acked")
            assert "web-1" in agents(pki, collector.addr)
            # handshake refusals: no certificate, another CA's, an expired one
            for client, ca in ((None, "ca.pem"), ("other-web-1", "ca.pem"), ("expired-web-1", "ca.pem")):
                err = push(Endpoint(collector.addr, tls=pki.tls(client, ca=ca), token=pki.tokens["web"]),
                           "web-9", 1)  # fmt: skip
                assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE, (client, err)
            # a valid certificate with a wrong token; no token and a certificate no principal names
            err = push(pki.endpoint(collector.addr, "web-1", new_token()), "web-9", 1)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert err.details() == "the bearer token is not known"
            err = push(Endpoint(collector.addr, tls=pki.tls("web-1")), "web-9", 1)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "no principal has the client certificate's names (web-1)" in err.details()
            # a real agent with a wrong token: refused, logs it as an error, keeps its frames
            (tmp_path / "wrong.token").write_text(new_token())
            flags = [*pki.agent_flags("web-1", None), "--token-file", str(tmp_path / "wrong.token")]
            wrong_token = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                                      *flags, agent_id="web-2")  # fmt: skip
            wait_for(lambda: "UNAUTHENTICATED the bearer token is not known" in wrong_token.output(),
                     what="the refusal in the agent's log")  # fmt: skip
            wait_for(lambda: wrong_token.scrape()["ferry_agent_spool_frames"] >= 2, what="frames kept")
            before = acked(good)
            wait_for(lambda: acked(good) >= before + 2, what="the good agent still acked")
            assert "web-2" not in agents(pki, collector.addr)
            assert "web-9" not in agents(pki, collector.addr)
            failures = collector.scrape()
            assert failures['ferry_collector_auth_failures_total{reason="unknown_token"}'] >= 2
            assert failures['ferry_collector_auth_failures_total{reason="unknown_certificate"}'] == 1
            audit = [line for line in collector.output().splitlines() if '"ferry.collector.audit"' in line]
            assert any('"reason":"unknown_token"' in line for line in audit)
            assert not any(t in collector.output() for t in pki.tokens.values())  # never logged
    finally:
        good.stop()
        if wrong_token is not None:
            wrong_token.stop()


def test_a_refused_stream_gets_its_status_not_internal(pki, collector):
    """A stream refused by the gate while its client is still writing what an agent has in
    flight (30 frames, within its send window): the client is told UNAUTHENTICATED. Refused
    with those frames unread, grpc.aio's client ended 4 of 10 such calls INTERNAL ("Internal
    error from Core") and the agent could not tell a bad token from a glitch."""
    batch = framegen.gauge_batch("sec.flood", n_series=300, points=1)
    frames = [framegen.frame(batch, seq, agent_id="web-8") for seq in range(1, 31)]

    async def refused_with() -> str:
        async with transport.aio_channel(pki.endpoint(collector.addr, "web-1", new_token())) as channel:
            call = ingest_pb2_grpc.IngestStub(channel).Stream()

            async def write() -> None:
                for frame in frames:
                    await call.write(frame)

            writer = asyncio.create_task(write())
            try:
                async for _ack in call:
                    pass
            except grpc.aio.AioRpcError as exc:
                return exc.code().name
            finally:
                writer.cancel()
            return "OK"

    async def ten() -> list[str]:
        return [await refused_with() for _ in range(10)]

    assert asyncio.run(ten()) == ["UNAUTHENTICATED"] * 10


def test_plaintext_and_wrong_server_name_are_refused(pki, collector):
    with transport.channel(Endpoint(collector.addr)) as channel, pytest.raises(grpc.RpcError) as plain:
        query_pb2_grpc.QueryStub(channel).ListAgents(query_pb2.ListAgentsRequest(), timeout=5)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    err = push(pki.endpoint(collector.addr, "web-1", "web", server_name="collector.example.com"), "web-3", 1)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert "Hostname Verification Check failed" in err.details()
    # the server name it does carry, asked for explicitly, passes
    assert push(pki.endpoint(collector.addr, "web-1", "web", server_name="localhost"), "web-3", 1) is None
    assert "web-3" in agents(pki, collector.addr)


def test_roles_and_agent_ids(tmp_path, pki, collector):
    err = push(pki.endpoint(collector.addr, "web-1", "web"), "db-1", 1)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "principal 'web' may not write as agent 'db-1' (its agent_ids: web-*)"
    channel = transport.channel(pki.endpoint(collector.addr, "web-1", "web"))
    with channel, pytest.raises(grpc.RpcError) as query:
        query_pb2_grpc.QueryStub(channel).QueryRange(
            query_pb2.QueryRangeRequest(metric="sec.test", start_ms=0, end_ms=1000, step_ms=1000),
            timeout=5,
        )
    assert query.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert query.value.details() == (
        "principal 'web' may not call /ferry.v1.Query/QueryRange: it needs the query role (it has ingest)"
    )
    err = push(pki.endpoint(collector.addr, "ops", "ops"), "web-4", 1)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "principal 'ops' may not call /ferry.v1.Ingest/Push: it needs the ingest role" in err.details()
    # a streaming agent as db-1 with web's token: refused, nothing stored, frames kept
    agent = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                        *pki.agent_flags("db-1", "web"), agent_id="db-1")  # fmt: skip
    try:
        wait_for(lambda: "PERMISSION_DENIED principal 'web' may not write as agent 'db-1'" in agent.output(),
                 what="the refusal in the agent's log")  # fmt: skip
        assert agent.scrape()["ferry_agent_spool_frames"] >= 1
    finally:
        agent.stop()
    assert not {"db-1", "web-4"} & agents(pki, collector.addr)
    # the CLI with the same refusal, as a user sees it
    env = {"FERRY_TLS_CA": pki.path("ca.pem"), "FERRY_TLS_CERT": pki.path("web-1.pem"),
           "FERRY_TLS_KEY": pki.path("web-1.key"), "FERRY_TOKEN_FILE": pki.path("web.token")}  # fmt: skip
    out = ferry_cli("agents", "--addr", collector.addr, env=env)
    assert out.returncode == 1
    assert "PERMISSION_DENIED: principal 'web' may not call /ferry.v1.Query/ListAgents" in out.stderr


def test_hosts_bound_what_a_principal_writes(pki, collector):
    """Every series, event and log of a frame is stored under its resource's host: a principal
    writes only the hosts its globs allow (the agent id alone would let it write another
    host's series)."""
    pinned = pki.endpoint(collector.addr, "web-1", "pinned")
    frame = framegen.frame(framegen.gauge_batch("sec.host"), 1, agent_id="pin-1", host="db-1")
    with transport.channel(pinned) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        with pytest.raises(grpc.RpcError) as denied:
            stub.Push(frame, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert (
            denied.value.details() == "principal 'pinned' may not write as host 'db-1' (its hosts: pin-host)"
        )
        ok = framegen.frame(framegen.gauge_batch("sec.host"), 2, agent_id="pin-1", host="pin-host")
        assert stub.Push(ok, timeout=10).seq == 2
        # on a stream: the refusal ends it with the status, after the frames before it are acked
        earlier = framegen.gauge_batch("sec.host", t0_ms=(int(time.time()) - 60) * 1000)
        frames = [
            framegen.frame(earlier, 3, agent_id="pin-1", host="pin-host"),
            framegen.frame(framegen.gauge_batch("sec.host"), 4, agent_id="pin-1", host="db-1"),
        ]
        call = stub.Stream(iter(frames), timeout=10)
        acks = []
        with pytest.raises(grpc.RpcError) as ended:
            for ack in call:
                acks.append(ack.seq)
        assert acks == [3]
        assert ended.value.code() == grpc.StatusCode.PERMISSION_DENIED
    hosts = {a.host for a in _listed_agents(pki, collector.addr) if a.agent_id == "pin-1"}
    assert hosts == {"pin-host"}
    assert collector.scrape()['ferry_collector_auth_failures_total{reason="host"}'] == 2


def _listed_agents(pki: Pki, addr: str):
    with transport.channel(pki.endpoint(addr)) as channel:
        return query_pb2_grpc.QueryStub(channel).ListAgents(query_pb2.ListAgentsRequest(), timeout=10).agents


def test_certificate_subject_identifies_a_principal(tmp_path, pki, collector):
    agent = start_agent(tmp_path, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                        *pki.agent_flags("sensor-1", None), agent_id="sensor-1")  # fmt: skip
    try:
        wait_for(lambda: acked(agent) >= 1, what="frames of the certificate-only agent acked")
    finally:
        agent.stop()
    assert "sensor-1" in agents(pki, collector.addr)


def test_rate_limit_per_principal(pki, collector):
    """slow: 1 point/s in bursts of 3 s, web: no limit; ten frames of 15 points back to back each.
    slow's full bucket lets its first frame through (a frame larger than a burst passes alone),
    which leaves it 12 points in debt: 15 s before the next, longer than the ten take."""
    slow, web = pki.endpoint(collector.addr, "slow-1", "slow"), pki.endpoint(collector.addr, "web-1", "web")
    refused, waits = 0, []
    with transport.channel(slow) as s_channel, transport.channel(web) as w_channel:
        s_stub, w_stub = ingest_pb2_grpc.IngestStub(s_channel), ingest_pb2_grpc.IngestStub(w_channel)
        t0 = (int(time.time()) - 200) * 1000
        for seq in range(1, 11):
            batch = framegen.gauge_batch("sec.rate", t0_ms=t0 + seq * 10_000)
            try:
                s_stub.Push(framegen.frame(batch, seq, agent_id="slow-1"), timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "principal 'slow' over its rate limit" in exc.details()
                refused += 1
                waits.append(int(dict(exc.trailing_metadata())["retry-after-ms"]))
            ack = w_stub.Push(framegen.frame(batch, seq, agent_id="web-rate"), timeout=10)
            assert ack.seq == seq  # the other principal is never slowed
    assert refused == 9
    assert all(0 < w <= 15_000 for w in waits), waits
    assert total(pki.endpoint(collector.addr), "sec.rate", "count") == 15 * (10 + 1)


def _served_serial(addr: str, pki: Pki) -> int:
    """The serial of the certificate a new TLS handshake with `addr` is given."""
    host, _, port = addr.rpartition(":")
    context = ssl.create_default_context(cafile=pki.path("ca.pem"))
    context.load_cert_chain(pki.path("ops.pem"), pki.path("ops.key"))
    context.check_hostname = False
    context.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as sock, context.wrap_socket(sock) as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def test_certificate_rotation_by_sighup(tmp_path, pki):
    """New handshakes get the new certificate; the agent's stream is never dropped and its
    points are stored exactly once. A broken file on reload keeps the old certificate."""
    workdir = tmp_path / "rot"
    workdir.mkdir()
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    first = pki.ca.issue("collector", ["localhost", "127.0.0.1"])
    first.write(cert_dir / "collector")
    flags = [f.replace(pki.path("collector"), str(cert_dir / "collector")) for f in pki.collector_flags()]
    collector = start_collector(workdir, *flags, tls=pki.tls())
    total_points = 6000  # 7.5 s of points: the two reloads take ~1 s from the first acks
    flags = [
        "--synthetic",
        f"800:{total_points}",
        "--batch-max-age",
        "200ms",
        *pki.agent_flags("web-1", "web"),
    ]
    agent = start_agent(workdir, collector.addr, *flags, agent_id="web-rot")
    try:
        with diagnose(collector, agent):
            assert _served_serial(collector.addr, pki) == first.cert.serial_number
            wait_for(lambda: acked(agent) >= 2, what="the agent streaming")
            second = pki.ca.issue("collector", ["localhost", "127.0.0.1"])
            second.write(cert_dir / "collector")
            collector.popen.send_signal(signal.SIGHUP)
            wait_for(lambda: "TLS reloaded" in collector.output(), what="the reload")
            assert _served_serial(collector.addr, pki) == second.cert.serial_number
            (cert_dir / "collector.pem").write_text("not a certificate")
            collector.popen.send_signal(signal.SIGHUP)
            wait_for(lambda: "TLS not reloaded, the old certificate stays" in collector.output(),
                     what="the refused reload")  # fmt: skip
            assert _served_serial(collector.addr, pki) == second.cert.serial_number
            wait_for(lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total_points,
                     timeout=60, what="all points made")  # fmt: skip
            ops = pki.endpoint(collector.addr)
            wait_for(lambda: synthetic_stored(ops)[0] >= total_points, timeout=60, what="all points stored")
            assert synthetic_stored(ops) == (total_points, total_points)  # count, sum of 1s: once each
            assert agent.scrape()["ferry_agent_reconnects_total"] == 0  # the stream was never dropped
    finally:
        agent.stop()
        collector.stop()


def test_auth_file_reload_by_sighup(tmp_path, pki):
    auth = tmp_path / "auth.toml"
    auth.write_text((pki.root / "auth.toml").read_text())
    flags = [f.replace(pki.path("auth.toml"), str(auth)) for f in pki.collector_flags()]
    collector = start_collector(tmp_path, *flags, tls=pki.tls())
    try:
        fresh = new_token()
        err = push(pki.endpoint(collector.addr, "web-1", fresh), "new-1", 1)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        auth.write_text(auth.read_text() + "\n" + principal_table("new", fresh, ["ingest"], ["new-*"], ["*"]))
        collector.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: "auth file reloaded: 6 principals" in collector.output(), what="the reload")
        assert push(pki.endpoint(collector.addr, "web-1", fresh), "new-1", 1) is None
        auth.write_text(auth.read_text() + '\n[[principals]]\nname = "broken"\nroles = ["superuser"]\n')
        collector.popen.send_signal(signal.SIGHUP)
        wait_for(
            lambda: "auth file not reloaded, the old principals stay" in collector.output(), what="refusal"
        )
        assert "roles are any of ingest, query, admin" in collector.output()
        assert push(pki.endpoint(collector.addr, "web-1", fresh), "new-1", 2) is None
    finally:
        collector.stop()


def _collector(*flags: str) -> list[str]:
    return [sys.executable, "-m", "ferry.collector.main", "--store", "chdb:///nonexistent", *flags]


def test_non_loopback_needs_tls_and_auth_or_insecure(tmp_path):
    port = free_port()
    out = subprocess.run(
        _collector("--listen", f"0.0.0.0:{port}"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"ferry-collector: configuration error: listen 0.0.0.0:{port} is not a loopback address: "
        "serving it needs TLS (--tls-cert, --tls-key) and --auth, or --insecure to serve it without "
        "(anyone who reaches the port could write as any agent and read everything, in plaintext)"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "insecure.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferry.collector.main", "--store", f"chdb://{tmp_path / 'store'}",
         "--listen", f"0.0.0.0:{port}", "--metrics-listen", "", "--insecure"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: "listening on 0.0.0.0" in (tmp_path / "insecure.log").read_text(), timeout=60,
                 what="the insecure collector serving")  # fmt: skip
        text = (tmp_path / "insecure.log").read_text()
        assert "--insecure: serving 0.0.0.0:" + str(port) + " with tls off and auth off" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_bad_credentials_files_stop_the_collector_with_exit_2(tmp_path, pki):
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    pair = "cannot be used together"
    cases = {
        ("--tls-cert", str(tmp_path / "bad.pem"), "--tls-key", pki.path("collector.key")): pair,
        ("--tls-cert", pki.path("collector.pem"), "--tls-key", pki.path("web-1.key")): pair,
        ("--tls-cert", str(tmp_path / "none.pem"), "--tls-key", pki.path("web-1.key")): "No such file",
        ("--tls-cert", pki.path("collector.pem"), "--tls-key", pki.path("collector.key"),
         "--auth", str(tmp_path / "missing.toml")): "no such config file",
        ("--auth", pki.path("auth.toml")): "auth needs TLS",
        ("--tls-cert", pki.path("collector.pem")): "tls_cert and tls_key go together",
    }  # fmt: skip
    for flags, message in cases.items():
        out = subprocess.run(_collector("--listen", "127.0.0.1:0", *flags), capture_output=True, text=True,
                             timeout=60)  # fmt: skip
        assert out.returncode == 2, (flags, out.stderr)
        assert message in out.stderr, (flags, out.stderr)


def test_token_rotation_on_both_sides(tmp_path, pki):
    """The principal takes the old and the new token; the agent is given the new one by SIGHUP
    (its stream stays up); the old hash is removed by SIGHUP on the collector, which ends the
    stream still using it at its next frame (UNAUTHENTICATED: a removed token stops working at
    once); the agent connects again with the new token, and every point is stored once."""
    old, new = new_token(), new_token()
    auth = tmp_path / "auth.toml"
    both = principal_table("web", old, ["ingest"], ["web-*"], ["*"]).replace(
        f'token_sha256 = "{token_hash(old).hex()}"',
        f'token_sha256 = ["{token_hash(old).hex()}", "{token_hash(new).hex()}"]',
    )
    ops = principal_table("ops", pki.tokens["ops"], ["query"], [])
    auth.write_text(both + ops)
    flags = [f.replace(pki.path("auth.toml"), str(auth)) for f in pki.collector_flags()]
    collector = start_collector(tmp_path, *flags, tls=pki.tls())
    token_file = tmp_path / "agent.token"
    token_file.write_text(old)
    total_points = 6000  # 10 s of points: both reloads and the refusal take ~1.5 s from the first acks
    agent_flags = [*pki.agent_flags("web-1", None), "--token-file", str(token_file)]
    agent = start_agent(tmp_path, collector.addr, "--synthetic", f"600:{total_points}",
                        "--batch-max-age", "200ms", *agent_flags, agent_id="web-tok")  # fmt: skip
    try:
        with diagnose(collector, agent):
            wait_for(lambda: acked(agent) >= 2, what="the agent streaming with the old token")
            token_file.write_text(new)
            agent.popen.send_signal(signal.SIGHUP)
            wait_for(lambda: "TLS files and token read again" in agent.output(), what="the agent's reload")
            assert agent.scrape()["ferry_agent_reconnects_total"] == 0  # its stream kept going
            auth.write_text(principal_table("web", new, ["ingest"], ["web-*"], ["*"]) + ops)
            collector.popen.send_signal(signal.SIGHUP)
            wait_for(lambda: "auth file reloaded" in collector.output(), what="the collector's reload")
            wait_for(lambda: "UNAUTHENTICATED the bearer token is not known" in agent.output(),
                     what="the old token's stream refused")  # fmt: skip
            wait_for(lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total_points,
                     timeout=60, what="all points made")  # fmt: skip
            ops_ep = pki.endpoint(collector.addr)
            wait_for(lambda: synthetic_stored(ops_ep)[0] >= total_points, timeout=60, what="all stored")
            assert synthetic_stored(ops_ep) == (total_points, total_points)
            assert agent.scrape()["ferry_agent_reconnects_total"] == 1  # once, then with the new token
            failures = collector.scrape()['ferry_collector_auth_failures_total{reason="unknown_token"}']
            assert failures == 1
    finally:
        agent.stop()
        collector.stop()
