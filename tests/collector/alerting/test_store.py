"""ferry.collector.alerting.store on the real store (embedded chDB; a ClickHouse server with
FERRY_TEST_CLICKHOUSE_URL): transitions written and read back, the state a restarted engine
resumes from, acks and their clearing, silences versioned and expired."""

from __future__ import annotations

import pytest

from ferry.collector.alerting.model import Silence, State, Transition, fingerprint, labels_of, parse_matchers
from ferry.collector.alerting.store import DAY_MS, AlertStore, matchers_text

T0 = 1_790_000_000_000  # a fixed "now" (2026-09-21), inside every table's retention below
NOW = T0 + 600_000


@pytest.fixture
def alerts(store):
    s = AlertStore(store, clock=lambda: NOW)
    # retention is measured from the wall clock: keep the test's rows whatever day it runs on
    for table in ("alerts", "alert_acks"):
        store.client.command(f"ALTER TABLE {store.db}.{table} REMOVE TTL")
    return s


def labels(host: str, rule: str = "HighCPU") -> tuple:
    return labels_of({"alertname": rule, "severity": "warning", "host": host})


def step(at: int, lab: tuple, state: State, previous: State, value: float | None = 0.9) -> Transition:
    return Transition(
        at, lab[0][1] if lab[0][0] == "alertname" else "HighCPU", fingerprint(lab), lab, state, previous,
        value, "> 0.8", "warning", {"summary": f"CPU at {value}"},
    )  # fmt: skip


def test_transitions_are_written_and_read_back_newest_first(alerts):
    a = labels("web-1")
    steps = [
        step(T0, a, State.PENDING, State.INACTIVE, 0.85),
        step(T0 + 60_000, a, State.FIRING, State.PENDING),
        step(T0 + 120_000, a, State.RESOLVED, State.FIRING, None),
    ]
    alerts.write(steps)
    alerts.write([])  # nothing to write: no insert
    assert alerts.history(0, 100) == steps[::-1]
    assert alerts.history(T0 + 60_000, 100) == steps[:0:-1]
    assert alerts.history(0, 1) == [steps[2]]
    assert alerts.history(0, 100, "firing") == [steps[1]]
    assert alerts.history(0, 100, "resolved")[0].value is None
    with pytest.raises(ValueError):
        alerts.history(0, 100, "burning")


def test_current_rebuilds_each_instance_as_the_engine_left_it(alerts):
    pending, firing, resolved, old, quiet, instant = (labels(f"h{i}") for i in range(6))
    alerts.write(
        [
            step(T0, pending, State.PENDING, State.INACTIVE),
            step(T0, firing, State.PENDING, State.INACTIVE),
            step(T0 + 60_000, firing, State.FIRING, State.PENDING, 0.95),
            step(T0 - 3_600_000, resolved, State.PENDING, State.INACTIVE),
            step(T0 - 3_000_000, resolved, State.FIRING, State.PENDING),
            step(T0, resolved, State.RESOLVED, State.FIRING, 0.5),
            step(NOW - 2 * DAY_MS, old, State.FIRING, State.INACTIVE),
            step(NOW - DAY_MS - 1, old, State.RESOLVED, State.FIRING),
            step(T0, quiet, State.PENDING, State.INACTIVE),
            step(T0 + 30_000, quiet, State.INACTIVE, State.PENDING),
            step(T0 + 5_000, instant, State.FIRING, State.INACTIVE),  # `for` = 0
        ]
    )
    found = {i.labels: i for i in alerts.current()}
    assert set(found) == {pending, firing, resolved, instant}  # inactive, and resolved > a day ago: gone
    p = found[pending]
    assert (p.state, p.active_since_ms, p.fired_at_ms, p.resolved_at_ms) == (State.PENDING, T0, 0, 0)
    assert p.rule == "HighCPU" and p.id == fingerprint(pending) and p.value == 0.9
    f = found[firing]
    assert (f.state, f.active_since_ms, f.fired_at_ms, f.value) == (State.FIRING, T0, T0 + 60_000, 0.95)
    assert f.annotations == {"summary": "CPU at 0.95"} and f.last_true_ms == T0 + 60_000
    r = found[resolved]
    assert (r.state, r.active_since_ms, r.fired_at_ms, r.resolved_at_ms) == (
        State.RESOLVED, T0 - 3_600_000, T0 - 3_000_000, T0,
    )  # fmt: skip
    i = found[instant]
    assert (i.active_since_ms, i.fired_at_ms) == (T0 + 5_000, T0 + 5_000)
    # a day later the resolved one is forgotten too
    assert {i.labels for i in alerts.current(NOW + DAY_MS)} == {pending, firing, instant}


@pytest.mark.parametrize("newest_first", [True, False])
def test_transitions_of_one_millisecond_are_ordered_by_their_previous_state(alerts, newest_first):
    a = labels("web-1")
    # one evaluation wrote both; the order they were written in is not the order they happened
    both = [step(T0, a, State.PENDING, State.INACTIVE), step(T0, a, State.FIRING, State.PENDING)]
    alerts.write(both[::-1] if newest_first else both)
    (found,) = alerts.current()
    assert (found.state, found.active_since_ms, found.fired_at_ms) == (State.FIRING, T0, T0)
    assert alerts.history(0, 10) == both[::-1]  # newest first


def test_a_new_episode_after_resolving_starts_its_own_clock(alerts):
    a = labels("web-1")
    alerts.write(
        [
            step(T0 - 600_000, a, State.PENDING, State.INACTIVE),
            step(T0 - 500_000, a, State.FIRING, State.PENDING),
            step(T0 - 400_000, a, State.RESOLVED, State.FIRING),
            step(T0, a, State.PENDING, State.RESOLVED),
        ]
    )
    (found,) = alerts.current()
    assert (found.state, found.active_since_ms, found.fired_at_ms, found.resolved_at_ms) == (
        State.PENDING, T0, 0, 0,
    )  # fmt: skip


def test_acks_stand_until_cleared_and_current_carries_them(alerts):
    a, b = labels("web-1"), labels("web-2")
    ida, idb = fingerprint(a), fingerprint(b)
    alerts.write([step(T0, a, State.FIRING, State.INACTIVE), step(T0, b, State.FIRING, State.INACTIVE)])
    alerts.ack(ida, "ops", "on it", T0 + 1_000)
    alerts.ack(idb, "dev", "", T0 + 2_000)
    alerts.ack(idb, "ops", "mine now", T0 + 3_000)  # the latest ack is the one that stands
    assert alerts.acks() == {ida: ("ops", T0 + 1_000, "on it"), idb: ("ops", T0 + 3_000, "mine now")}
    found = {i.id: i for i in alerts.current()}
    assert (found[ida].acked_by, found[ida].acked_at_ms, found[ida].ack_note) == ("ops", T0 + 1_000, "on it")
    alerts.write([step(T0 + 9_000, b, State.RESOLVED, State.FIRING)])
    alerts.clear_ack(idb, T0 + 9_000)
    assert set(alerts.acks()) == {ida}
    assert {i.id: i.acked_by for i in alerts.current()} == {ida: "ops", idb: ""}
    alerts.ack(ida, "ops", "again", T0 + 10_000)
    alerts.clear_ack(ida, T0 + 10_000)  # the same millisecond: the clear wins
    assert alerts.acks() == {}


def test_an_ack_from_an_earlier_episode_is_not_applied(alerts):
    a = labels("web-1")
    alerts.write([step(T0, a, State.FIRING, State.INACTIVE)])
    alerts.ack(fingerprint(a), "ops", "", T0 + 1_000)
    # it resolved and fired again, and the clearing row never made it
    alerts.write(
        [step(T0 + 5_000, a, State.RESOLVED, State.FIRING), step(T0 + 9_000, a, State.FIRING, State.RESOLVED)]
    )
    (found,) = alerts.current()
    assert found.acked_by == "" and found.fired_at_ms == T0 + 9_000


def silence(id_: str, text: str, starts: int, ends: int) -> Silence:
    return Silence(id_, parse_matchers(text), starts, ends, f"comment {id_}", "ops")


def test_silences_are_listed_versioned_and_expired(alerts):
    now = NOW
    active = silence("s1", '{alertname="HighCPU",host=~"web-\\\\d+"}', now - 60_000, now + 3_600_000)
    later = silence("s2", '{severity!="info",note=\'say "hi"\\n\'}', now + 60_000, now + 120_000)
    over = silence("s3", 'HighCPU{host="db-1"}', now - 120_000, now - 60_000)
    for s in (active, later, over):
        alerts.add_silence(s, now)
    assert active.matchers[1].value == "web-\\d+"
    assert alerts.silences(now) == [active, later]
    assert alerts.silences(now, include_expired=True) == [over, active, later]
    expired = alerts.expire_silence("s1", now)
    assert expired == Silence("s1", active.matchers, active.starts_ms, now, active.comment, "ops")
    assert alerts.silences(now) == [later]
    assert alerts.silence("s1") == expired
    # expiring one that has not started: it ends now, and starts no later than that
    assert alerts.expire_silence("s2", now) == Silence("s2", later.matchers, now, now, later.comment, "ops")
    assert alerts.expire_silence("s3", now) == over  # already over: as it was, nothing written
    assert alerts.silences(now) == []
    with pytest.raises(KeyError, match="no silence 'nope'"):
        alerts.expire_silence("nope", now)


def test_matchers_text_reads_back_as_the_matchers():
    text = '{alertname="A",path=~"/api/\\\\w+\\"x\\"",msg!~"a\\nb\\tc"}'
    matchers = parse_matchers(text)
    assert parse_matchers(matchers_text(matchers)) == matchers
