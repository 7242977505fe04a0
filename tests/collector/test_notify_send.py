"""Sending, against real servers on loopback: a local HTTP server for the webhook and Slack
receivers (retries, backoff, timeouts), and aiosmtpd for e-mail (AUTH, STARTTLS). The Notifier runs as the
collector runs it (`run` on an event loop of its own thread, `update` called from another)."""

from __future__ import annotations

import email
import email.policy
import itertools
import ssl
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from prometheus_client import REGISTRY

from ferry.collector.alerting.model import Alert, fingerprint, labels_of
from ferry.collector.alerting.notify import Notifier, Receiver, Route
from ferry.collector.alerting.notify.channel import backoff
from ferry.collector.devcerts import DevCA
from ferry.collector.devrun import free_port
from tests.collector.notify_sink import Sink, running

FAST = {"backoff_s": (0.05, 0.2), "tick_s": 0.02}


def alert(host: str = "web-1", severity: str = "critical", ends_at_ms: int = 0) -> Alert:
    labels = {"alertname": "HighCPU", "severity": severity, "host": host}
    return Alert(
        fingerprint(labels_of(labels)), labels, {"summary": f"CPU on {host} at 0.93"}, 0.93, "> 0.8",
        1_764_600_000_000, ends_at_ms,
    )  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


def outcomes(receiver: str) -> dict[str, float]:
    return {
        o: REGISTRY.get_sample_value(
            "ferry_collector_notifications_total", {"receiver": receiver, "outcome": o}
        )
        or 0.0
        for o in ("sent", "retried", "failed", "dropped")
    }


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def route(receiver: str, **kw) -> Route:
    return Route(receiver, group_by=("alertname",), group_wait=0.0, group_interval=0.2, **kw)


def test_a_webhook_gets_the_group_as_json_firing_then_resolved():
    with Sink() as sink:
        hook = Receiver("hook-json", "webhook", url=sink.url + "/hook")
        with running(Notifier([hook], [route("hook-json")], **FAST)) as n:
            a = alert()
            n.update([a], [], now_ms())
            (fired,) = sink.wait(1)
            n.update([alert(ends_at_ms=1_764_600_060_000)], [], now_ms())
            _, cleared = sink.wait(2)
    assert fired.path == "/hook" and fired.headers["Content-Type"] == "application/json"
    assert fired.body == {
        "status": "firing",
        "receiver": "hook-json",
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": {"alertname": "HighCPU", "severity": "critical", "host": "web-1"},
        "alerts": [
            {
                "id": a.id,
                "status": "firing",
                "labels": {"alertname": "HighCPU", "severity": "critical", "host": "web-1"},
                "annotations": {"summary": "CPU on web-1 at 0.93"},
                "value": 0.93,
                "threshold": "> 0.8",
                "startsAt": "2025-12-01T14:40:00.000Z",
                "endsAt": None,
            }
        ],
    }
    assert cleared.body["status"] == "resolved"
    assert [(x["status"], x["endsAt"]) for x in cleared.body["alerts"]] == [
        ("resolved", "2025-12-01T14:41:00.000Z")
    ]


def test_a_slack_receiver_posts_an_incoming_webhook_message_coloured_by_severity():
    with Sink() as sink:
        slack = Receiver("slack-shape", "slack", url=sink.url + "/services/T0/B0/x")
        with running(Notifier([slack], [route("slack-shape")], **FAST)) as n:
            n.update(
                [alert("db-1", "critical"), alert("web-2", "warning"), alert("web-3", "info")], [], now_ms()
            )
            (message,) = sink.wait(1)
            still = [alert("web-2", "warning"), alert("web-3", "info")]
            n.update([alert("db-1", "critical", ends_at_ms=1_764_600_060_000), *still], [], now_ms())
            _, resolution = sink.wait(2)
    body = message.body
    assert body["text"] == "[FIRING:3] HighCPU"
    assert [(x["color"], x["title"]) for x in body["attachments"]] == [
        ("#d0021b", "[FIRING] HighCPU: CPU on db-1 at 0.93"),
        ("#f5a623", "[FIRING] HighCPU: CPU on web-2 at 0.93"),
        ("#4a90e2", "[FIRING] HighCPU: CPU on web-3 at 0.93"),
    ]
    first = body["attachments"][0]
    assert first["text"].splitlines() == [
        "value 0.93 (threshold > 0.8)",
        "labels: alertname=HighCPU, host=db-1, severity=critical",
        "summary: CPU on db-1 at 0.93",
    ]
    assert first["ts"] == 1_764_600_000
    assert first["fallback"] == "[FIRING] HighCPU: CPU on db-1 at 0.93 (value 0.93 (threshold > 0.8))"
    # web-2 and web-3 still fire (no repeat yet): the resolution comes with them, in green
    colours = [(x["color"], x["title"]) for x in resolution.body["attachments"]]
    assert colours[2] == ("#2eb67d", "[RESOLVED] HighCPU: CPU on db-1 at 0.93") and len(colours) == 3
    assert resolution.body["text"] == "[FIRING:2] HighCPU"


def test_a_500_is_retried_with_backoff_and_counted():
    with Sink(statuses=[500, 500]) as sink:
        hook = Receiver("hook-retry", "webhook", url=sink.url, max_retries=5)
        before = outcomes("hook-retry")
        with running(Notifier([hook], [route("hook-retry")], **FAST)) as n:
            n.update([alert()], [], now_ms())
            requests = sink.wait(3)
            time.sleep(0.5)  # nothing more comes: the third attempt was answered 200
            assert len(sink.requests) == 3
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05, gaps  # backoff 0.05 then 0.1 s, less at most half
    assert all(r.body == requests[0].body for r in requests)
    assert delta(outcomes("hook-retry"), before) == {"retried": 2, "sent": 1}


def test_retries_are_bounded_and_a_4xx_is_not_retried():
    with Sink(statuses=[503] * 10) as failing, Sink(statuses=[400]) as refusing:
        receivers = [
            Receiver("hook-down", "webhook", url=failing.url, max_retries=2),
            Receiver("hook-400", "webhook", url=refusing.url, max_retries=5),
        ]
        routes = [route("hook-down", match=(("host", "a"),)), route("hook-400")]
        before = outcomes("hook-down"), outcomes("hook-400")
        with running(Notifier(receivers, routes, **FAST)) as n:
            n.update([alert("a"), alert("b")], [], now_ms())
            failing.wait(3)
            refusing.wait(1)
            time.sleep(0.8)
            assert (len(failing.requests), len(refusing.requests)) == (3, 1)
    assert delta(outcomes("hook-down"), before[0]) == {"retried": 2, "failed": 1}
    assert delta(outcomes("hook-400"), before[1]) == {"failed": 1}


def test_backoff_doubles_is_bounded_and_jittered():
    assert [backoff(i, 0.5, 4.0, lambda: 1.0) for i in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert [backoff(i, 0.5, 4.0, lambda: 0.0) for i in (1, 2, 5)] == [0.25, 0.5, 2.0]


def test_a_receiver_that_times_out_delays_neither_another_receiver_nor_update():
    with Sink(delay_s=3.0) as slow, Sink() as fast:
        receivers = [
            Receiver("hook-slow", "webhook", url=slow.url, timeout=1.0, max_retries=1),
            Receiver("hook-fast", "webhook", url=fast.url),
        ]
        routes = [route("hook-slow", match=(("host", "slow"),)), route("hook-fast")]
        before = outcomes("hook-slow")
        with running(Notifier(receivers, routes, **FAST)) as n:
            n.update([alert("slow")], [], now_ms())
            slow.wait(1)  # the slow receiver is now holding its first attempt
            started = time.monotonic()
            n.update([alert("slow"), alert("fast")], [], now_ms())
            assert time.monotonic() - started < 0.25  # update does no I/O (a send here takes 1 s)
            fast.wait(1, timeout=2.0)
            assert time.monotonic() - started < 0.8  # not behind the slow one's 1 s timeout
            slow.wait(2, timeout=5.0)  # its retry after the timeout
            deadline = time.monotonic() + 5
            while outcomes("hook-slow")["failed"] == before["failed"] and time.monotonic() < deadline:
                time.sleep(0.05)
    assert delta(outcomes("hook-slow"), before) == {"retried": 1, "failed": 1}
    assert outcomes("hook-fast")["sent"] >= 1


class Mailbox:
    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        self.arrived.set()
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def test_email_goes_to_a_real_smtp_server_with_auth(smtp_server, tmp_path):
    mailbox, port = smtp_server
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    mail = Receiver(
        "mail", "email", smtp_host="127.0.0.1", smtp_port=port, sender="ferry@example.com",
        to=("ops@example.com", "oncall@example.com"), username="ferry", password_file=str(secret),
    )  # fmt: skip
    with running(Notifier([mail], [route("mail")], **FAST)) as n:
        n.update([alert("web-1"), alert("web-2", "warning")], [], now_ms())
        assert mailbox.arrived.wait(10), "no message reached the SMTP server"
    (envelope,) = mailbox.envelopes
    assert mailbox.logins == [(b"ferry", b"s3cret")]
    assert envelope.mail_from == "ferry@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert msg["Subject"] == "[FIRING:2] HighCPU"
    assert (msg["From"], msg["To"]) == ("ferry@example.com", "ops@example.com, oncall@example.com")
    assert msg.get_content().splitlines() == [
        "Receiver: mail",
        "Group: alertname=HighCPU",
        "",
        "Firing (2):",
        "- HighCPU: value 0.93 (threshold > 0.8)",
        "  labels: alertname=HighCPU, host=web-1, severity=critical",
        "  summary: CPU on web-1 at 0.93",
        "  started: 2025-12-01T14:40:00.000Z",
        "- HighCPU: value 0.93 (threshold > 0.8)",
        "  labels: alertname=HighCPU, host=web-2, severity=warning",
        "  summary: CPU on web-2 at 0.93",
        "  started: 2025-12-01T14:40:00.000Z",
    ]


def test_a_refused_smtp_login_is_not_retried(smtp_server, tmp_path):
    mailbox, port = smtp_server
    secret = tmp_path / "password"
    secret.write_text("wrong")
    mail = Receiver(
        "mail-badauth", "email", smtp_host="127.0.0.1", smtp_port=port, sender="ferry@example.com",
        to=("ops@example.com",), username="ferry", password_file=str(secret),
    )  # fmt: skip
    before = outcomes("mail-badauth")
    with running(Notifier([mail], [route("mail-badauth")], **FAST)) as n:
        n.update([alert()], [], now_ms())
        deadline = time.monotonic() + 5
        while outcomes("mail-badauth")["failed"] == before["failed"] and time.monotonic() < deadline:
            time.sleep(0.05)
    assert delta(outcomes("mail-badauth"), before) == {"failed": 1}  # no "retried": one attempt
    # which smtplib makes with each mechanism the server offers (PLAIN, then LOGIN)
    assert mailbox.logins == [(b"ferry", b"wrong")] * 2 and mailbox.envelopes == []


def test_email_with_starttls_verifies_the_server_and_logs_in_over_tls(tmp_path, monkeypatch):
    ca = DevCA.create("notify test CA")
    cert, key = ca.issue("smtp", ["localhost", "127.0.0.1"]).write(tmp_path / "smtp")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.write_ca(tmp_path / "ca.pem")))  # the "system" CAs
    mailbox, port = Mailbox(), free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate,
        tls_context=server_tls, require_starttls=True, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    secret = tmp_path / "password"
    secret.write_text("s3cret")
    mail = Receiver(
        "mail-tls", "email", smtp_host="127.0.0.1", smtp_port=port, sender="ferry@example.com",
        to=("ops@example.com",), username="ferry", password_file=str(secret), starttls=True,
    )  # fmt: skip
    try:
        with running(Notifier([mail], [route("mail-tls")], **FAST)) as n:
            n.update([alert()], [], now_ms())
            assert mailbox.arrived.wait(10), "no message reached the SMTP server"
    finally:
        controller.stop()
    (envelope,) = mailbox.envelopes
    assert mailbox.logins == [(b"ferry", b"s3cret")] and envelope.rcpt_tos == ["ops@example.com"]
    assert email.message_from_bytes(envelope.content)["Subject"] == "[FIRING:1] HighCPU"
