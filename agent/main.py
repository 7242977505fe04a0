"""`ferry-agent`: collect host metrics every interval, batch, compress and stream to the collector."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time

from prometheus_client import start_http_server

from agent import __version__
from agent import selfmetrics as m
from agent.batcher import Batcher
from agent.collectors.base import Collector
from agent.collectors.system import SystemCollector
from agent.config import AgentConfig, default_agent_id
from agent.outbox import Outbox
from agent.sender import Sender
from ferry.config import parse_args
from ferry.logs import setup
from ferry.v1 import payload_pb2

log = logging.getLogger("ferry.agent")
DRAIN_TIMEOUT_S = 5.0


class Agent:
    def __init__(self, cfg: AgentConfig, collectors: list[Collector] | None = None):
        self.cfg = cfg
        self.agent_id = cfg.agent_id or default_agent_id()
        resource = payload_pb2.Resource(
            host=cfg.host or socket.gethostname(),
            agent_id=self.agent_id,
            labels=cfg.labels,
            agent_version=__version__,
        )
        self.outbox = Outbox(self.agent_id, cfg.outbox_max_bytes)
        self.batcher = Batcher(resource, self.outbox, cfg.batch_max_points, cfg.batch_max_age)
        self.sender = Sender(self.outbox, cfg.collector, window=cfg.send_window)
        self.collectors = collectors if collectors is not None else [SystemCollector()]

    def collect_once(self, time_ms: int) -> None:
        for collector in self.collectors:
            started = time.perf_counter()
            points: list = []
            try:
                collector.collect(time_ms, lambda s, v, _p=points: _p.append((s, v)))
            except Exception:
                m.COLLECT_ERRORS.labels(collector.name).inc()
                log.exception("collector %s failed", collector.name)
                continue
            finally:
                m.COLLECT_SECONDS.labels(collector.name).observe(time.perf_counter() - started)
            for series, value in points:
                self.batcher.add(series, time_ms, value)

    async def run(self, stop: asyncio.Event) -> None:
        sending = asyncio.create_task(self.sender.run(stop_sending := asyncio.Event()))
        interval = self.cfg.interval
        tick = min(1.0, interval, self.cfg.batch_max_age)
        next_at = (time.time() // interval + 1) * interval  # aligned to the interval
        while not stop.is_set():
            now = time.time()
            if now >= next_at:
                # a slow cycle skips missed ticks rather than bunching them up
                cycle_ms = int(next_at * 1000)
                next_at += interval * max(1, int((now - next_at) // interval) + 1)
                await asyncio.to_thread(self.collect_once, cycle_ms)
            self.batcher.cut_if_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, min(tick, next_at - time.time())))
        self.batcher.cut()
        pending = len(self.outbox)
        log.info("stopping: %d frames to deliver (up to %.0fs)", pending, DRAIN_TIMEOUT_S)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while len(self.outbox) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop_sending.set()
        await sending
        if len(self.outbox):
            log.warning(
                "exiting with %d unacked frames (%d bytes) not delivered", len(self.outbox), self.outbox.bytes
            )


async def serve(cfg: AgentConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(cfg)
    if cfg.metrics_listen:
        host, _, port = cfg.metrics_listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]"))
    log.info(
        "agent %s (id %s) every %.3gs to %s, metrics %s",
        __version__,
        agent.agent_id,
        cfg.interval,
        ",".join(cfg.collector),
        cfg.metrics_listen or "off",
    )
    await agent.run(stop)
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(
        AgentConfig, argv, "ferry-agent", "Ferry host agent: collect, batch, ship to the collector."
    )
    setup(cfg.log_level)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(cfg))
    else:
        uvloop.run(serve(cfg))


if __name__ == "__main__":
    main()
