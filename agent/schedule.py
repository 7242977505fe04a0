"""When the pipeline thread collects and cuts: the schedule `ferry.agent.pipeline.Pipeline` keeps.

Between jobs the pipeline thread calls `Schedule.tick`: each source on it runs what is due and
says when it wants to run again, the open batch is cut when it comes due, and the earliest of
those times is when the thread looks again. Sources:
- `Collection`: the host collectors, all of them at each tick of the interval, aligned to it
  and shifted by the agent's fixed jitter offset (`offset_s`); a slow cycle skips missed ticks
  rather than bunching them up;
- anything else with the same `step(batcher, now)` (the synthetic source keeps its own pace).
Built by ferry.agent.wiring; a reload moves the interval through `Collection.reschedule`.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ferry.agent import selfmetrics as m
from ferry.agent.batcher import Batcher
from ferry.agent.collectors.base import Collector
from ferry.runtime.config import ConfigError, setting

log = logging.getLogger("ferry.agent")


@dataclass
class ScheduleConfig:
    """When the host collectors run."""

    interval: float = setting(10.0, "duration", "collection interval", metavar="DUR")
    jitter: float = setting(
        0.0,
        "duration",
        "collect up to this much after each aligned tick (a fixed offset per agent, so a fleet "
        "does not read /proc and send in the same instant)",
        metavar="DUR",
    )

    def check(self) -> None:
        if self.jitter > self.interval:
            raise ConfigError(f"jitter {self.jitter:g}s must not exceed interval {self.interval:g}s")


def offset_s(agent_id: str, jitter: float) -> float:
    """An agent's fixed place within the jitter window (the same every cycle and restart)."""
    return (zlib.crc32(agent_id.encode()) / 2**32) * jitter


class Source(Protocol):
    """A source on the pipeline thread that keeps its own pace."""

    def step(self, batcher: Batcher, now: float) -> float | None:
        """Add what is due at `now` (time.time()); the time to be called again, None: not again."""
        ...


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


class Collection:
    """The host collectors on the aligned interval. Runs on the pipeline thread."""

    def __init__(self, collectors: Sequence[Collector], interval: float, offset: float):
        self.collectors = list(collectors)
        self.interval = interval
        self.offset = offset
        self._next_at: float | None = None
        self._rescheduled_at: float | None = None

    def reschedule(self, interval: float, offset: float, since: float) -> None:
        """The new schedule starts from the first tick after `since` (the reload)."""
        self.interval, self.offset, self._rescheduled_at = interval, offset, since

    def step(self, batcher: Batcher, now: float) -> float | None:
        if not self.collectors:
            return None
        interval = self.interval
        if self._next_at is None or self._rescheduled_at is not None:
            since = self._rescheduled_at or now
            self._rescheduled_at = None
            self._next_at = (since // interval + 1) * interval + self.offset
        if now >= self._next_at:
            cycle_ms = int(self._next_at * 1000)
            self._next_at += interval * max(1, int((now - self._next_at) // interval) + 1)
            self.collect_once(batcher, cycle_ms)
        return self._next_at

    def collect_once(self, batcher: Batcher, time_ms: int) -> None:
        """One cycle of every collector into the batcher, each timed and counted on its own."""
        for collector in self.collectors:
            started, before = time.perf_counter(), len(batcher)
            try:
                collector.collect(time_ms, batcher.emitter(time_ms))
            except Exception:
                m.COLLECT_ERRORS.labels(collector.name).inc()
                log.exception("collector %s failed", collector.name)
            finally:
                seconds, points = m.per_collector(collector.name)
                seconds.observe(time.perf_counter() - started)
                points.inc(len(batcher) - before)
                batcher.settle()
        batcher.cut_if_due()

    def close(self) -> None:
        for collector in self.collectors:
            collector.close()


class Schedule:
    """The pipeline thread's schedule: `tick` is `Pipeline.schedule`. Sources run only while
    `collecting` is set; the batches (`batcher`, the sources' own, and `others`: the apps')
    are cut when due either way."""

    def __init__(self, batcher: Batcher, sources: Sequence[Source], others: Sequence[Batcher] = ()):
        self.batcher = batcher
        self.sources = list(sources)
        self.batchers = [batcher, *others]
        self.collecting = False

    def tick(self) -> float | None:
        if not self.collecting:
            return None
        now = time.time()
        wake = None
        for source in self.sources:
            wake = _earliest(wake, source.step(self.batcher, now))
        for batcher in self.batchers:
            batcher.cut_if_due()
            due_ms = batcher.due_at_ms()
            wake = _earliest(wake, None if due_ms is None else due_ms / 1000)
        return wake
