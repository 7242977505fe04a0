"""The notifier's routing, grouping and timing, with its clock injected: `tick(now_ms)` is what
`run` calls every 0.2 s, and returns the notifications it queued."""

from __future__ import annotations

import dataclasses
import logging

from prometheus_client import REGISTRY

from ferry.collector.alerting.model import Alert, Matcher, Silence, fingerprint, labels_of
from ferry.collector.alerting.notify import Notification, Notifier, Receiver, Route
from ferry.collector.alerting.notify.channel import Channel

S = 1000  # ms
M = 60 * S
OPS = Receiver("ops", "webhook", url="http://127.0.0.1:9/ops")
PAGER = Receiver("pager", "webhook", url="http://127.0.0.1:9/pager")
AM = Receiver("am", "alertmanager", url="http://127.0.0.1:9", resend_interval=60.0)


def alert(host: str = "web-1", name: str = "HighCPU", severity: str = "warning", **kw) -> Alert:
    labels = {"alertname": name, "severity": severity, "host": host}
    return Alert(
        fingerprint(labels_of(labels)), labels, {"summary": f"CPU on {host}"}, 0.93, "> 0.8",
        kw.pop("starts_at_ms", 0), **kw,
    )  # fmt: skip


def resolved(a: Alert, at_ms: int) -> Alert:
    return dataclasses.replace(a, ends_at_ms=at_ms)


def route(receiver: str = "ops", **kw) -> Route:
    kw.setdefault("group_by", ("alertname",))
    kw.setdefault("group_wait", 30.0)
    kw.setdefault("group_interval", 300.0)
    kw.setdefault("repeat_interval", 3600.0)
    return Route(receiver, **kw)


def ticks(n: Notifier, start_ms: int, end_ms: int, step_ms: int = S) -> list[tuple[int, Notification]]:
    """Tick every second from start to end (inclusive): (time, notification) of each sent."""
    return [(t, x) for t in range(start_ms, end_ms + 1, step_ms) for x in n.tick(t)]


def ids(n: Notification) -> list[str]:
    return [f"{a.labels['host']}:{'resolved' if a.resolved else 'firing'}" for a in n.alerts]


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_first_matching_route_wins_and_a_route_without_match_catches_all():
    n = Notifier([OPS, PAGER], [route("pager", match=(("severity", "critical"),)), route("ops")])
    n.update([alert("a", severity="critical"), alert("b")], [], 0)
    sent = ticks(n, 0, 30 * S)
    assert [(t, x.receiver, ids(x)) for t, x in sent] == [
        (30 * S, "pager", ["a:firing"]),
        (30 * S, "ops", ["b:firing"]),
    ]


def test_an_alert_no_route_matches_is_not_sent_and_is_counted_and_logged_once(caplog):
    n = Notifier([PAGER], [route("pager", match=(("severity", "critical"),))])
    before = counter("ferry_collector_alerts_unrouted_total")
    with caplog.at_level(logging.WARNING, "ferry.collector.alerting.notify"):
        for t in range(0, 10 * M, 15 * S):
            n.update([alert("w", severity="warning")], [], t)
            assert n.tick(t) == []
    assert counter("ferry_collector_alerts_unrouted_total") - before == 1
    assert sum("matches no [[routes]] table" in r.getMessage() for r in caplog.records) == 1


def test_twenty_hosts_make_one_notification_by_alertname_and_twenty_by_host():
    hosts = [alert(f"web-{i:02d}") for i in range(20)]
    by_name = Notifier([OPS], [route(group_by=("alertname",))])
    by_name.update(hosts, [], 0)
    (sent,) = by_name.tick(30 * S)
    assert len(sent.alerts) == 20 and sent.group_labels == {"alertname": "HighCPU"}
    assert sent.common_labels == {"alertname": "HighCPU", "severity": "warning"}

    by_host = Notifier([OPS], [route(group_by=("host",))])
    by_host.update(hosts, [], 0)
    sent = by_host.tick(30 * S)
    assert sorted(x.group_labels["host"] for x in sent) == [f"web-{i:02d}" for i in range(20)]
    assert all(len(x.alerts) == 1 for x in sent)

    every = Notifier([OPS], [route(group_by=("...",))])
    every.update(hosts, [], 0)
    assert len(every.tick(30 * S)) == 20

    one = Notifier([OPS], [route(group_by=())])
    one.update([*hosts, alert("db", name="DiskFull")], [], 0)
    (sent,) = one.tick(30 * S)
    assert len(sent.alerts) == 21 and sent.group_labels == {}


def test_group_wait_then_group_interval_for_changes_then_repeat_interval():
    n = Notifier([OPS], [route(group_wait=30.0, group_interval=300.0, repeat_interval=3600.0)])
    a, b = alert("a"), alert("b")
    n.update([a], [], 0)
    sent = ticks(n, 0, 40 * S)
    assert [(t, ids(x)) for t, x in sent] == [(30 * S, ["a:firing"])]  # group_wait
    n.update([a, b], [], 40 * S)  # a change: sent at the next group_interval after 30 s, not before
    sent = ticks(n, 40 * S, 30 * M, 5 * S)
    assert [(t, ids(x)) for t, x in sent] == [(30 * S + 5 * M, ["a:firing", "b:firing"])]
    # unchanged: every group_interval it is looked at, and repeated once an hour has passed
    sent = ticks(n, 30 * M, 3 * 3600 * S, 5 * S)
    first = 30 * S + 5 * M
    assert [t for t, _ in sent] == [first + 60 * M, first + 120 * M]
    assert all(ids(x) == ["a:firing", "b:firing"] for _, x in sent)


def test_a_resolution_is_sent_once_in_the_next_notification_and_leaves_the_group():
    n = Notifier([OPS], [route(group_wait=0.0, group_interval=60.0, repeat_interval=600.0)])
    a, b = alert("a"), alert("b")
    n.update([a, b], [], 0)
    assert [ids(x) for x in n.tick(0)] == [["a:firing", "b:firing"]]
    n.update([a, resolved(b, 10 * S)], [], 10 * S)
    sent = ticks(n, 10 * S, 21 * M, 10 * S)
    assert [(t, ids(x), x.status) for t, x in sent] == [
        (60 * S, ["a:firing", "b:resolved"], "firing"),
        (60 * S + 10 * M, ["a:firing"], "firing"),  # the repeat: b is not in it
        (60 * S + 20 * M, ["a:firing"], "firing"),
    ]
    n.update([resolved(a, 21 * M + 5 * S)], [], 21 * M + 5 * S)
    sent = ticks(n, 21 * M + 10 * S, 40 * M, 10 * S)
    assert [(ids(x), x.status) for _, x in sent] == [(["a:resolved"], "resolved")]
    assert n._groups == {}  # both gone: a new alert starts a new group, with group_wait


def test_an_alert_missing_from_an_update_is_taken_as_resolved():
    n = Notifier([OPS], [route(group_wait=0.0, group_interval=60.0)])
    n.update([alert("a"), alert("b")], [], 0)
    n.tick(0)
    n.update([alert("a")], [], 30 * S)  # b's rule was removed
    ((_, sent),) = ticks(n, 30 * S, 2 * M)
    assert ids(sent) == ["a:firing", "b:resolved"]
    assert sent.alerts[1].ends_at_ms == 30 * S


def test_a_resolution_whose_firing_was_never_sent_is_not_sent():
    n = Notifier([OPS], [route(group_wait=30.0)])
    a = alert("a")
    n.update([a], [], 0)
    n.update([resolved(a, 10 * S)], [], 10 * S)  # resolved inside group_wait
    assert ticks(n, 0, 10 * M) == []


def test_acked_alerts_are_left_out_of_repeats_and_new_alerts_are_sent_without_them():
    n = Notifier([OPS], [route(group_wait=0.0, group_interval=60.0, repeat_interval=600.0)])
    a, b = alert("a"), alert("b")
    n.update([a, b], [], 0)
    assert [ids(x) for x in n.tick(0)] == [["a:firing", "b:firing"]]
    n.update([dataclasses.replace(a, acked=True), b], [], 5 * S)
    sent = ticks(n, 5 * S, 11 * M, 5 * S)
    assert [(t, ids(x)) for t, x in sent] == [(10 * M, ["b:firing"])]  # the repeat leaves a out
    n.update([dataclasses.replace(a, acked=True), dataclasses.replace(b, acked=True)], [], 11 * M)
    assert ticks(n, 11 * M, 60 * M, 5 * S) == []  # every alert acked: no repeats at all
    c = alert("c")
    n.update([dataclasses.replace(a, acked=True), dataclasses.replace(b, acked=True), c], [], 60 * M)
    sent = ticks(n, 60 * M, 62 * M, 5 * S)
    assert [ids(x) for _, x in sent] == [["c:firing"]]
    n.update([resolved(a, 63 * M), dataclasses.replace(b, acked=True), c], [], 63 * M)  # an ack ends
    sent = ticks(n, 63 * M, 65 * M, 5 * S)
    # a's firing was notified, so its resolution goes, with the group's unacked firing alerts
    assert [ids(x) for _, x in sent] == [["c:firing", "a:resolved"]]


def test_a_silence_holds_notifications_back_while_it_lasts():
    n = Notifier([OPS], [route(group_wait=10.0, group_interval=60.0, repeat_interval=3600.0)])
    web1, web2 = alert("web-1"), alert("web-2")
    silence = Silence("s1", (Matcher("host", "=~", "web-1|db"),), starts_ms=0, ends_ms=5 * M)
    n.update([web1, web2], [silence], 0)
    sent = ticks(n, 0, 4 * M)
    assert [(t, ids(x)) for t, x in sent] == [(10 * S, ["web-2:firing"])]
    # the silence ends: web-1 was never notified, so it is new at the group's next look
    sent = ticks(n, 4 * M, 8 * M)
    assert [(t, ids(x)) for t, x in sent] == [(5 * M + 10 * S, ["web-1:firing", "web-2:firing"])]


def test_a_resolution_while_silenced_is_not_sent_even_after_the_silence():
    n = Notifier([OPS], [route(group_wait=0.0, group_interval=60.0)])
    a = alert("a")
    n.update([a], [], 0)
    assert [ids(x) for x in n.tick(0)] == [["a:firing"]]
    silence = Silence("s1", (Matcher("alertname", "=", "HighCPU"),), starts_ms=0, ends_ms=10 * M)
    n.update([resolved(a, 30 * S)], [silence], 30 * S)
    assert ticks(n, 30 * S, 20 * M) == []

    # and one whose firing was silenced: neither the firing nor the resolution goes out
    b = alert("b")
    n.update([b], [dataclasses.replace(silence, ends_ms=30 * M)], 21 * M)
    n.update([resolved(b, 25 * M)], [dataclasses.replace(silence, ends_ms=30 * M)], 25 * M)
    assert ticks(n, 21 * M, 40 * M) == []


def test_alertmanager_gets_every_alert_resent_until_it_resolves():
    routes = [route("ops", match=(("severity", "critical"),))]  # the alert below matches no route
    n = Notifier([OPS, AM], routes)
    a = alert("a", starts_at_ms=-5 * S)
    silence = Silence("s", (Matcher("host", "=", "a"),), 0, 60 * M)  # Ferry's silences: not AM's
    for t in range(0, 150 * S, 15 * S):
        n.update([dataclasses.replace(a, acked=True)], [silence], t)
        sent = n.tick(t)
        if t in (0, 60 * S, 120 * S):
            (x,) = sent
            assert (x.receiver, ids(x), x.valid_until_ms) == ("am", ["a:firing"], t + 4 * M)
        else:
            assert sent == [], t
    n.update([resolved(a, 150 * S)], [silence], 150 * S)
    (x,) = n.tick(150 * S)
    assert (x.receiver, ids(x), x.alerts[0].ends_at_ms) == ("am", ["a:resolved"], 150 * S)
    assert ticks(n, 151 * S, 10 * M) == []


def test_alertmanager_firing_alerts_end_four_update_gaps_on_when_updates_are_slower_than_resends():
    n = Notifier([AM], [])
    n.update([alert("a")], [], 0)
    n.tick(0)
    n.update([alert("a")], [], 2 * M)  # evaluations 2 minutes apart, resends every minute
    (x,) = n.tick(2 * M)
    assert x.valid_until_ms == 2 * M + 4 * 2 * M


def test_a_restarted_notifier_restored_from_the_sent_log_does_not_notify_again():
    routes = [route(group_wait=30.0, group_interval=60.0, repeat_interval=3600.0)]
    first = Notifier([OPS], routes)
    first.update([alert("a")], [], 0)
    assert len(first.tick(30 * S)) == 1
    log = first.sent_log()
    assert log == [("ops", alert("a").id, 30 * S)]

    second = Notifier([OPS], routes)
    second.restore(log)
    second.update([alert("a")], [], 10 * M)
    assert ticks(second, 10 * M, 50 * M, 5 * S) == []  # no duplicate of the firing notification
    sent = ticks(second, 50 * M, 70 * M, 5 * S)
    assert [t for t, _ in sent] == [10 * M + 30 * S + 50 * M]  # the repeat, an hour after 30 s
    second.update([alert("b")], [], 71 * M)  # a resolved (missing), b new
    sent = ticks(second, 71 * M, 75 * M, 5 * S)
    assert [ids(x) for _, x in sent] == [["b:firing", "a:resolved"]]


def test_a_restored_alert_resolved_in_the_first_update_has_its_resolution_sent():
    second = Notifier([OPS], [route(group_wait=0.0, group_interval=60.0)])
    second.restore([("ops", alert("a").id, 0), ("ops", alert("b").id, 0)])
    second.update([resolved(alert("a"), 5 * S)], [], 5 * S)  # b: resolved before the restart
    assert [ids(x) for _, x in ticks(second, 5 * S, 10 * M)] == [["a:resolved"]]


def test_a_notifier_restored_but_not_updated_still_reports_what_was_sent():
    routes = [route(group_wait=0.0, group_interval=60.0, repeat_interval=3600.0)]
    first = Notifier([OPS], routes)
    first.update([alert("a")], [], 0)
    assert len(first.tick(0)) == 1
    second = Notifier([OPS], routes)
    second.restore(first.sent_log())
    assert second.sent_log() == [("ops", alert("a").id, 0)]  # a second SIGHUP before an update
    third = Notifier([OPS], routes)
    third.restore(second.sent_log())
    third.update([alert("a")], [], 10 * S)
    assert ticks(third, 10 * S, 30 * M, 5 * S) == []


def test_reloads_in_a_row_before_an_update_adopt_the_sent_log_and_the_firing_alerts():
    routes = [route(group_wait=30.0, group_interval=60.0, repeat_interval=3600.0)]
    a = Notifier([OPS], routes)
    a.update([alert("a")], [], 0)
    assert [ids(x) for x in a.tick(30 * S)] == [["a:firing"]]
    b = Notifier([OPS], routes)
    b.adopt(a)
    c = Notifier([OPS], routes)
    c.adopt(b)  # before b saw any update
    assert c.sent_log() == [("ops", alert("a").id, 30 * S)]
    c.update([alert("a")], [], 1 * M)
    assert ticks(c, 1 * M, 10 * M, 5 * S) == []  # no duplicate of the firing notification

    # the same again, and the alert is gone from the next update (its rule was removed)
    b = Notifier([OPS], routes)
    b.adopt(a)
    c = Notifier([OPS], routes)
    c.adopt(b)
    c.update([], [], 1 * M)
    sent = ticks(c, 1 * M, 10 * M, 5 * S)
    assert [(t, ids(x)) for t, x in sent] == [(1 * M + 30 * S, ["a:resolved"])]
    assert sent[0][1].alerts[0].ends_at_ms == 1 * M


def test_an_adopted_notifier_sends_the_resolution_the_old_one_owed_unless_silenced():
    routes = [route(group_wait=0.0, group_interval=60.0, repeat_interval=3600.0)]
    old = Notifier([OPS], routes)
    old.update([alert("a"), alert("b", name="DiskFull")], [], 0)
    assert len(old.tick(0)) == 2
    silence = Silence("s", (Matcher("alertname", "=", "DiskFull"),), 0, 60 * M)
    old.update(
        [resolved(alert("a"), 10 * S), resolved(alert("b", name="DiskFull"), 10 * S)], [silence], 10 * S
    )
    fresh = Notifier([OPS], routes)
    fresh.adopt(old)  # old's group sends at 60 s: the resolutions are still owed
    assert [ids(x) for _, x in ticks(fresh, 10 * S, 10 * M)] == [["a:resolved"]]  # b's is silenced


def test_an_adopted_alertmanager_receiver_is_not_sent_again_before_its_resend_interval():
    old = Notifier([AM], [])
    old.update([alert("a")], [], 0)
    assert len(old.tick(0)) == 1
    fresh = Notifier([AM], [])
    fresh.adopt(old)
    fresh.update([alert("a")], [], 15 * S)
    assert [t for t, _ in ticks(fresh, 15 * S, 90 * S)] == [60 * S]


def test_a_full_queue_drops_its_oldest_notification_and_counts_it():
    receiver = Receiver("bounded", "webhook", url="http://127.0.0.1:9/x")
    channel = Channel(receiver, bound=2)
    before = counter("ferry_collector_notifications_total", receiver="bounded", outcome="dropped")
    notes = [Notification("bounded", (alert(str(i)),), i) for i in range(3)]
    for x in notes:
        channel.put(x)
    assert list(channel.queue) == notes[1:]
    assert counter("ferry_collector_notifications_total", receiver="bounded", outcome="dropped") - before == 1
