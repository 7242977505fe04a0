"""High-water marks per (agent_id, epoch): answers DUPLICATE for a resent frame without the store.

Valid because each stream is processed in order and a failed insert ends the stream, so every
seq at or below the mark was committed. Bounded: the least recently used epochs are forgotten
(ClickHouse's insert_deduplication_token still catches their resends).
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class HighWaterMarks:
    def __init__(self, capacity: int = 100_000):
        self._marks: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def is_duplicate(self, agent_id: str, epoch: int, seq: int) -> bool:
        with self._lock:
            mark = self._marks.get((agent_id, epoch))
            return mark is not None and seq <= mark

    def commit(self, agent_id: str, epoch: int, seq: int) -> None:
        key = (agent_id, epoch)
        with self._lock:
            if seq > self._marks.get(key, 0):
                self._marks[key] = seq
            self._marks.move_to_end(key)
            while len(self._marks) > self._capacity:
                self._marks.popitem(last=False)

    def __len__(self) -> int:
        return len(self._marks)
