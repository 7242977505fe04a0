"""A byte budget for frames accepted but not yet written: the collector's backpressure.

A frame reserves in steps, each from sizes already checked, never from what the frame merely
declares: its compressed and decompressed sizes once the header passed
(`ferry.wire.frames.check_frame`; the ingest service takes this step on the event loop, so frames
waiting for a writer thread are counted), then
what parsing and decoding will allocate once the census counted its elements
(`ferry.wire.census`). Once decoded it keeps only what it holds while it waits in a group (its
insert blocks), and it releases everything when it is answered. When a step does not fit, the
frame is refused with RESOURCE_EXHAUSTED and the agent retries later, so memory stays bounded
however many agents push at once.
"""

from __future__ import annotations

import threading

from ferry.collector import selfmetrics as m
from ferry.wire.census import Census

# Besides its decompressed bytes a decoded frame holds its parsed protobuf, numpy columns and
# the Arrow block: about 4x the raw size (5x in all, the factor the flood test was sized with),
# plus ~1 KB per series (SeriesDef, SeriesRow and their tuples) and ~64 B per protobuf field,
# which is what a payload of many tiny elements costs beyond its size.
RAW_COST_FACTOR = 4
SERIES_COST = 1024
FIELD_COST = 64


def opening_cost(payload_bytes: int, raw_size: int) -> int:
    """The compressed frame and its decompressed payload (raw_size is checked by then)."""
    return payload_bytes + raw_size


def decoding_cost(raw_size: int, census: Census) -> int:
    """What parsing, decoding and building rows of a counted payload add."""
    return RAW_COST_FACTOR * raw_size + SERIES_COST * census.series + FIELD_COST * census.fields


# what a stream-encoded point costs to decode beyond its payload bytes: its id, time and value
# columns and their temporaries (a point can be 3 bytes of payload)
STREAM_POINT_COST = 64
# a stream frame's varint columns widen up to 8x (a 1-byte bucket count becomes a uint64)
STREAM_RAW_FACTOR = 8


def stream_decoding_cost(raw_size: int, point_count: int, census: Census) -> int:
    """`decoding_cost` of a STREAM_ZSTD frame, whose payload is far smaller than what it decodes to."""
    return decoding_cost(raw_size, census) + STREAM_RAW_FACTOR * raw_size + STREAM_POINT_COST * point_count


class Budget:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._used = 0
        self.high_water = 0
        self._lock = threading.Lock()

    def try_acquire(self, cost: int, held: int = 0) -> bool:
        """Reserve `cost` bytes more for a frame already holding `held`. A frame larger than the
        whole budget passes only when nothing else is held, so it is never refused forever."""
        with self._lock:
            if self._used > held and self._used + cost > self.max_bytes:
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

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One frame's share of the budget, taken in steps and released at once."""

    def __init__(self, budget: Budget):
        self.budget = budget
        self.held = 0
        self.opened = False

    def open(self, payload_bytes: int, raw_size: int) -> bool:
        """The first step, once: by the ingest service on the event loop before the frame waits
        for a worker (so frames queued behind a busy writer count too), else by the pipeline."""
        if not self.opened:
            if not self.take(opening_cost(payload_bytes, raw_size)):
                return False
            self.opened = True
        return True

    def take(self, cost: int) -> bool:
        if not self.budget.try_acquire(cost, self.held):
            return False
        self.held += cost
        return True

    def keep(self, cost: int) -> None:
        """Hold only `cost` from now on (what a decoded frame keeps while its group fills)."""
        if cost < self.held:
            self.budget.release(self.held - cost)
            self.held = cost

    def release(self) -> None:
        self.budget.release(self.held)
        self.held = 0
