"""Dedup marks: which of each agent's frames every table already holds.

Two kinds, both answering "is this frame (agent_id, epoch, seq) stored?" without the store:
- a *unit mark* per (agent_id, epoch, table, day): the highest seq whose rows of that day that
  table holds. The store keeps the same figure atomically with the rows (its ledger,
  `ferry.collector.storage.ledger`), so these are rebuilt from it at start (`load`) and are
  exact through any crash: a frame whose samples were committed and whose events were not is
  written again into events only. Valid because the frames of one (agent_id, epoch) reach every
  table in seq order: a stream's frames join groups in order, groups are written one after
  another, and a failed group fails every group after it (`ferry.collector.commit`).
- a *frame mark* per (agent_id, epoch), the highest seq this process committed whole: a resend
  at or below it is answered DUPLICATE before it is even decoded. In memory only, least recently
  used forgotten past `capacity` (a forgotten one costs a decode, never a double write).

Unit marks are kept for the days a frame can still carry (`ferry.limits.Limits.max_past_ms`:
older points are refused), so their number is bounded by agents x epochs x tables x days in
that window; `prune` drops older days.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from ferry.collector.storage.ledger import Mark

Key = tuple[str, int]  # (agent_id, epoch)
Unit = tuple[str, int]  # (table, day)


class Marks:
    def __init__(self, frame_capacity: int = 100_000):
        self._units: dict[Key, dict[Unit, int]] = {}
        self._frames: OrderedDict[Key, int] = OrderedDict()
        self._capacity = frame_capacity
        self._count = 0  # unit marks held
        self._top: dict[Key, int] = {}  # the highest unit mark of each (agent_id, epoch)
        self._lock = threading.Lock()

    def load(self, marks: Iterable[Mark]) -> int:
        """Take the store's ledger (at start, before any frame); returns how many marks."""
        n = 0
        with self._lock:
            for m in marks:
                units = self._units.setdefault((m.agent_id, m.epoch), {})
                unit = (m.table, m.day)
                if unit not in units:
                    self._count += 1
                if m.seq > units.get(unit, 0):
                    units[unit] = m.seq
                key = (m.agent_id, m.epoch)
                self._top[key] = max(self._top.get(key, 0), m.seq)
                n += 1
        return n

    def frame_done(self, agent_id: str, epoch: int, seq: int) -> bool:
        with self._lock:
            mark = self._frames.get((agent_id, epoch))
            return mark is not None and seq <= mark

    def any_stored(self, agent_id: str, epoch: int, seq: int) -> bool:
        """Whether any table may hold rows of frame `seq` (False: none does, checked at once)."""
        with self._lock:
            return seq <= self._top.get((agent_id, epoch), 0)

    def stored(self, agent_id: str, epoch: int, seq: int, unit: Unit) -> bool:
        """Whether `unit` already holds the rows of frame `seq` (of that unit)."""
        with self._lock:
            units = self._units.get((agent_id, epoch))
            return units is not None and seq <= units.get(unit, 0)

    def commit(self, agent_id: str, epoch: int, seq: int, units: Iterable[Unit]) -> None:
        """Frame `seq` is stored whole: `units` are the ones its rows were just written to."""
        key = (agent_id, epoch)
        with self._lock:
            held = self._units.setdefault(key, {})
            for unit in units:
                was = held.get(unit)
                if was is None:
                    self._count += 1
                if seq > (was or 0):
                    held[unit] = seq
            if seq > self._top.get(key, 0):
                self._top[key] = seq
            if seq > self._frames.get(key, 0):
                self._frames[key] = seq
            self._frames.move_to_end(key)
            while len(self._frames) > self._capacity:
                self._frames.popitem(last=False)

    def prune(self, oldest_day: int) -> int:
        """Forget unit marks of days before `oldest_day`; returns how many were dropped."""
        dropped = 0
        with self._lock:
            for key in list(self._units):
                units = self._units[key]
                for unit in [u for u in units if u[1] < oldest_day]:
                    del units[unit]
                    dropped += 1
                if not units:
                    del self._units[key]
                    self._top.pop(key, None)
            self._count -= dropped
        return dropped

    def __len__(self) -> int:
        """How many unit marks are held."""
        return self._count
