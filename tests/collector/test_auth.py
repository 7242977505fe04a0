"""The auth file, the gate's identification and roles, rate limits, the audit bound, tokens."""

from __future__ import annotations

import logging
import subprocess
import sys

import grpc
import pytest

from ferry.collector.auth.audit import Audit
from ferry.collector.auth.gate import Gate, Refusal, role_of
from ferry.collector.auth.principals import Principal, Principals, Rate, token_hash
from ferry.collector.auth.ratelimit import Limiter
from ferry.collector.auth.tokens import new_token, principal_table
from ferry.collector.config import CollectorConfig, is_loopback
from ferry.runtime.config import ConfigError


def write(tmp_path, text: str) -> str:
    path = tmp_path / "auth.toml"
    path.write_text(text)
    return str(path)


SENSORS = (
    '[[principals]]\nname = "sensors"\ncert_subject = "sensor-*"\nroles = ["ingest"]\nagent_ids = ["*"]\n'
    'hosts = ["*"]\n'
)


def table(
    name: str, token: str, roles: str = '["ingest"]', extra: str = 'agent_ids = ["web-*"]\nhosts = ["*"]'
) -> str:
    digest = token_hash(token).hex()
    return f'[[principals]]\nname = "{name}"\ntoken_sha256 = "{digest}"\nroles = {roles}\n{extra}\n'


def test_principals_load_and_find_by_token_and_certificate(tmp_path):
    text = (
        "points_per_second = 100\nburst_seconds = 2\n"
        + table("web", "t-web")
        + table("ops", "t-ops", '["query", "admin"]', "frames_per_second = 5")
        + SENSORS
    )
    principals = Principals.load(write(tmp_path, text))
    web, ops, sensors = principals.all
    assert principals.by_token("t-web") is web and principals.by_token("t-ops") is ops
    assert principals.by_token("t-nope") is None
    assert principals.by_cert(["sensor-7", "x"]) is sensors and principals.by_cert(["web-1"]) is None
    assert web.rate == Rate(100.0, 0.0, 2.0) and ops.rate == Rate(100.0, 5.0, 2.0)
    assert web.may_host("anything") and web.hosts == ("*",)
    assert web.may("ingest") and not web.may("query")
    assert ops.may("query") and ops.may("ingest")  # admin covers every method
    assert web.may_write("web-12") and not web.may_write("db-1")


def test_a_list_of_token_hashes_lets_both_in_while_rotating(tmp_path):
    old, new = token_hash("old").hex(), token_hash("new").hex()
    principals = Principals.load(
        write(tmp_path, f'[[principals]]\nname = "a"\ntoken_sha256 = ["{old}", "{new}"]\nroles = ["query"]\n')
    )
    assert principals.by_token("old") is principals.by_token("new") is principals.all[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no [[principals]]: nothing could call the collector"),
        ('[[principals]]\nname = "a"\nroles = ["query"]\n', "needs token_sha256 or cert_subject"),
        (table("a", "x", '["root"]'), "root given; roles are any of ingest, query, admin"),
        (table("a", "x", extra=""), "has the ingest role: agent_ids is required"),
        (table("a", "x", extra='agent_ids = ["*"]'), "has the ingest role: hosts is required"),
        (table("a", "x") + table("a", "y"), "principal 'a' is named twice"),
        (table("a", "x") + table("b", "x"), "principal 'b' has the token hash of principal 'a'"),
        (
            '[[principals]]\nname = "a"\ntoken_sha256 = "secret"\nroles = ["query"]\n',
            "is not a SHA-256 in hex",
        ),
        (table("a b", "x"), "must match"),
        (table("a", "x") + "colour = 1\n", "unknown key(s) colour"),
        ("frames_per_second = -1\n" + table("a", "x"), "is not a number >= 0"),
        ("principals = 3\n", "expected [[principals]] tables"),
    ],
)
def test_bad_auth_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError) as exc:
        Principals.load(write(tmp_path, text))
    assert message in str(exc.value)
    assert str(tmp_path / "auth.toml") in str(exc.value)


def test_a_secret_in_place_of_its_hash_is_not_echoed(tmp_path):
    text = '[[principals]]\nname = "a"\ntoken_sha256 = "ferry_supersecrettokenvalue"\nroles = ["query"]\n'
    with pytest.raises(ConfigError) as exc:
        Principals.load(write(tmp_path, text))
    assert "supersecrettokenvalue" not in str(exc.value)


class Context:
    def __init__(self, metadata=(), names=()):
        self._metadata = tuple(metadata)
        self._auth = {"x509_common_name": [n.encode() for n in names[:1]]} if names else {}
        if len(names) > 1:
            self._auth["x509_subject_alternative_name"] = [n.encode() for n in names[1:]]

    def invocation_metadata(self):
        return self._metadata

    def auth_context(self):
        return self._auth

    def peer(self):
        return "ipv4:127.0.0.1:5000"


@pytest.fixture
def gate(tmp_path) -> Gate:
    text = table("web", "t-web") + table("ops", "t-ops", '["query"]', "")
    text += (
        '[[principals]]\nname = "sensors"\ncert_subject = "sensor-*"\nroles = ["ingest"]\nagent_ids = ["*"]\n'
        'hosts = ["*"]\n'
    )
    return Gate(Principals.load(write(tmp_path, text)))


@pytest.mark.parametrize(
    ("metadata", "names", "reason"),
    [
        ((), (), "no_credentials"),
        ((("authorization", "Basic abc"),), (), "bad_header"),
        ((("authorization", "Bearer "),), (), "bad_header"),
        ((("authorization", "Bearer t-web"), ("authorization", "Bearer t-web")), (), "bad_header"),
        ((("authorization", "Bearer t-wrong"),), ("sensor-1",), "unknown_token"),  # a token decides
        ((), ("web-1",), "unknown_certificate"),
    ],
)
def test_refusals_say_why_and_never_echo_the_token(gate, metadata, names, reason):
    found = gate.admit(Context(metadata, names), "/ferry.v1.Ingest/Stream", "ingest")
    assert isinstance(found, Refusal) and found.reason == reason
    assert found.code == grpc.StatusCode.UNAUTHENTICATED
    assert "t-wrong" not in found.message and "t-web" not in found.message


def test_roles_and_agent_ids(gate):
    ops = gate.admit(Context([("authorization", "Bearer t-ops")]), "/ferry.v1.Ingest/Push", "ingest")
    assert isinstance(ops, Refusal) and ops.code == grpc.StatusCode.PERMISSION_DENIED
    assert ops.message == (
        "principal 'ops' may not call /ferry.v1.Ingest/Push: it needs the ingest role (it has query)"
    )
    web = gate.admit(Context([("authorization", "bearer t-web")]), "/ferry.v1.Ingest/Push", "ingest")
    assert isinstance(web, Principal) and web.name == "web"
    assert gate.frame_refusal(web, "web-3", 10, "peer") is None
    denied = gate.frame_refusal(web, "db-1", 10, "peer")
    assert denied.code == grpc.StatusCode.PERMISSION_DENIED and denied.reason == "agent_id"
    sensor = gate.admit(Context(names=("x", "sensor-9")), "/ferry.v1.Ingest/Push", "ingest")
    assert isinstance(sensor, Principal) and sensor.name == "sensors"


def test_methods_and_their_roles():
    assert role_of("/grpc.health.v1.Health/Check") is None
    assert role_of("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert role_of("/ferry.v1.Ingest/Stream") == "ingest"
    assert role_of("/ferry.v1.Query/QueryRange") == "query"
    assert role_of("/ferry.v1.Alerts/Silence") == "admin"  # a service not listed needs admin
    # the Alerts service: reads need query, writes admin
    for read in ("ListAlerts", "History", "ListSilences"):
        assert role_of(f"/ferry.v1.Alerts/{read}") == "query", read
    for write in ("Ack", "AddSilence", "ExpireSilence"):
        assert role_of(f"/ferry.v1.Alerts/{write}") == "admin", write
    assert role_of("/ferry.v1.Alerts/ListAlertsAndMore") == "admin"  # whole names only


def test_without_an_auth_file_everyone_may_do_everything():
    found = Gate(None).admit(Context(), "/ferry.v1.Query/QueryRange", "query")
    assert isinstance(found, Principal) and found.name == "anonymous" and found.may_write("anything")


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_buckets_for_points_and_frames():
    clock = Clock()
    limiter = Limiter(clock)
    rate = Rate(points_per_s=100, frames_per_s=2, burst_s=1)
    assert limiter.admit("a", rate, 60) == 0
    assert limiter.admit("a", rate, 60) == pytest.approx(0.2)  # 40 left of 100, 60 needed
    clock.now += 0.2
    assert limiter.admit("a", rate, 60) == 0
    # frames: 2 of 2, one taken, 0.4 back in 0.2 s, one taken: 0.4 left, 0.6 short at 2/s
    assert limiter.admit("a", rate, 1) == pytest.approx(0.3)
    assert limiter.admit("b", rate, 60) == 0  # another principal has its own buckets
    assert limiter.admit("c", Rate(), 10**9) == 0  # no limits


def test_a_frame_larger_than_a_burst_passes_alone_then_waits():
    clock = Clock()
    limiter = Limiter(clock)
    rate = Rate(points_per_s=10, burst_s=1)
    assert limiter.admit("a", rate, 50) == 0  # a full bucket admits it, 40 points in debt
    assert limiter.admit("a", rate, 5) == pytest.approx(4.5)
    clock.now += 4.5
    assert limiter.admit("a", rate, 5) == 0


def test_the_audit_trail_is_bounded_and_says_how_many_it_left_out(caplog):
    clock = Clock()
    audit = Audit(max_per_s=3, clock=clock)
    with caplog.at_level(logging.INFO, logger="ferry.collector.audit"):
        for _ in range(10):
            audit.record("refused", reason="unknown_token")
        clock.now += 1
        audit.record("refused", reason="unknown_token")
        for _ in range(5):  # a flood that ends: flush() says what it left unwritten
            audit.record("refused", reason="unknown_token")
        audit.record("auth_reloaded", principals=3)  # never held back
        audit.flush()
        audit.flush()  # nothing more to say
    records = [r for r in caplog.records if r.name == "ferry.collector.audit"]
    assert [r.audit["event"] for r in records] == ["refused"] * 6 + ["auth_reloaded", "not_logged"]
    assert records[3].audit["not_logged_before"] == 7
    assert records[-1].audit["count"] == 3


def test_token_new_prints_a_table_that_lets_the_token_in(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "ferry.collector.main", "token", "new", "web", "--roles", "ingest",
         "--agent-ids", "web-*", "--out", str(tmp_path / "web.token")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = (tmp_path / "web.token").read_text().strip()
    assert token.startswith("ferry_") and token not in out.stdout
    assert (tmp_path / "web.token").stat().st_mode & 0o777 == 0o600
    principals = Principals.load(write(tmp_path, out.stdout))
    assert principals.by_token(token).agent_ids == ("web-*",)
    printed = subprocess.run(
        [sys.executable, "-m", "ferry.collector.main", "token", "new", "ops", "--roles", "query"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    shown = next(line for line in printed if line.startswith("ferry_"))
    rest = [line for line in printed if line != shown]  # the table to paste, shown once with it
    assert Principals.load(write(tmp_path, "\n".join(rest))).by_token(shown).name == "ops"
    bad = subprocess.run(
        [sys.executable, "-m", "ferry.collector.main", "token", "new", "x", "--roles", "root"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and "roles are any of ingest, query, admin" in bad.stderr


def test_tokens_are_random_and_long():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 48 for t in tokens)
    assert "agent_ids" not in principal_table("q", "t", ["query"], ["*"])


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:4770", True),
        ("127.3.4.5:1", True),
        ("[::1]:4770", True),
        ("localhost:4770", True),
        ("unix:/run/ferry.sock", True),
        ("0.0.0.0:4770", False),
        ("[::]:4770", False),
        ("10.0.0.5:4770", False),
        ("collector.example.com:4770", False),
    ],
)
def test_loopback_addresses(address, loopback):
    assert is_loopback(address) is loopback


def test_non_loopback_listen_needs_tls_and_auth_or_insecure():
    cfg = CollectorConfig(listen="0.0.0.0:4770", tls_cert="c", tls_key="k")
    with pytest.raises(ConfigError) as exc:
        cfg.check()
    assert "serving it needs --auth, or --insecure" in str(exc.value)
    CollectorConfig(listen="0.0.0.0:4770", tls_cert="c", tls_key="k", auth="a").check()
    CollectorConfig(listen="0.0.0.0:4770", insecure=True).check()
    with pytest.raises(ConfigError, match=r"tls_client_ca \(mTLS\) needs TLS"):
        CollectorConfig(tls_client_ca="ca").check()
