"""Records which agents stream to this collector: one row in the `agents` table per sighting.

Called by the FramePipeline on writer threads (never on the event loop) after a frame's rows are
committed. A row is written when an agent is first seen, when its host, version or address
changes (a new stream comes from a new peer port, so every stream open writes one) and otherwise
at most once per `refresh_s` per agent, so steady-state frames cost nothing here. ListAgents
reads the table back (ferry.collector.query.listing).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa

from ferry.collector.storage import blocks, tables
from ferry.collector.storage.store import ThreadStores

log = logging.getLogger("ferry.collector.agents")


def peer_address(peer: str) -> str:
    """A gRPC peer string without its transport prefix: 'ipv4:127.0.0.1:5000' → '127.0.0.1:5000'."""
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer


class AgentRecorder:
    def __init__(self, stores: ThreadStores, refresh_s: float = 10.0, clock: Callable[[], float] = time.time):
        self.stores = stores
        self.refresh_s = refresh_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[tuple[str, str, str], float]] = {}  # agent_id → (what, when written)

    def seen(self, agent_id: str, host: str, version: str, address: str) -> bool:
        """Note a committed frame from `agent_id`; True when this wrote a row. A failed write is
        logged and retried with the next frame: it never fails the frame, whose rows are stored."""
        what = (host, version, address)
        now = self.clock()
        with self._lock:
            last = self._last.get(agent_id)
            if last is not None and last[0] == what and now - last[1] < self.refresh_s:
                return False
            self._last[agent_id] = (what, now)
        try:
            self.stores.get().insert("agents", _agent_block(agent_id, host, version, address, now))
        except Exception as exc:
            log.warning("recording agent %s failed: %s", agent_id, exc)
            with self._lock:
                self._last.pop(agent_id, None)
            return False
        return True


def _agent_block(agent_id: str, host: str, version: str, address: str, now_s: float) -> pa.Table:
    return blocks.block(
        tables.AGENTS,
        1,
        {
            "agent_id": [agent_id],
            "host": [host],
            "version": [version],
            "address": [address],
            "last_seen": np.array([int(now_s * 1000)]),
        },
    )
