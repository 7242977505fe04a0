"""Alerting as the collector runs it (`--rules FILE`): the engine on a thread of its own, the
notifier's ticks and sends on the event loop, both reloaded by SIGHUP.

A restart resumes: the engine reads the instances still pending or firing back from the store,
and the notifier is told the firing ones were notified already (they are sent again only at
their route's repeat_interval, or when they resolve): no duplicate firing notification.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from ferry.collector.alerting.builtin import Builtins
from ferry.collector.alerting.engine import Engine
from ferry.collector.alerting.notify import Notifier
from ferry.collector.alerting.rulesfile import RulesFile
from ferry.collector.alerting.store import AlertStore
from ferry.collector.query import listing
from ferry.collector.query.service import QueryService
from ferry.collector.storage.store import ThreadStores

log = logging.getLogger("ferry.collector.alerting")


class Alerting:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time):
        self.engine = engine
        self.clock = clock
        self.notifier = self._notifier()
        now_ms = int(clock() * 1000)
        names = [r.name for r in engine.rules_file.receivers]
        self.notifier.restore((name, i, now_ms) for i in engine.restored for name in names)
        engine.notifier = self.notifier
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._notify_stop = asyncio.Event()
        self._notify_task: asyncio.Task | None = None
        self._reloading = asyncio.Lock()  # one SIGHUP after another

    @classmethod
    def build(
        cls,
        path: str,
        interval_s: float,
        queries: QueryService,
        stores: ThreadStores,
        store_ok: Callable[[], bool],
    ) -> Alerting:
        """Raises ConfigError for a rules file that cannot be used."""

        def agents() -> list[tuple[str, str, int]]:
            resp = listing.agents(stores.get(), "")
            return [(a.agent_id, a.host, a.last_seen_ms) for a in resp.agents]

        def builtins(rules: RulesFile) -> Builtins | None:  # again at each reload
            return Builtins(agents, store_ok, rules.agent_down_after) if rules.builtin_rules else None

        engine = Engine(
            path, queries.query_range, AlertStore(stores), interval_s=interval_s, builtins=builtins
        )
        return cls(engine)

    def _notifier(self) -> Notifier:
        rules = self.engine.rules_file
        return Notifier(rules.receivers, rules.routes, self.clock)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.engine.run, args=(self._stop,), name="alerts", daemon=True
        )
        self._thread.start()
        self._notify_task = asyncio.create_task(self.notifier.run(self._notify_stop))
        rules = self.engine.rules
        log.info(
            "alerting: %d rules (%d built in) every %gs, %d receivers, %d instances resumed",
            len(rules),
            len(self.engine.builtins.rules) if self.engine.builtins else 0,
            self.engine.interval_s,
            len(self.engine.rules_file.receivers),
            len(self.engine.states.by_id),
        )

    async def reload(self) -> None:
        """SIGHUP: the rules file again. The notifier stays when the receivers and routes did
        not change; otherwise a new one takes over what the old one knew (what it sent, what is
        firing), so nothing already notified is sent again and every resolution still goes out
        (sends queued or retrying in the old one's receivers are not carried over)."""
        async with self._reloading:
            await self._reload()

    async def _reload(self) -> None:
        old_rules = (self.engine.rules_file.receivers, self.engine.rules_file.routes)
        if not await asyncio.to_thread(self.engine.reload):
            return
        if (self.engine.rules_file.receivers, self.engine.rules_file.routes) == old_rules:
            return
        old, old_stop, old_task = self.notifier, self._notify_stop, self._notify_task
        fresh = self._notifier()
        fresh.adopt(old)
        self.notifier = self.engine.notifier = fresh
        self._notify_stop = asyncio.Event()
        self._notify_task = asyncio.create_task(fresh.run(self._notify_stop))
        old_stop.set()
        if old_task is not None:
            await old_task

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 30)
        self._notify_stop.set()
        if self._notify_task is not None:
            await self._notify_task
