"""`--synthetic RATE:TOTAL`: points numbered 0..TOTAL-1 of the DELTA series `ferry_synthetic`.

For tests and benchmarks of delivery. Each point has value 1 and label shard = n % 4. Frames are
cut at `frame_points` points or every `max_age_s`, and each frame's record in the spool carries
the progress after it (its mark), so an agent restarted on the same spool resumes where the spool
says it stopped: across any crash exactly TOTAL points are produced. RATE 0 means as fast as
possible. Runs on the agent's pipeline thread.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from ferry.agent import selfmetrics as m
from ferry.agent.spool import Spool
from ferry.v1 import payload_pb2
from ferry.wire.codec import encode_payload
from ferry.wire.columns import DELTA, MetricBatch, SeriesDef

SHARDS = 4
SERIES = [SeriesDef("ferry_synthetic", DELTA, "1", (("shard", str(i)),)) for i in range(SHARDS)]


class SyntheticSource:
    def __init__(
        self,
        rate: float,
        total: int,
        resource: payload_pb2.Resource,
        spool: Spool,
        frame_points: int = 20_000,
        max_age_s: float = 1.0,
    ):
        self.rate, self.total = rate, total
        self.resource = resource
        self.spool = spool
        self.frame_points = frame_points
        self.max_age_s = max_age_s

    def run(self, stop: threading.Event) -> int:
        """Produce until TOTAL (as recorded in the spool) or `stop`; returns the progress reached."""
        produced = self.spool.mark
        started, base = time.monotonic(), produced
        last_cut = started
        while produced < self.total and not stop.is_set():
            now = time.monotonic()
            if self.rate > 0:
                due = base + int((now - started) * self.rate)
                ready = min(due, self.total) - produced
                if ready < self.frame_points and now - last_cut < self.max_age_s:
                    stop.wait(min(0.05, self.max_age_s))
                    continue
                n = min(ready, self.frame_points)
                if n <= 0:
                    stop.wait(0.01)
                    continue
            else:
                n = min(self.frame_points, self.total - produced)
            self._emit(produced, n)
            produced += n
            last_cut = now
        return produced

    def _emit(self, first: int, n: int) -> None:
        numbers = np.arange(first, first + n, dtype=np.int64)
        batch = MetricBatch(
            series=SERIES,
            series_ref=(numbers % SHARDS).astype(np.uint32),
            time_ms=np.full(n, int(time.time() * 1000), dtype=np.int64),
            value=np.ones(n),
        )
        self.spool.append(encode_payload(self.resource, batch), n, mark=first + n)
        m.SYNTHETIC_POINTS.inc(n)
