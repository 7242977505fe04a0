"""The notifier: the evaluator hands it every firing alert and every one resolved since the last
call (`update`); it routes them, groups them and decides what is due (`tick`), and its receivers'
channels send it (`run`). Called by the alerting evaluator; docs/alerting.md#notifications says
what users see.

Dispatch follows Alertmanager's, per (route, group): the first route whose `match` holds takes
an alert, and its `group_by` labels pick the group. A new group waits `group_wait`, then sends
its alerts; after that it is looked at every `group_interval` and sends when it changed (an
alert fires that was not notified, or a notified one resolved), or when `repeat_interval` has
passed since its last send while it still has firing alerts. Resolved alerts go out once, in the
group's next notification, and leave the group. An alert missing from an update without being
resolved (its rule was removed) is taken as resolved at that update's time.

Acknowledged alerts (`acked`) are left out of every firing notification while acked, so they
never cause nor appear in a repeat; a new alert in their group is sent alone (with any other
unacked ones); an acked alert's resolution is sent, as its firing was. Silenced alerts (any
active `Silence` matches) are not sent while the silence lasts; one that resolves while silenced
is dropped without a resolution (so is one whose firing was never sent). When a silence ends,
its still-firing alerts that were never notified count as new.

Alertmanager receivers are outside routes and groups: each gets every alert, as Prometheus sends
them (the Alertmanager groups, routes, inhibits and silences itself; Ferry's acks and silences
apply to Ferry's own receivers, because an alert held back from an Alertmanager expires there
and would be announced as resolved). A firing alert is sent at the first tick after it appears
and again every `resend_interval`, with `endsAt` = the last update's time + 4 x the larger of
`resend_interval` and the time between updates (Prometheus's 4 x max(resend delay, evaluation
interval)), so it does not expire while it fires and does once evaluation stops; a resolved
alert is sent once with `endsAt` = its resolution time.

A restart or a reload does not notify again what was notified: a restarted notifier is told the
alerts its predecessor sent (`restore`, from the store's firing instances), a reloaded one takes
over the old notifier's knowledge (`adopt`). Those alerts are sent again at repeat_interval, and
their resolution is sent when they resolve, also when that is in the first update.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ferry.collector import selfmetrics as m
from ferry.collector.alerting.model import Alert, Silence
from ferry.collector.alerting.notify.channel import (
    BACKOFF_BASE_S,
    BACKOFF_MAX_S,
    QUEUE_BOUND,
    Channel,
    first_set,
)
from ferry.collector.alerting.notify.config import Receiver, Route, check_routes
from ferry.collector.alerting.notify.payloads import Notification

log = logging.getLogger("ferry.collector.alerting.notify")

TICK_S = 0.2  # how often `run` looks for what is due
VALID_FOR = 4  # an Alertmanager is told a firing alert ends this many resend intervals on

__all__ = ["Notification", "Notifier"]


@dataclass
class _Group:
    route: Route
    labels: dict[str, str]
    next_ms: int  # when it is next looked at: created + group_wait, then every group_interval
    alerts: dict[str, Alert] = field(default_factory=dict)
    notified: set[str] = field(default_factory=set)  # firing sent, resolution not yet
    last_sent_ms: int = 0


class Notifier:
    """Routes, groups and sends alerts. `update` is the evaluator's (any thread; no I/O); `tick`
    does what is due at a time (tests call it with their own clock); `run` ticks with `clock`
    (seconds, like time.time) and runs one sender task per receiver until `stop` is set."""

    def __init__(
        self,
        receivers: list[Receiver],
        routes: list[Route],
        clock: Callable[[], float] = time.time,
        *,
        queue_bound: int = QUEUE_BOUND,
        backoff_s: tuple[float, float] = (BACKOFF_BASE_S, BACKOFF_MAX_S),
        generator_url: str = "",
        tick_s: float = TICK_S,
    ):
        check_routes(receivers, routes)
        self.receivers = {r.name: r for r in receivers}
        self.routes = list(routes)
        self.clock = clock
        self.tick_s = tick_s
        self.channels = {
            r.name: Channel(r, queue_bound, backoff_s, generator_url) for r in receivers
        }  # fmt: skip
        self._am = [r for r in receivers if r.type == "alertmanager"]
        self._lock = threading.Lock()
        self._firing: dict[str, Alert] = {}  # the last update's firing alerts
        self._silences: list[Silence] = []
        self._groups: dict[tuple[int, tuple[tuple[str, str], ...]], _Group] = {}
        self._unrouted: set[str] = set()
        self._am_sent: dict[str, dict[str, int]] = {r.name: {} for r in self._am}  # id → last sent
        self._am_resolved: dict[str, dict[str, Alert]] = {r.name: {} for r in self._am}
        self._restored: dict[tuple[str, str], int] = {}
        self._last_update_ms: int | None = None
        self._update_gap_ms = 0

    # -- the evaluator's side ---------------------------------------------------------------

    def update(self, alerts: list[Alert], silences: list[Silence], now_ms: int) -> None:
        """Every firing alert, and every alert resolved since the last call (`ends_at_ms` set),
        with the silences in force. Takes the notifier's lock briefly; never does I/O."""
        with self._lock:
            if self._last_update_ms is not None:
                self._update_gap_ms = max(0, now_ms - self._last_update_ms)
            self._last_update_ms = now_ms
            self._silences = list(silences)
            given = {a.id: a for a in alerts}
            for gone in self._firing.keys() - given.keys():  # firing before, not mentioned now
                given[gone] = dataclasses.replace(self._firing[gone], ends_at_ms=now_ms)
            self._firing = {i: a for i, a in given.items() if not a.resolved}
            for alert in given.values():
                self._route(alert, now_ms)
            # an update holds every firing alert: what the first one did not claim never will
            self._restored.clear()

    def _route(self, alert: Alert, now_ms: int) -> None:
        for receiver in self._am:
            if alert.resolved and self._am_sent[receiver.name].pop(alert.id, None) is not None:
                self._am_resolved[receiver.name][alert.id] = alert
        index = next((i for i, r in enumerate(self.routes) if r.matches(alert.labels)), None)
        if index is None:
            self._note_unrouted(alert)
            return
        route = self.routes[index]
        key = (index, route.group_labels(alert.labels))
        group = self._groups.get(key)
        restored = (route.receiver, alert.id) in self._restored
        if group is None:
            if alert.resolved and not restored:
                return  # a group that never saw it fire has nothing to tell
            group = _Group(route, dict(key[1]), now_ms + int(route.group_wait * 1000))
            self._groups[key] = group
        group.alerts[alert.id] = alert
        sent_ms = self._restored.pop((route.receiver, alert.id), None)
        if sent_ms is not None:  # notified by the notifier before: its resolution is due, not its firing
            group.notified.add(alert.id)
            if not alert.resolved:
                group.last_sent_ms = max(group.last_sent_ms, sent_ms)

    def _note_unrouted(self, alert: Alert) -> None:
        if alert.resolved:
            self._unrouted.discard(alert.id)
        elif alert.id not in self._unrouted and not self._am:
            self._unrouted.add(alert.id)
            m.ALERTS_UNROUTED.inc()
            log.warning("alert %s %s matches no [[routes]] table: not sent", alert.id, alert.labels)

    # -- what is due --------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Notification]:
        """Queue every notification due at `now_ms` on its receiver's channel; returns them."""
        out: list[Notification] = []
        with self._lock:
            for key, group in list(self._groups.items()):
                if group.next_ms <= now_ms:
                    group.next_ms = now_ms + int(group.route.group_interval * 1000)
                    n = self._flush(group, now_ms)
                    if n is not None:
                        out.append(n)
                    if not group.alerts:
                        del self._groups[key]
            for receiver in self._am:
                n = self._alertmanager_due(receiver, now_ms)
                if n is not None:
                    out.append(n)
        for n in out:
            self.channels[n.receiver].put(n)
        return out

    def _silenced(self, alert: Alert, now_ms: int) -> bool:
        return any(s.active(now_ms) and s.matches(alert.labels) for s in self._silences)

    def _flush(self, group: _Group, now_ms: int) -> Notification | None:
        firing: list[Alert] = []
        resolved: list[Alert] = []
        for alert in list(group.alerts.values()):
            if self._silenced(alert, now_ms):
                if alert.resolved:  # its resolution is silenced too, and it is done
                    del group.alerts[alert.id]
                    group.notified.discard(alert.id)
                continue
            if alert.resolved:
                del group.alerts[alert.id]
                if alert.id in group.notified:
                    resolved.append(alert)
                    group.notified.discard(alert.id)
            elif not alert.acked:
                firing.append(alert)
        new = any(a.id not in group.notified for a in firing)
        repeat = bool(firing) and now_ms - group.last_sent_ms >= group.route.repeat_interval * 1000
        if not (new or resolved or repeat):
            return None
        group.notified.update(a.id for a in firing)
        group.last_sent_ms = now_ms
        firing.sort(key=lambda a: (a.starts_at_ms, sorted(a.labels.items())))
        resolved.sort(key=lambda a: (a.ends_at_ms, sorted(a.labels.items())))
        return Notification(group.route.receiver, (*firing, *resolved), now_ms, group.labels)

    def _alertmanager_due(self, receiver: Receiver, now_ms: int) -> Notification | None:
        sent = self._am_sent[receiver.name]
        resend_ms = int(receiver.resend_interval * 1000)
        due = [a for a in self._firing.values() if now_ms - sent.get(a.id, -resend_ms) >= resend_ms]
        for alert in due:
            sent[alert.id] = now_ms
        resolved = self._am_resolved[receiver.name]
        due += resolved.values()
        resolved.clear()
        if not due:
            return None
        valid_ms = VALID_FOR * max(resend_ms, self._update_gap_ms)
        return Notification(
            receiver.name, tuple(due), now_ms, valid_until_ms=(self._last_update_ms or now_ms) + valid_ms
        )

    # -- restarts -----------------------------------------------------------------------------

    def sent_log(self) -> list[tuple[str, str, int]]:
        """(receiver, alert id, last sent ms) of each firing alert a route's receiver was told
        of: what a restarted notifier is given to `restore` so it does not notify them again.
        Entries `restore` gave this notifier that no update has claimed yet are in it too (a
        notifier replaced before its first update knows what the one before it sent)."""
        with self._lock:
            return self._sent_log()

    def _sent_log(self) -> list[tuple[str, str, int]]:
        sent = [(g.route.receiver, i, g.last_sent_ms) for g in self._groups.values() for i in g.notified]
        claimed = {(receiver, i) for receiver, i, _ in sent}
        return sent + [(r, i, ms) for (r, i), ms in self._restored.items() if (r, i) not in claimed]

    def restore(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """Before the first update: these alerts were notified (at these times) by an earlier
        notifier; their groups send them again only at repeat_interval, or their resolution.
        Entries the first update's alerts do not claim (another receiver, resolved since) are
        forgotten then."""
        with self._lock:
            self._restored.update({(receiver, alert_id): ms for receiver, alert_id, ms in entries})

    def adopt(self, old: Notifier) -> None:
        """Before the first update: take over what `old`, the notifier this one replaces (a
        SIGHUP's new receivers and routes), knows. Its sent log, with the entries restored into
        it that no update claimed yet (as `restore`), so nothing it notified is sent again
        before repeat_interval; the resolutions it still owed (an alert notified, resolved, not
        yet sent), routed here; its last update's firing alerts, so one missing from this
        notifier's first update is taken as resolved and its resolution is sent; its silences
        (in force until the first update brings the current ones); and, for an alertmanager
        receiver of the same name, when each alert was last sent to it.

        Not carried over: the notifications already queued on `old`'s channels, or being sent
        or retried by them; they end with `old`'s `run` (its retries give up when it is
        stopped). Their alerts count as notified, as their group sent them."""
        with old._lock:
            sent = old._sent_log()
            owed = [
                (a, old._last_update_ms or a.ends_at_ms)
                for g in old._groups.values()
                for a in g.alerts.values()
                if a.resolved and a.id in g.notified
            ]
            firing, silences, unrouted = dict(old._firing), list(old._silences), set(old._unrouted)
            am = {
                name: (dict(old._am_sent[name]), dict(old._am_resolved[name]))
                for name in old._am_sent
            }  # fmt: skip
            last_update_ms, update_gap_ms = old._last_update_ms, old._update_gap_ms
        with self._lock:
            self._restored.update({(receiver, alert_id): ms for receiver, alert_id, ms in sent})
            for alert, at_ms in owed:
                self._route(alert, at_ms)
            self._firing = {**firing, **self._firing}
            self._silences = self._silences or silences
            self._unrouted |= unrouted
            for name, (am_sent, am_resolved) in am.items():
                if name in self._am_sent:
                    self._am_sent[name] = {**am_sent, **self._am_sent[name]}
                    self._am_resolved[name] = {**am_resolved, **self._am_resolved[name]}
            if self._last_update_ms is None:
                self._last_update_ms, self._update_gap_ms = last_update_ms, update_gap_ms

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `tick_s` and send, until `stop` is set."""
        tasks = [asyncio.create_task(c.run(stop), name=f"notify-{name}") for name, c in self.channels.items()]
        try:
            while not stop.is_set():
                try:
                    self.tick(int(self.clock() * 1000))
                except Exception:  # a defect here must not end notifications for good
                    log.exception("notifier tick failed")
                await first_set(stop, timeout=self.tick_s)
        finally:
            _, pending = await asyncio.wait(tasks, timeout=1.0) if tasks else (set(), set())
            for task in pending:  # a send blocked in its thread: left to its timeout
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
