"""`ferry-agent`: collect host metrics every interval, batch, spool, and stream to the collector.

The entry point: flags and the config file (ferry.agent.config), logging, the fd limit, the
self-metrics server, signals (SIGTERM/SIGINT stop, SIGHUP reloads) and sd_notify around the
running agent (ferry.agent.wiring.Agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

from ferry.agent import __version__, memory
from ferry.agent import selfmetrics as m
from ferry.agent.config import AgentConfig
from ferry.agent.spool import SpoolError
from ferry.agent.wiring import Agent
from ferry.runtime.config import ConfigError, ConfigSource, load_or_exit, parse_command_line
from ferry.runtime.logs import setup
from ferry.runtime.loop import run
from ferry.runtime.sdnotify import Notifier

log = logging.getLogger("ferry.agent")


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
    memory.return_large_blocks()
    try:
        run(serve(cfg, source=source))
    except ConfigError as exc:  # a file a key names (TLS, token) cannot be used
        print(f"ferry-agent: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (SpoolError, OSError) as exc:
        log.error("cannot start: %s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
