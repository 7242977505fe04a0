"""The running agent: its components built from the configuration, started, reloaded, stopped.

Threads: collection, batching, compression and spool writes run on one pipeline thread (they
block on /proc and fsync), which keeps the schedule itself (ferry.agent.schedule); the sender
and the event-loop services (the Local service, the OTLP receiver, checks, the scraper) run on the
event loop and hand records to the pipeline thread (`submit`); the sender is woken thread-safely
when a frame lands in the spool. Each component is built by its own module's `build` from its own keys
(ferry.agent.config.COMPONENTS); ferry.agent.main runs `Agent` under signals and sd_notify.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import Future
from typing import Protocol

from ferry.agent import __version__, checks, credentials, redact, spool, synthetic
from ferry.agent import selfmetrics as m
from ferry.agent.batcher import Batcher
from ferry.agent.collectors.base import Collector
from ferry.agent.collectors.system import build_collectors, collector_settings
from ferry.agent.config import AgentConfig, default_agent_id
from ferry.agent.intake import Intake
from ferry.agent.local import config as local
from ferry.agent.local.records import DeltaSums
from ferry.agent.otlp import config as otlp
from ferry.agent.pipeline import Pipeline
from ferry.agent.reload import redo, split
from ferry.agent.schedule import Collection, Schedule, offset_s
from ferry.agent.scrape import config as scrape
from ferry.agent.sender import Sender
from ferry.runtime.config import ConfigError
from ferry.runtime.logs import set_level
from ferry.v1 import payload_pb2

log = logging.getLogger("ferry.agent")
DRAIN_TIMEOUT_S = 5.0
SENDER_STOP_TIMEOUT_S = 2.0


class Service(Protocol):
    """A source on the event loop (checks, the scraper, the Local service)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Agent:
    def __init__(self, cfg: AgentConfig, collectors: list[Collector] | None = None):
        self.cfg = cfg
        self.agent_id = cfg.agent_id or default_agent_id()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.spool = spool.build(cfg, self.agent_id, on_append=self._wake_sender)
        self.sender = Sender(
            self.spool,
            cfg.collector,
            window=cfg.send_window,
            credentials=credentials.load(cfg),
            stream_encoding=cfg.stream_encoding,
        )
        self.redactor = redact.build(cfg)  # before anything is spooled: series labels, app records
        self.deltas = DeltaSums()  # app DELTA increments, summed until the next frame; pipeline thread
        # the synthetic source, when configured, records its progress with each frame (so it is
        # the batcher's sink) and replaces the sources it names
        self.synthetic = synthetic.build(cfg, self.spool)
        self.replaced = synthetic.REPLACES if self.synthetic else frozenset()
        sink = self.synthetic.append if self.synthetic else self.spool.append
        self.batcher = Batcher(
            self._resource(cfg), sink, cfg.batch_max_points, cfg.batch_max_age, relabel=self.redactor.series
        )
        # what apps send (the Local service) goes in frames of its own: a frame the collector
        # refuses for an app's record, however it came to (a record that aged past the window
        # in a long outage), never takes host metrics with it
        self.app_batcher = Batcher(
            self._resource(cfg),
            self.spool.append,
            cfg.batch_max_points,
            cfg.batch_max_age,
            self.deltas.flush,
            relabel=self.redactor.series,
        )
        self._submitted = 0  # points handed to the pipeline thread from the event loop ...
        self._taken = 0  # ... and taken in by it (each counter written by one thread only)
        if collectors is None:
            collectors = [] if "collectors" in self.replaced else build_collectors(cfg)
        self.collection = Collection(collectors, cfg.interval, self._offset_s())
        self.schedule = Schedule(
            self.batcher, [s for s in (self.collection, self.synthetic) if s], [self.app_batcher]
        )
        self.pipeline = Pipeline(self.schedule.tick)
        self.services: dict[str, Service] = {"local": local.build(cfg, self.submit, self.pending)}
        # OTLP from OpenTelemetry SDKs: app records as Local's are, behind the same token check
        self.services["otlp"] = otlp.build(cfg, self.submit, self.pending, self.services["local"].tokens)
        for name, build in (("checks", checks.build), ("scrape", scrape.build)):
            if name not in self.replaced:
                self.services[name] = build(cfg, lambda intake, name=name: self.submit(intake, name))

    def _resource(self, cfg: AgentConfig) -> payload_pb2.Resource:
        return payload_pb2.Resource(
            host=cfg.host or socket.gethostname(),
            agent_id=self.agent_id,
            labels=cfg.labels,
            agent_version=__version__,
        )

    def _offset_s(self) -> float:
        return offset_s(self.agent_id, self.cfg.jitter)

    def _wake_sender(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sender.wake.set)

    def submit(self, intake: Intake, counted_as: str = "") -> Future:
        """Hand records from the event loop (checks and the scraper, `counted_as` their name;
        the Local service, '') to the pipeline thread, which owns the batchers: the host's, and
        the apps' (`app_batcher`); the apps' deltas are summed until the next frame of theirs
        (or until they hold as many series as a frame should). Done when the thread took them."""
        self.redactor.records(intake)  # the apps' events and logs
        n = len(intake)
        self._submitted += n
        batcher = self.batcher if counted_as else self.app_batcher

        def add() -> None:
            batcher.take(intake)
            if intake.deltas:
                self.deltas.add(intake.deltas)
                self.app_batcher.touch()
                if self.deltas.full:
                    self.app_batcher.cut()
            if counted_as:
                m.POINTS.labels(counted_as).inc(len(intake.points) + len(intake.histograms))
            self._taken += n

        return self.pipeline.submit(add)

    def pending(self) -> int:
        """Records submitted and not yet taken in by the pipeline thread."""
        return self._submitted - self._taken

    async def reload(self, new: AgentConfig) -> None:
        """Apply a new configuration (see ferry.agent.reload); buffered and spooled points stay."""
        live, restart = split(self.cfg, new)
        loop = asyncio.get_running_loop()
        old, self.cfg = self.cfg, new
        if restart:
            log.warning("reload: %s changed; restart the agent to apply", ", ".join(restart))
            for key in restart:  # keep running with the values in use
                setattr(self.cfg, key, getattr(old, key))
        todo = redo(live) - self.replaced
        if "collectors" in todo:
            collectors = await loop.run_in_executor(self.pipeline, self._swap_collectors, old)
            log.info("reload: collectors now %s", ", ".join(c.name for c in collectors))
        if "batch" in todo:
            await loop.run_in_executor(self.pipeline, self._rebatch)
        for name in ("checks", "scrape"):
            if name in todo:
                await self.services[name].apply(self.cfg)
        self._reload_credentials()
        await self.services["local"].apply(self.cfg)  # the token file, its contents may be new
        if "redact" in todo:
            self.redactor.apply(self.cfg)
        if "log" in todo:
            set_level(new.log_level)
        if "schedule" in todo:
            args = (self.cfg.interval, self._offset_s(), time.time())
            await loop.run_in_executor(self.pipeline, self.collection.reschedule, *args)
        log.info("reload: applied %s", ", ".join(live) or "nothing (no change)")

    def _reload_credentials(self) -> None:
        """The TLS and token files read again (rotated in place, or named anew): the open stream
        keeps going, the next one uses them; files that cannot be used leave the old ones."""
        try:
            self.sender.credentials = credentials.load(self.cfg)
        except ConfigError as exc:
            log.error("reload: credentials not reloaded, the ones in use stay: %s", exc)
            return
        if self.sender.credentials.tls is not None:
            log.info("reload: TLS files and token read again; the next connection uses them")

    def _swap_collectors(self, old: AgentConfig) -> list[Collector]:
        """Rebuild the host collectors whose settings changed; keep the others and their state."""
        running = self.collection.collectors
        kept = {
            c.name: c
            for c in running
            if collector_settings(old, c.name) == collector_settings(self.cfg, c.name)
        }
        fresh = build_collectors(self.cfg, reuse=kept)
        for c in running:
            if c not in fresh:
                c.close()
        self.collection.collectors = fresh
        return fresh

    def _rebatch(self) -> None:
        for batcher in (self.batcher, self.app_batcher):
            batcher.cut()  # points so far go out under the labels they were collected with
            batcher.resource = self._resource(self.cfg)
            batcher.max_points = self.cfg.batch_max_points
            batcher.max_age_ms = int(self.cfg.batch_max_age * 1000)

    def _cut_all(self) -> None:
        self.app_batcher.cut()
        self.batcher.cut()

    async def _collect(self, stop: asyncio.Event) -> None:
        """Run the schedule until `stop`: the pipeline thread keeps it, so the event loop is not
        woken per cycle. A failure there (e.g. of the spool) is raised here."""
        loop = asyncio.get_running_loop()
        failed = loop.create_future()

        def fail(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lambda: failed.done() or failed.set_exception(exc))

        self.pipeline.on_error = fail
        self.schedule.collecting = True
        self.pipeline.wake()
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((stopped, failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.schedule.collecting = False  # a cycle under way finishes; jobs submitted now queue behind it
            stopped.cancel()
        if failed.done():
            failed.result()

    async def run(self, stop: asyncio.Event, on_stop=lambda: None) -> None:
        self._loop = loop = asyncio.get_running_loop()
        for service in self.services.values():
            await service.start()
        stop_sending = asyncio.Event()
        sending = asyncio.create_task(self.sender.run(stop_sending))
        await self._collect(stop)
        on_stop()
        # the Local service first: what it accepted goes into the last frame
        for service in self.services.values():
            await service.stop()
        await loop.run_in_executor(self.pipeline, self._cut_all)
        log.info("stopping: %d frames to deliver (up to %.0fs)", len(self.spool), DRAIN_TIMEOUT_S)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while len(self.spool) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop_sending.set()
        try:
            # a collector that stops answering must not hold us: unacked frames stay spooled
            await asyncio.wait_for(sending, timeout=SENDER_STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("sender did not finish within %.0fs; stopping it", SENDER_STOP_TIMEOUT_S)
        self.collection.close()
        if self.synthetic:
            self.synthetic.close()
        self.pipeline.shutdown(wait=True)
        self.spool.close()
        if len(self.spool):
            log.warning(
                "%d unacked frames (%d bytes) stay in the spool for the next start",
                len(self.spool),
                self.spool.bytes,
            )
