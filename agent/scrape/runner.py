"""Scrape every `[[scrape]]` target on its own schedule and hand the results to the agent.

One asyncio task per target: the first scrape at once, then one every `interval` on a fixed
schedule (a slow scrape skips missed ticks rather than bunching them). Fetching, parsing and
mapping run in this runner's own worker threads, so a slow target holds neither the event loop
nor the agent's other threads. Each scrape yields `scrape.up` (1/0) and `scrape.duration` (ms),
labelled `job` and `instance`, also when it fails; failures are logged with the url and reason,
once when they start or change and then at most every LOG_EVERY_S.

The agent cancels `run()` to stop (on shutdown and when a reload changes `scrape`). A target's
`TargetState` lives in the `states` dict the agent passes in, so it outlives a reload; it is
replaced only together with handing the scrape's points over (nothing awaits in between), so
a scrape cut off by cancellation leaves the histogram totals where the stored points are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ferry.agent import catalogue as c
from ferry.agent import selfmetrics as m
from ferry.agent.intake import Intake
from ferry.agent.scrape.config import ScrapeTarget
from ferry.agent.scrape.fetch import ScrapeError, fetch
from ferry.agent.scrape.mapping import Mapped, TargetState, map_families
from ferry.agent.scrape.parse import parse

log = logging.getLogger("ferry.agent.scrape")
LOG_EVERY_S = 300.0
MAX_WORKERS = 8
CHUNK = 10_000  # points per hand-over, so one big exposition cannot overshoot a frame's bounds

States = dict[tuple, TargetState]  # by ScrapeTarget.key


def scrape_once(target: ScrapeTarget, state: TargetState, now_ms: int) -> Mapped:
    """Fetch, parse and map one exposition (blocking); ScrapeError says why there is none."""
    body, content_type = fetch(target.url, target.timeout)
    return map_families(parse(body, content_type), target, state, now_ms)


def intakes(health: list, mapped: Mapped | None, chunk: int = CHUNK) -> list[Intake]:
    """The health points and the scrape's points, `chunk` at most per Intake."""
    points = health + (mapped.points if mapped else [])
    histograms = mapped.histograms if mapped else []
    out = [Intake(points=points[i : i + chunk]) for i in range(0, len(points), chunk)]
    out += [Intake(histograms=histograms[i : i + chunk]) for i in range(0, len(histograms), chunk)]
    return out


class ScrapeRunner:
    def __init__(
        self,
        targets: list[ScrapeTarget],
        submit: Callable[[Intake], object],
        states: States,
    ):
        self.targets = targets
        self.submit = submit
        self.states = states
        for key in set(states) - {t.key for t in targets}:
            del states[key]  # removed targets: their totals would be stale if they came back

    async def run(self) -> None:
        if not self.targets:
            return
        executor = ThreadPoolExecutor(min(MAX_WORKERS, len(self.targets)), thread_name_prefix="scrape")
        try:
            await asyncio.gather(*(self._loop(t, executor) for t in self.targets))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    async def _loop(self, target: ScrapeTarget, executor: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        labels = (target.instance, target.job)
        up, duration = c.SCRAPE_UP.series(labels), c.SCRAPE_DURATION.series(labels)
        report = _Reporter(target)
        next_at = time.time()
        while True:
            started_at, started = time.time(), time.perf_counter()
            t_ms = int(started_at * 1000)
            state = self.states.get(target.key) or TargetState()
            try:
                mapped = await loop.run_in_executor(executor, scrape_once, target, state, t_ms)
            except ScrapeError as exc:
                mapped = None
                report.failed(str(exc))
            except Exception as exc:  # a bug must not end this target's scrapes
                mapped = None
                log.exception("scrape %s %s: unexpected error", target.job, target.url)
                report.failed(f"{type(exc).__name__}: {exc}")
            elapsed_ms = (time.perf_counter() - started) * 1000
            health = [(up, t_ms, 0.0 if mapped is None else 1.0), (duration, t_ms, elapsed_ms)]
            if mapped is not None:
                self.states[target.key] = mapped.state
                report.succeeded(mapped)
            for intake in intakes(health, mapped):
                self.submit(intake)
            now = time.time()
            next_at += target.interval * max(1, int((now - next_at) // target.interval) + 1)
            await asyncio.sleep(max(0.0, next_at - now))


class _Reporter:
    """Self-metrics and rate-limited log lines for one target."""

    def __init__(self, target: ScrapeTarget, clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.clock = clock
        self.samples = m.SCRAPE_SAMPLES.labels(target.job)
        self.reason = ""
        self.failures = 0  # since the last message
        self.logged_at = -LOG_EVERY_S
        self.skips_logged_at = -LOG_EVERY_S

    def failed(self, reason: str) -> None:
        m.SCRAPE_FAILURES.labels(self.target.job).inc()
        self.failures += 1
        now = self.clock()
        if reason != self.reason or now - self.logged_at >= LOG_EVERY_S:
            unlogged = self.failures - 1
            more = f" (and {unlogged} failed scrapes since the last message)" if unlogged else ""
            log.warning("scrape %s %s failed: %s%s", self.target.job, self.target.url, reason, more)
            self.reason, self.logged_at, self.failures = reason, now, 0

    def succeeded(self, mapped: Mapped) -> None:
        if self.reason:
            log.info("scrape %s %s: up again", self.target.job, self.target.url)
            self.reason, self.failures = "", 0
        self.samples.inc(mapped.samples)
        if not mapped.skipped:
            return
        for reason, n in mapped.skipped.items():
            m.SCRAPE_SKIPPED.labels(self.target.job, reason).inc(n)
        now = self.clock()
        if now - self.skips_logged_at >= LOG_EVERY_S:
            self.skips_logged_at = now
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(mapped.skipped.items()))
            example = next(iter(mapped.examples.values()))
            log.warning(
                "scrape %s %s: skipped %d samples Ferry refuses (%s), e.g. %s",
                self.target.job,
                self.target.url,
                mapped.skipped.total(),
                counts,
                example,
            )


async def stop_task(task: asyncio.Task) -> None:
    """Cancel a runner's task and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
