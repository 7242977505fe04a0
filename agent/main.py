"""`ferry-agent`: collect host metrics every interval, batch, spool, and stream to the collector.

Threads: collection, batching, compression and spool writes run on one pipeline thread (they
block on /proc and fsync); the sender runs on the event loop and is woken thread-safely when a
frame lands in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import start_http_server

from agent import __version__
from agent import selfmetrics as m
from agent.batcher import Batcher
from agent.checks import CheckRunner
from agent.collectors.base import Collector
from agent.collectors.system import SystemCollector
from agent.config import AgentConfig, default_agent_id
from agent.sender import Sender
from agent.spool import Spool, SpoolError
from agent.synthetic import SyntheticSource, parse_spec
from ferry.config import parse_args
from ferry.logs import setup
from ferry.runtime import run
from ferry.sdnotify import Notifier
from ferry.v1 import payload_pb2

log = logging.getLogger("ferry.agent")
DRAIN_TIMEOUT_S = 5.0
SENDER_STOP_TIMEOUT_S = 2.0


class Agent:
    def __init__(self, cfg: AgentConfig, collectors: list[Collector] | None = None):
        self.cfg = cfg
        self.agent_id = cfg.agent_id or default_agent_id()
        self.resource = payload_pb2.Resource(
            host=cfg.host or socket.gethostname(),
            agent_id=self.agent_id,
            labels=cfg.labels,
            agent_version=__version__,
        )
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
        self.batcher = Batcher(self.resource, self.spool.append, cfg.batch_max_points, cfg.batch_max_age)
        self.synthetic = None
        if cfg.synthetic:
            rate, total = parse_spec(cfg.synthetic)
            self.synthetic = SyntheticSource(
                rate, total, self.resource, self.spool, cfg.batch_max_points, cfg.batch_max_age
            )
        default = [] if self.synthetic else [SystemCollector(process_top_n=cfg.process_top_n)]
        self.collectors = collectors if collectors is not None else default
        self.pipeline = ThreadPoolExecutor(1, thread_name_prefix="pipeline")

    def _wake_sender(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.sender.wake.set)

    def _emit_soon(self, points: list) -> None:
        """Hand points from the event loop to the pipeline thread, which owns the batcher."""

        def add() -> None:
            for series, time_ms, value in points:
                self.batcher.add(series, time_ms, value)

        self.pipeline.submit(add)

    def collect_once(self, time_ms: int) -> None:
        """One cycle of every collector into the batcher. Runs on the pipeline thread."""
        for collector in self.collectors:
            started = time.perf_counter()
            try:
                collector.collect(time_ms, lambda s, v: self.batcher.add(s, time_ms, v))
            except Exception:
                m.COLLECT_ERRORS.labels(collector.name).inc()
                log.exception("collector %s failed", collector.name)
            finally:
                m.COLLECT_SECONDS.labels(collector.name).observe(time.perf_counter() - started)
        self.batcher.cut_if_due()

    async def run(self, stop: asyncio.Event, on_stop=lambda: None) -> None:
        self._loop = loop = asyncio.get_running_loop()
        stop_sending = asyncio.Event()
        sending = asyncio.create_task(self.sender.run(stop_sending))
        checks = [] if self.synthetic else self.cfg.checks  # the synthetic source owns the pipeline thread
        checking = asyncio.create_task(CheckRunner(checks, self._emit_soon).run(stop))
        stop_producing = threading.Event()
        synthetic = None
        if self.synthetic is not None:
            synthetic = loop.run_in_executor(self.pipeline, self.synthetic.run, stop_producing)
        interval = self.cfg.interval
        tick = min(1.0, interval, self.cfg.batch_max_age)
        next_at = (time.time() // interval + 1) * interval  # aligned to the interval
        while not stop.is_set() and self.collectors:
            now = time.time()
            if now >= next_at:
                cycle_ms = int(next_at * 1000)
                # a slow cycle skips missed ticks rather than bunching them up
                next_at += interval * max(1, int((now - next_at) // interval) + 1)
                await loop.run_in_executor(self.pipeline, self.collect_once, cycle_ms)
            else:
                await loop.run_in_executor(self.pipeline, self.batcher.cut_if_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, min(tick, next_at - time.time())))
        await stop.wait()
        on_stop()
        await checking
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
        self.pipeline.shutdown(wait=True)
        self.spool.close()
        if len(self.spool):
            log.warning(
                "%d unacked frames (%d bytes) stay in the spool for the next start",
                len(self.spool),
                self.spool.bytes,
            )


async def serve(cfg: AgentConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # until configuration reload exists, SIGHUP must not kill us (its default action)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.warning("SIGHUP ignored: reload is not implemented yet; restart to apply")
    )
    agent = Agent(cfg)
    if cfg.metrics_listen:
        host, _, port = cfg.metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]"))
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
    cfg = parse_args(
        AgentConfig, argv, "ferry-agent", "Ferry host agent: collect, batch, ship to the collector."
    )
    setup(cfg.log_level)
    try:
        run(serve(cfg))
    except (SpoolError, OSError) as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
