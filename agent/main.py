"""`ferry-agent`: collect host metrics every interval, batch, spool, and stream to the collector.

Threads: collection, batching, compression and spool writes run on one pipeline thread (they
block on /proc and fsync), which keeps the collection schedule itself (`ferry.agent.pipeline`); the
sender runs on the event loop and is woken thread-safely when a frame lands in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import threading
import time
import zlib
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from ferry.agent import __version__
from ferry.agent import selfmetrics as m
from ferry.agent.batcher import Batcher
from ferry.agent.checks import CheckRunner
from ferry.agent.collectors.base import Collector
from ferry.agent.collectors.system import COLLECTOR_NAMES, host_collectors
from ferry.agent.config import AgentConfig, default_agent_id, parse_spec
from ferry.agent.intake import Intake
from ferry.agent.local import server as local_server
from ferry.agent.local.records import DeltaSums
from ferry.agent.local.server import LocalService
from ferry.agent.pipeline import Pipeline
from ferry.agent.reload import BATCH_KEYS, COLLECTOR_KEYS, RESOURCE_KEYS, split
from ferry.agent.sender import Sender
from ferry.agent.spool import Spool, SpoolError
from ferry.runtime.config import ConfigError, ConfigSource, load_or_exit, parse_command_line
from ferry.runtime.logs import set_level, setup
from ferry.runtime.loop import run
from ferry.runtime.sdnotify import Notifier
from ferry.v1 import payload_pb2

if TYPE_CHECKING:
    from ferry.agent.scrape.runner import States

log = logging.getLogger("ferry.agent")
DRAIN_TIMEOUT_S = 5.0
SENDER_STOP_TIMEOUT_S = 2.0


class Agent:
    def __init__(self, cfg: AgentConfig, collectors: list[Collector] | None = None):
        self.cfg = cfg
        self.agent_id = cfg.agent_id or default_agent_id()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.spool = Spool(
            cfg.spool,
            self.agent_id,
            cfg.spool_max_bytes,
            fsync=cfg.spool_fsync,
            fsync_interval_s=cfg.spool_fsync_interval,
            on_append=self._wake_sender,
        )
        self.sender = Sender(self.spool, cfg.collector, window=cfg.send_window)
        self.deltas = DeltaSums()  # app DELTA increments, summed until the next frame; pipeline thread
        self.batcher = Batcher(
            self._resource(cfg), self.spool.append, cfg.batch_max_points, cfg.batch_max_age, self.deltas.flush
        )
        self._submitted = 0  # points handed to the pipeline thread from the event loop ...
        self._taken = 0  # ... and taken in by it (each counter written by one thread only)
        self.synthetic = None
        if cfg.synthetic:
            from ferry.agent.synthetic import SyntheticSource  # numpy, loaded only for this mode

            rate, total = parse_spec(cfg.synthetic)
            self.synthetic = SyntheticSource(
                rate, total, self._resource(cfg), self.spool, cfg.batch_max_points, cfg.batch_max_age
            )
        if collectors is not None:
            self.collectors = collectors
        else:
            self.collectors = [] if self.synthetic else build_collectors(cfg)
        self.pipeline = Pipeline(self._tick)
        self._checks: tuple[asyncio.Event, asyncio.Task] | None = None
        self._scrape: asyncio.Task | None = None
        self._scrape_states: States = {}  # per target, kept across reloads (histogram totals)
        self._rescheduled_at: float | None = None
        self._collecting = False  # the pipeline thread collects on its schedule while set
        self._next_at: float | None = None  # the next tick; pipeline thread

    def _resource(self, cfg: AgentConfig) -> payload_pb2.Resource:
        return payload_pb2.Resource(
            host=cfg.host or socket.gethostname(),
            agent_id=self.agent_id,
            labels=cfg.labels,
            agent_version=__version__,
        )

    def _wake_sender(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sender.wake.set)

    def submit(self, intake: Intake, counted_as: str = "") -> None:
        """Hand records from the event loop (checks, the Local service, the scraper) to the
        pipeline thread, which owns the batcher; deltas are summed until the next frame."""
        n = len(intake)
        self._submitted += n

        def add() -> None:
            self.batcher.take(intake)
            if intake.deltas:
                self.deltas.add(intake.deltas)
                self.batcher.touch()
            if counted_as:
                m.POINTS.labels(counted_as).inc(len(intake.points) + len(intake.histograms))
            self._taken += n

        self.pipeline.submit(add)

    def pending(self) -> int:
        """Records submitted and not yet taken in by the pipeline thread."""
        return self._submitted - self._taken

    def collect_once(self, time_ms: int) -> None:
        """One cycle of every collector into the batcher. Runs on the pipeline thread."""
        for collector in self.collectors:
            started, before = time.perf_counter(), len(self.batcher)
            try:
                collector.collect(time_ms, self.batcher.emitter(time_ms))
            except Exception:
                m.COLLECT_ERRORS.labels(collector.name).inc()
                log.exception("collector %s failed", collector.name)
            finally:
                seconds, points = m.per_collector(collector.name)
                seconds.observe(time.perf_counter() - started)
                points.inc(len(self.batcher) - before)
                self.batcher.settle()
        self.batcher.cut_if_due()

    def _start_checks(self) -> None:
        checks = [] if self.synthetic else self.cfg.checks  # the synthetic source owns the pipeline thread
        stop = asyncio.Event()

        def emit(points: list) -> None:
            self.submit(Intake(points=points), counted_as="checks")

        self._checks = (stop, asyncio.create_task(CheckRunner(checks, emit).run(stop)))

    async def _stop_checks(self) -> None:
        if self._checks is not None:
            stop, task = self._checks
            stop.set()
            await task

    def _start_scrape(self) -> None:
        targets = [] if self.synthetic else self.cfg.scrape
        if not targets:
            self._scrape_states.clear()  # as a runner of no targets would: no totals to keep
            return
        # loaded only when there is something to scrape: the parser, the mapping and the HTTP
        # client are resident memory the default agent does not need
        from ferry.agent.scrape.runner import ScrapeRunner

        def submit(intake: Intake) -> None:
            self.submit(intake, counted_as="scrape")

        self._scrape = asyncio.create_task(ScrapeRunner(targets, submit, self._scrape_states).run())

    async def _stop_scrape(self) -> None:
        if self._scrape is not None:
            from ferry.agent.scrape.runner import stop_task

            await stop_task(self._scrape)
            self._scrape = None

    def _offset_s(self) -> float:
        """This agent's fixed place within the jitter window (the same every cycle and restart)."""
        return (zlib.crc32(self.agent_id.encode()) / 2**32) * self.cfg.jitter

    async def reload(self, new: AgentConfig) -> None:
        """Apply a new configuration (see ferry.agent.reload); buffered and spooled points stay."""
        live, restart = split(self.cfg, new)
        loop = asyncio.get_running_loop()
        old, self.cfg = self.cfg, new
        if restart:
            log.warning("reload: %s changed; restart the agent to apply", ", ".join(restart))
            for key in restart:  # keep running with the values in use
                setattr(self.cfg, key, getattr(old, key))
        if any(k in live for k in COLLECTOR_KEYS) and not self.synthetic:
            collectors = await loop.run_in_executor(self.pipeline, self._swap_collectors, old)
            log.info("reload: collectors now %s", ", ".join(c.name for c in collectors))
        if any(k in live for k in (*RESOURCE_KEYS, *BATCH_KEYS)):
            await loop.run_in_executor(self.pipeline, self._rebatch)
        if "checks" in live:
            await self._stop_checks()
            self._start_checks()
        if "scrape" in live:
            await self._stop_scrape()
            self._start_scrape()
        if "log_level" in live:
            set_level(new.log_level)
        if "interval" in live or "jitter" in live:
            self._rescheduled_at = time.time()
            self.pipeline.wake()
        log.info("reload: applied %s", ", ".join(live) or "nothing (no change)")

    def _swap_collectors(self, old: AgentConfig) -> list[Collector]:
        """Rebuild the host collectors whose settings changed; keep the others and their state."""
        kept = {
            c.name: c
            for c in self.collectors
            if collector_settings(old, c.name) == collector_settings(self.cfg, c.name)
        }
        fresh = build_collectors(self.cfg, reuse=kept)
        for c in self.collectors:
            if c not in fresh:
                c.close()
        self.collectors = fresh
        return fresh

    def _rebatch(self) -> None:
        self.batcher.cut()  # points so far go out under the labels they were collected with
        self.batcher.resource = self._resource(self.cfg)
        self.batcher.max_points = self.cfg.batch_max_points
        self.batcher.max_age_ms = int(self.cfg.batch_max_age * 1000)

    def _tick(self) -> float | None:
        """The pipeline thread's schedule, between jobs: collect at each tick, cut the open batch
        when it comes due; returns when to look again (None: at the next job)."""
        if not self._collecting:
            return None
        interval = self.cfg.interval
        now = time.time()
        if self._next_at is None or self._rescheduled_at is not None:
            # aligned to the interval, shifted by this agent's jitter offset; after a reload the
            # new schedule starts from the first tick after the reload
            since = self._rescheduled_at or now
            self._rescheduled_at = None
            self._next_at = (since // interval + 1) * interval + self._offset_s()
        if now >= self._next_at and self.collectors:
            cycle_ms = int(self._next_at * 1000)
            # a slow cycle skips missed ticks rather than bunching them up
            self._next_at += interval * max(1, int((now - self._next_at) // interval) + 1)
            self.collect_once(cycle_ms)  # cuts if due
        else:
            self.batcher.cut_if_due()
        wake = self._next_at if self.collectors else None
        due_ms = self.batcher.due_at_ms()
        if due_ms is not None:
            wake = due_ms / 1000 if wake is None else min(wake, due_ms / 1000)
        return wake

    async def _collect_loop(self, stop: asyncio.Event) -> None:
        """Collect until `stop`: the pipeline thread keeps the schedule (`_tick`), so the event
        loop is not woken per cycle. A failure there (e.g. of the spool) is raised here."""
        loop = asyncio.get_running_loop()
        failed = loop.create_future()

        def fail(exc: BaseException) -> None:
            loop.call_soon_threadsafe(lambda: failed.done() or failed.set_exception(exc))

        self.pipeline.on_error = fail
        self._collecting = True
        self.pipeline.wake()
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((stopped, failed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._collecting = False  # a cycle under way finishes; jobs submitted now queue behind it
            stopped.cancel()
        if failed.done():
            failed.result()

    async def run(self, stop: asyncio.Event, on_stop=lambda: None) -> None:
        self._loop = loop = asyncio.get_running_loop()
        service = LocalService(self.submit, self.pending)
        local = await local_server.start(service, self.cfg.local_listen, self.cfg.local_socket)
        stop_sending = asyncio.Event()
        sending = asyncio.create_task(self.sender.run(stop_sending))
        self._start_checks()
        self._start_scrape()
        stop_producing = threading.Event()
        synthetic = None
        if self.synthetic is not None:
            synthetic = loop.run_in_executor(self.pipeline, self.synthetic.run, stop_producing)
            await stop.wait()
        else:
            await self._collect_loop(stop)
        on_stop()
        await local_server.stop(local, self.cfg.local_socket)  # what it accepted goes into the last frame
        await self._stop_checks()
        await self._stop_scrape()
        stop_producing.set()
        if synthetic is not None:
            await synthetic
        await loop.run_in_executor(self.pipeline, self.batcher.cut)
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
        for c in self.collectors:
            c.close()
        self.pipeline.shutdown(wait=True)
        self.spool.close()
        if len(self.spool):
            log.warning(
                "%d unacked frames (%d bytes) stay in the spool for the next start",
                len(self.spool),
                self.spool.bytes,
            )


def collector_settings(cfg: AgentConfig, name: str) -> tuple:
    """The settings a host collector is built from; it is rebuilt on reload when they change."""
    return {
        "filesystem": (cfg.filesystem_exclude_types,),
        "processes": (cfg.process_top_n, cfg.processes),
    }.get(name, ())


def build_collectors(cfg: AgentConfig, reuse: dict[str, Collector] | None = None) -> list[Collector]:
    reuse = reuse or {}
    fresh = host_collectors(
        [n for n in cfg.collectors if n not in reuse],
        exclude_fs_types=frozenset(cfg.filesystem_exclude_types),
        process_top_n=cfg.process_top_n,
        process_groups=cfg.processes,
        max_open_files=proc_file_budget(),
    )
    by_name = {c.name: c for c in fresh} | reuse
    return [by_name[n] for n in COLLECTOR_NAMES if n in cfg.collectors]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        pass  # prometheus_client's handler is silent too


def start_metrics_server(port: int, addr: str) -> ThreadingWSGIServer:
    """prometheus_client's start_http_server, but its thread polls for shutdown once an hour
    instead of twice a second: the agent never shuts it down, and each poll wakes the thread.
    Requests are answered as they arrive either way."""
    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    server_class = type("MetricsServer", (ThreadingWSGIServer,), {"address_family": family})
    httpd = make_server(sockaddr[0], port, make_wsgi_app(), server_class, handler_class=_QuietHandler)
    threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 3600.0}, name="metrics", daemon=True
    ).start()
    return httpd


def proc_file_budget() -> int:
    """/proc descriptors the process collector may keep open: a quarter of the soft fd limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(soft // 4, 16384) if soft != resource.RLIM_INFINITY else 16384


def raise_fd_limit() -> None:
    """Lift the soft fd limit to the hard one (systemd's default soft limit is 1024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 65536), hard))


async def _reload(agent: Agent, source: ConfigSource) -> None:
    log.info("SIGHUP: reloading %s", source.path or "(no config file: flags only)")
    try:
        new = source.load()
    except ConfigError as exc:
        m.RELOADS.labels("error").inc()
        log.error("reload failed, the running configuration stays: %s", exc)
        return
    await agent.reload(new)
    m.RELOADS.labels("ok").inc()


async def serve(
    cfg: AgentConfig, stop: asyncio.Event | None = None, source: ConfigSource | None = None
) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(cfg)
    if source is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(agent, source)))
    if cfg.metrics_listen:
        host, _, port = cfg.metrics_listen.rpartition(":")
        start_metrics_server(int(port), host.strip("[]"))
    notifier = Notifier.from_env()
    watchdog = asyncio.create_task(notifier.watchdog(stop))
    what = f"synthetic {cfg.synthetic}" if cfg.synthetic else f"every {cfg.interval:.3g}s"
    log.info(
        "agent %s (id %s) %s to %s, spool %s, metrics %s",
        __version__,
        agent.agent_id,
        what,
        ",".join(cfg.collector),
        cfg.spool,
        cfg.metrics_listen or "off",
    )
    notifier.ready(f"collecting {what}")
    await agent.run(stop, on_stop=notifier.stopping)
    await watchdog
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    source = parse_command_line(
        AgentConfig, argv, "ferry-agent", "Ferry host agent: collect, batch, ship to the collector."
    )
    cfg = load_or_exit(source, "ferry-agent")
    setup(cfg.log_level)
    raise_fd_limit()
    try:
        run(serve(cfg, source=source))
    except (SpoolError, OSError) as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
