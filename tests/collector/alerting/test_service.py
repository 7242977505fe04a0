"""The Alerts service on a real grpc.aio server behind the real auth gate, answering from a small
AlertBook over AlertStore on the embedded store: what each method answers, the roles each
needs, the caller recorded as who acked or silenced, and the statuses of every refusal."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest

from ferry import transport
from ferry.collector.alerting import service
from ferry.collector.alerting.model import fingerprint
from ferry.collector.auth.gate import Gate
from ferry.collector.auth.principals import Principals, token_hash
from ferry.v1 import alerts_pb2, alerts_pb2_grpc
from tests.collector.alerting.book import DB1, NOW, WEB1, Book, seeded


def principals_file(tmp_path) -> str:
    text = "".join(
        f'[[principals]]\nname = "{name}"\ntoken_sha256 = "{token_hash(token).hex()}"\nroles = {roles}\n'
        for name, token, roles in (("reader", "t-read", '["query"]'), ("ops", "t-ops", '["admin"]'))
    )
    path = tmp_path / "auth.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def alerts(store):
    return seeded(store)


def call(book, tmp_path, calls):
    """Run `calls(stubs)` (an async function given {principal: AlertsStub}) against a server with
    the gate in front of the Alerts service on `book`."""
    gate = Gate(Principals.load(principals_file(tmp_path)))

    async def main():
        server = transport.server(interceptors=[gate.interceptor()])
        svc = service.add_to_server(book, server, who=lambda: gate.current().name, clock=lambda: NOW)
        port = transport.bind(server, "127.0.0.1:0")
        await server.start()
        channel = transport.aio_channel(f"127.0.0.1:{port}")
        try:
            stubs = {
                who: Stub(alerts_pb2_grpc.AlertsStub(channel), token)
                for who, token in (("reader", "t-read"), ("ops", "t-ops"), ("nobody", "t-nope"))
            }
            return await calls(stubs)
        finally:
            await channel.close()
            await server.stop(None)
            svc.close()

    return asyncio.run(main())


class Stub:
    """An AlertsStub whose every call carries a principal's bearer token."""

    def __init__(self, stub, token: str):
        self.stub, self.metadata = stub, (("authorization", f"Bearer {token}"),)

    def __getattr__(self, method: str):
        return lambda request: getattr(self.stub, method)(request, metadata=self.metadata, timeout=10)


async def refused(pending) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pending
    return caught.value.code(), caught.value.details()


def test_list_alerts_by_state_with_the_rules_health(alerts, tmp_path):
    async def calls(s):
        every = await s["reader"].ListAlerts(alerts_pb2.ListAlertsRequest())
        firing = await s["reader"].ListAlerts(alerts_pb2.ListAlertsRequest(state="firing"))
        bad = await refused(s["reader"].ListAlerts(alerts_pb2.ListAlertsRequest(state="burning")))
        return every, firing, bad

    every, firing, bad = call(Book(alerts), tmp_path, calls)
    got = {dict(a.labels)["host"]: a for a in every.alerts}
    assert set(got) == {"web-1", "web-2", "db-1"}
    web1 = got["web-1"]
    assert (web1.id, web1.rule, web1.state, web1.severity) == (
        fingerprint(WEB1),
        "HighCPU",
        "firing",
        "warning",
    )
    assert (web1.has_value, web1.value, web1.active_since_ms, web1.fired_at_ms) == (
        True, 0.95, NOW - 300_000, NOW - 240_000,
    )  # fmt: skip
    assert dict(web1.annotations) == {"s": "x"} and web1.resolved_at_ms == 0
    db1 = got["db-1"]
    assert (db1.state, db1.has_value, db1.resolved_at_ms) == ("resolved", False, NOW - 100_000)
    assert [dict(a.labels)["host"] for a in firing.alerts] == ["web-1"]
    assert [(r.name, r.health, r.message) for r in every.rules] == [
        ("Broken", "error", "query failed: no such metric"), ("HighCPU", "ok", ""),
    ]  # fmt: skip
    assert bad == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "state 'burning' is not one of all, pending, firing, resolved",
    )


def test_ack_is_the_callers_and_needs_admin(alerts, tmp_path):
    web1 = fingerprint(WEB1)

    async def calls(s):
        denied = await refused(s["reader"].Ack(alerts_pb2.AckRequest(id=web1, note="mine")))
        unknown = await refused(s["nobody"].ListAlerts(alerts_pb2.ListAlertsRequest()))
        acked = await s["ops"].Ack(alerts_pb2.AckRequest(id=web1, note="looking into it"))
        missing = await refused(s["ops"].Ack(alerts_pb2.AckRequest(id="0123456789abcdef")))
        resolved = await refused(s["ops"].Ack(alerts_pb2.AckRequest(id=fingerprint(DB1))))
        too_long = await refused(s["ops"].Ack(alerts_pb2.AckRequest(id=web1, note="x" * 5000)))
        listed = await s["reader"].ListAlerts(alerts_pb2.ListAlertsRequest(state="firing"))
        return denied, unknown, acked, missing, resolved, too_long, listed

    denied, unknown, acked, missing, resolved, too_long, listed = call(Book(alerts), tmp_path, calls)
    assert denied[0] == grpc.StatusCode.PERMISSION_DENIED and "needs the admin role" in denied[1]
    assert unknown[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (acked.alert.acked_by, acked.alert.acked_at_ms, acked.alert.ack_note) == (
        "ops",
        NOW,
        "looking into it",
    )
    assert missing == (grpc.StatusCode.NOT_FOUND, "no pending or firing alert '0123456789abcdef'")
    assert resolved[0] == grpc.StatusCode.NOT_FOUND
    assert too_long == (grpc.StatusCode.INVALID_ARGUMENT, "note of 5000 characters is longer than 4096")
    (shown,) = listed.alerts
    assert (shown.acked_by, shown.ack_note) == ("ops", "looking into it")
    assert alerts.acks() == {web1: ("ops", NOW, "looking into it")}


def test_history_newest_first_by_state_and_bounded(alerts, tmp_path):
    async def calls(s):
        every = await s["reader"].History(alerts_pb2.HistoryRequest())  # since: a day before now
        firing = await s["reader"].History(alerts_pb2.HistoryRequest(state="firing", limit=1))
        recent = await s["reader"].History(alerts_pb2.HistoryRequest(since_ms=NOW - 100_000))
        big = await refused(s["reader"].History(alerts_pb2.HistoryRequest(limit=20_000)))
        bad = await refused(s["reader"].History(alerts_pb2.HistoryRequest(state="on")))
        return every, firing, recent, big, bad

    every, firing, recent, big, bad = call(Book(alerts), tmp_path, calls)
    assert [t.time_ms for t in every.transitions] == [
        NOW - d for d in (60_000, 100_000, 200_000, 240_000, 300_000)
    ]
    first = every.transitions[0]
    assert (first.state, first.previous, first.value, first.threshold, dict(first.labels)["host"]) == (
        "pending", "inactive", 0.85, "> 0.8", "web-2",
    )  # fmt: skip
    assert not every.transitions[1].has_value  # the resolved one
    assert [(t.state, dict(t.labels)["host"]) for t in firing.transitions] == [
        ("firing", "db-1")
    ]  # the newest
    assert len(recent.transitions) == 2
    assert big == (grpc.StatusCode.RESOURCE_EXHAUSTED, "limit 20000 is more than 10000 transitions")
    assert bad[0] == grpc.StatusCode.INVALID_ARGUMENT and "state 'on'" in bad[1]


def test_silences_added_listed_and_expired(alerts, tmp_path):
    async def calls(s):
        add = alerts_pb2.AddSilenceRequest(
            matchers='{alertname="HighCPU",host=~"web-\\\\d+"}', duration_ms=3_600_000, comment="deploy"
        )
        denied = await refused(s["reader"].AddSilence(add))
        added = await s["ops"].AddSilence(add)
        bad = await refused(
            s["ops"].AddSilence(alerts_pb2.AddSilenceRequest(matchers="{host=}", duration_ms=1))
        )
        empty = await refused(s["ops"].AddSilence(alerts_pb2.AddSilenceRequest(matchers="{}", duration_ms=1)))
        forever = await refused(
            s["ops"].AddSilence(alerts_pb2.AddSilenceRequest(matchers="HighCPU", duration_ms=0))
        )
        listed = await s["reader"].ListSilences(alerts_pb2.ListSilencesRequest())
        expired = await s["ops"].ExpireSilence(alerts_pb2.ExpireSilenceRequest(id=added.silence.id))
        after = await s["reader"].ListSilences(alerts_pb2.ListSilencesRequest())
        every = await s["reader"].ListSilences(alerts_pb2.ListSilencesRequest(include_expired=True))
        missing = await refused(s["ops"].ExpireSilence(alerts_pb2.ExpireSilenceRequest(id="nope")))
        return denied, added, bad, empty, forever, listed, expired, after, every, missing

    denied, added, bad, empty, forever, listed, expired, after, every, missing = call(
        Book(alerts), tmp_path, calls
    )
    assert denied[0] == grpc.StatusCode.PERMISSION_DENIED
    s = added.silence
    assert len(s.id) == 16 and s.matchers == '{alertname="HighCPU",host=~"web-\\\\d+"}'
    assert (s.starts_ms, s.ends_ms, s.comment, s.created_by) == (NOW, NOW + 3_600_000, "deploy", "ops")
    assert bad[0] == grpc.StatusCode.INVALID_ARGUMENT and "matchers '{host=}'" in bad[1]
    assert empty[0] == grpc.StatusCode.INVALID_ARGUMENT and "at least one matcher" in empty[1]
    assert forever == (
        grpc.StatusCode.INVALID_ARGUMENT, "duration_ms 0 must be > 0 (how long the silence lasts)",
    )  # fmt: skip
    assert list(listed.silences) == [s]
    assert (expired.silence.id, expired.silence.ends_ms) == (s.id, NOW)
    assert list(after.silences) == [] and [x.id for x in every.silences] == [s.id]
    assert missing == (grpc.StatusCode.NOT_FOUND, "no silence 'nope'")


def test_a_silence_longer_than_ten_years_is_invalid_not_a_store_failure(alerts, tmp_path):
    def add(**kw):
        return alerts_pb2.AddSilenceRequest(matchers='{host="a"}', **kw)

    async def calls(s):
        return [
            await refused(s["ops"].AddSilence(add(duration_ms=2**63 - 1))),
            await refused(s["ops"].AddSilence(add(duration_ms=service.MAX_SILENCE_MS + 1))),
            await refused(s["ops"].AddSilence(add(duration_ms=1, starts_ms=2**63 - 2))),
            await refused(s["ops"].AddSilence(add(duration_ms=1, starts_ms=-1))),
            await s["ops"].AddSilence(
                add(duration_ms=service.MAX_SILENCE_MS, starts_ms=NOW + service.MAX_SILENCE_MS)
            ),
        ]

    huge, over, late, early, longest = call(Book(alerts), tmp_path, calls)
    assert service.MAX_SILENCE_MS == 3650 * 86_400_000
    assert huge == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"duration_ms {2**63 - 1} is more than {service.MAX_SILENCE_MS} (10 years, the limit)",
    )
    assert over[0] == grpc.StatusCode.INVALID_ARGUMENT and "(10 years, the limit)" in over[1]
    assert late[0] == grpc.StatusCode.INVALID_ARGUMENT and "at most 10 years from now" in late[1]
    assert early[0] == grpc.StatusCode.INVALID_ARGUMENT and "starts_ms -1 must be > 0" in early[1]
    assert longest.silence.ends_ms == NOW + 2 * service.MAX_SILENCE_MS


def test_without_rules_every_method_says_so(tmp_path):
    requests = {
        "ListAlerts": alerts_pb2.ListAlertsRequest(),
        "Ack": alerts_pb2.AckRequest(id="x"),
        "History": alerts_pb2.HistoryRequest(),
        "AddSilence": alerts_pb2.AddSilenceRequest(matchers="A", duration_ms=1),
        "ListSilences": alerts_pb2.ListSilencesRequest(),
        "ExpireSilence": alerts_pb2.ExpireSilenceRequest(id="x"),
    }

    async def calls(s):
        return [await refused(getattr(s["ops"], m)(r)) for m, r in requests.items()]

    answers = call(None, tmp_path, calls)
    assert answers == [(grpc.StatusCode.FAILED_PRECONDITION, service.NO_RULES)] * len(requests)
    assert service.NO_RULES == "this collector evaluates no rules (started without --rules)"


def test_a_failing_store_is_unavailable(alerts, tmp_path):
    alerts.store.client.command(f"DROP TABLE {alerts.db}.silences")

    async def calls(s):
        return await refused(s["reader"].ListSilences(alerts_pb2.ListSilencesRequest()))

    code, message = call(Book(alerts), tmp_path, calls)
    assert code == grpc.StatusCode.UNAVAILABLE and message.startswith("alert store: ")
