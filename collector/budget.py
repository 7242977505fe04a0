"""A byte budget for frames accepted but not yet written: the collector's backpressure.

The ingest service reserves a frame's cost before decompressing it and releases it once the
frame is answered. When a reservation does not fit, the frame is refused with RESOURCE_EXHAUSTED
and the agent retries later, so memory stays bounded however many agents push at once.
"""

from __future__ import annotations

import threading

from ferry.collector import selfmetrics as m

# decompressed payload + its parsed copy + numpy columns + the Native block: about 5x raw size
RAW_COST_FACTOR = 5


def frame_cost(payload_bytes: int, raw_size: int) -> int:
    return payload_bytes + RAW_COST_FACTOR * raw_size


class Budget:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._used = 0
        self.high_water = 0
        self._lock = threading.Lock()

    def try_acquire(self, cost: int) -> bool:
        """Reserve `cost` bytes. A frame larger than the whole budget passes only when nothing is held."""
        with self._lock:
            if self._used and self._used + cost > self.max_bytes:
                return False
            self._used += cost
            m.PENDING_BYTES.set(self._used)
            if self._used > self.high_water:
                self.high_water = self._used
                m.PENDING_BYTES_MAX.set(self._used)
            return True

    def release(self, cost: int) -> None:
        with self._lock:
            self._used -= cost
            m.PENDING_BYTES.set(self._used)

    @property
    def used(self) -> int:
        return self._used
