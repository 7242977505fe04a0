"""Token buckets per principal: points/s and frames/s, each refilled continuously.

A frame is admitted when both buckets hold what it costs, or are full (a frame larger than a
whole burst still passes, alone, rather than never); the buckets may then go below zero and
the principal waits until they are back. A refused frame takes nothing, and the answer says
how long until it would be admitted (`retry_after_ms`). One principal's buckets are its own:
no other principal waits for them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ferry.collector.auth.principals import Rate


class Bucket:
    def __init__(self, per_s: float, burst_s: float, now: float):
        self.per_s = per_s
        self.capacity = per_s * burst_s
        self.level = self.capacity
        self.at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_s)
        self.at = now

    def wait_s(self, cost: float) -> float:
        """Seconds until `cost` is admitted (0: now)."""
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.per_s


class Limiter:
    """The buckets of every principal that has limits, made on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._buckets: dict[tuple[str, Rate], tuple[Bucket | None, Bucket | None]] = {}
        self._lock = threading.Lock()  # Push runs on grpc's threads, streams on the loop

    def admit(self, name: str, rate: Rate, points: int, frames: int = 1) -> float:
        """0 when the frame may go now (and is charged), else the seconds to wait."""
        if not rate.points_per_s and not rate.frames_per_s:
            return 0.0
        now = self.clock()
        with self._lock:
            buckets = self._buckets.get((name, rate))
            if buckets is None:
                buckets = self._buckets[(name, rate)] = (
                    Bucket(rate.points_per_s, rate.burst_s, now) if rate.points_per_s else None,
                    Bucket(rate.frames_per_s, rate.burst_s, now) if rate.frames_per_s else None,
                )
            wait = 0.0
            for bucket, cost in zip(buckets, (points, frames), strict=True):
                if bucket is not None:
                    bucket.refill(now)
                    wait = max(wait, bucket.wait_s(cost))
            if wait:
                return wait
            for bucket, cost in zip(buckets, (points, frames), strict=True):
                if bucket is not None:
                    bucket.level -= cost
            return 0.0

    def forget_others(self, keep: set[tuple[str, Rate]]) -> None:
        """After a reload: drop the buckets of principals or limits no longer in the file."""
        with self._lock:
            for key in [k for k in self._buckets if k not in keep]:
                del self._buckets[key]
