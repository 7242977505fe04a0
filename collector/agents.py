"""Records which agents stream to this collector: rows in the `agents` table, one insert per
group (`ferry.collector.writer`), never one per frame or per agent.

A row is due when an agent is first seen, when its host, version or address changes (a new
stream comes from a new peer port, so every stream open makes one) and otherwise at most once
per `refresh_s` per agent, so steady-state frames cost nothing here. ListAgents reads the table
back (ferry.collector.query.listing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa

from ferry.collector.storage import blocks, tables


def peer_address(peer: str) -> str:
    """A gRPC peer string without its transport prefix: 'ipv4:127.0.0.1:5000' → '127.0.0.1:5000'."""
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer


class AgentRecorder:
    def __init__(self, refresh_s: float = 10.0, clock: Callable[[], float] = time.time):
        self.refresh_s = refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[tuple[str, str, str], float]] = {}  # agent_id → (what, when written)

    def take(self, sightings: Iterable[tuple[str, str, str, str]]) -> tuple[pa.Table | None, list[str]]:
        """The `agents` rows due for a group's (agent_id, host, version, address) sightings, and
        the agent ids they are for (noted as written: `forget` them if the insert fails)."""
        now = self.clock()
        due: dict[str, tuple[str, str, str]] = {}
        with self._lock:
            for agent_id, host, version, address in sightings:
                what = (host, version, address)
                last = self._last.get(agent_id)
                if last is not None and last[0] == what and now - last[1] < self.refresh_s:
                    continue
                self._last[agent_id] = (what, now)
                due[agent_id] = what
        if not due:
            return None, []
        return _agents_block(due, now), list(due)

    def forget(self, agent_ids: Iterable[str]) -> None:
        """The rows `take` gave for these agents were not written: they are due again."""
        with self._lock:
            for agent_id in agent_ids:
                self._last.pop(agent_id, None)


def _agents_block(due: dict[str, tuple[str, str, str]], now_s: float) -> pa.Table:
    n = len(due)
    return blocks.block(
        tables.AGENTS,
        n,
        {
            "agent_id": list(due),
            "host": [h for h, _, _ in due.values()],
            "version": [v for _, v, _ in due.values()],
            "address": [a for _, _, a in due.values()],
            "last_seen": np.full(n, int(now_s * 1000)),
        },
    )
