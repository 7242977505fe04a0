"""Token buckets per principal: metric points/s, frames/s and payload bytes/s (decompressed,
which bound events and logs too), each refilled continuously.

A frame is admitted when every bucket holds what it costs, or is full (a frame larger than a
whole burst still passes, alone, rather than never); the buckets may then go below zero and
the principal waits until they are back. A refused frame takes nothing, and the answer says
how long until it would be admitted (`retry_after_ms`). One principal's buckets are its own:
no other principal waits for them. A principal's buckets are kept by name, so streams opened
before a reload that changed its rate share them with those opened after; the new rate applies
to all from the next frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from ferry.collector.auth.principals import Rate


class Bucket:
    def __init__(self, per_s: float, burst_s: float, now: float):
        self.per_s = 0.0
        self.capacity = 0.0
        self.level = per_s * burst_s
        self.at = now
        self.set_rate(per_s, burst_s)

    def set_rate(self, per_s: float, burst_s: float) -> None:
        self.per_s, self.capacity = per_s, per_s * burst_s
        self.level = min(self.level, self.capacity)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.per_s)
        self.at = now

    def wait_s(self, cost: float) -> float:
        """Seconds until `cost` is admitted (0: now)."""
        if not self.per_s:
            return 0.0
        need = min(cost, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.per_s


class _Buckets:
    """One principal's buckets: points, frames, bytes (a rate of 0 admits everything)."""

    def __init__(self, rate: Rate, now: float):
        self.rate = rate
        self.all = [Bucket(per_s, rate.burst_s, now) for per_s in _rates(rate)]

    def update(self, rate: Rate) -> None:
        if rate != self.rate:
            self.rate = rate
            for bucket, per_s in zip(self.all, _rates(rate), strict=True):
                bucket.set_rate(per_s, rate.burst_s)


def _rates(rate: Rate) -> tuple[float, float, float]:
    return rate.points_per_s, rate.frames_per_s, rate.bytes_per_s


class Limiter:
    """The buckets of every principal that has limits, made on first use."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._buckets: dict[str, _Buckets] = {}
        self._lock = threading.Lock()  # Push runs on grpc's threads, streams on the loop

    def admit(self, name: str, rate: Rate, points: int, raw_bytes: int = 0) -> float:
        """0 when a frame of `points` and `raw_bytes` may go now (and is charged), else the
        seconds to wait."""
        if not rate.limited:
            return 0.0
        now = self.clock()
        costs = (points, 1, raw_bytes)
        with self._lock:
            buckets = self._buckets.get(name)
            if buckets is None:
                buckets = self._buckets[name] = _Buckets(rate, now)
            buckets.update(rate)
            wait = 0.0
            for bucket, cost in zip(buckets.all, costs, strict=True):
                bucket.refill(now)
                wait = max(wait, bucket.wait_s(cost))
            if wait:
                return wait
            for bucket, cost in zip(buckets.all, costs, strict=True):
                if bucket.per_s:
                    bucket.level -= cost
            return 0.0

    def keep_only(self, names: Iterable[str]) -> None:
        """After a reload: drop the buckets of principals no longer in the file."""
        keep = set(names)
        with self._lock:
            for name in [n for n in self._buckets if n not in keep]:
                del self._buckets[name]
