"""`ferry-collector`: serve Ingest and Query over gRPC, write to ClickHouse, export self-metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from ferry import transport
from ferry.collector import __version__
from ferry.collector import selfmetrics as m
from ferry.collector.agents import AgentRecorder
from ferry.collector.alerting import service as alerts_service
from ferry.collector.alerting.rulesfile import load_rules
from ferry.collector.alerting.run import Alerting
from ferry.collector.auth import tokens
from ferry.collector.auth.setup import Security
from ferry.collector.budget import Budget
from ferry.collector.commit import GroupCommitter
from ferry.collector.config import CollectorConfig
from ferry.collector.ingest import IngestService
from ferry.collector.ingest import register as register_ingest
from ferry.collector.marks import Marks
from ferry.collector.pipeline import FramePipeline, PipelineConfig
from ferry.collector.query import calls
from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import CLIENT_MAX_RECEIVE_BYTES, QueryLimits
from ferry.collector.storage import ledger
from ferry.collector.storage.health import StoreHealth
from ferry.collector.storage.ledger import DAY_MS
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store, StoreError, ThreadStores, redact
from ferry.collector.streams import StreamLimits
from ferry.collector.validate import Limits
from ferry.collector.writer import FAULT_ENV, Writer
from ferry.runtime.config import ConfigError, parse_args
from ferry.runtime.logs import setup
from ferry.runtime.loop import run
from ferry.runtime.sdnotify import Notifier
from ferry.v1 import ingest_pb2, query_pb2
from ferry.wire.frames import FrameLimits, receive_limit
from ferry.wire.stream import Bounds

log = logging.getLogger("ferry.collector")
SERVICES = (
    ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name,
    query_pb2.DESCRIPTOR.services_by_name["Query"].full_name,
)


async def serve(
    cfg: CollectorConfig, stop: asyncio.Event | None = None, security: Security | None = None
) -> None:
    stop = stop or asyncio.Event()
    security = security or Security.load(cfg)
    security.warn_if_open()
    loop = asyncio.get_running_loop()
    stores = ThreadStores(lambda: Store.open(cfg.store, cluster=cfg.cluster))
    bootstrap = await asyncio.to_thread(Store.open, cfg.store, cluster=cfg.cluster)
    await asyncio.to_thread(
        bootstrap.ensure_schema,
        SchemaOptions(
            database=bootstrap.db,
            raw_ttl_days=cfg.raw_ttl_days,
            events_ttl_days=cfg.events_ttl_days,
            logs_ttl_days=cfg.logs_ttl_days,
            rollup_1m_ttl_days=cfg.rollup_1m_ttl_days,
            rollup_1h_ttl_days=cfg.rollup_1h_ttl_days,
            alerts_ttl_days=cfg.alerts_ttl_days,
            cluster=cfg.cluster,
        ),
    )
    if cfg.cluster:
        log.warning(
            "cluster %s: a frame's metric rows spread over shards, each shard's part holding its own "
            "ledger; a crash between the shards' commits can lose or double rows (docs/delivery.md)",
            cfg.cluster,
        )
    store_health = await asyncio.to_thread(StoreHealth.of, bootstrap)
    limits = Limits()
    marks = await asyncio.to_thread(load_marks, bootstrap, limits)
    writers = ThreadPoolExecutor(cfg.writers, thread_name_prefix="writer")
    writer = Writer(
        stores, health=store_health, agents=AgentRecorder(), fault_after=os.environ.get(FAULT_ENV, "")
    )
    committer = GroupCommitter(
        writer.write,
        marks,
        cfg.group_max_rows,
        cfg.group_max_age,
        reload=lambda: reread_ledger(stores.get(), store_health, limits),  # on the committer's thread
    )
    committer.start()
    pipeline = FramePipeline(
        committer,
        PipelineConfig(
            limits=limits,
            frame_limits=FrameLimits(cfg.max_frame_bytes, cfg.max_raw_bytes),
            stream=Bounds(cfg.stream_max_series, cfg.stream_max_bytes) if cfg.stream_encoding else None,
            stream_state_max_bytes=cfg.stream_state_max_bytes,
        ),
    )
    server = transport.server(
        max_receive_bytes=receive_limit(cfg.max_frame_bytes),
        max_send_bytes=max(CLIENT_MAX_RECEIVE_BYTES, cfg.query_max_answer_bytes + 1024 * 1024),
        options=[("grpc.server_handshake_timeout_ms", int(cfg.handshake_timeout * 1000))],
        migration_thread_pool=ThreadPoolExecutor(8, thread_name_prefix="rpc"),
        interceptors=[security.gate.interceptor()],
    )
    ingest = IngestService(
        pipeline,
        writers,
        Budget(cfg.max_pending_bytes),
        retry_after_ms=cfg.retry_after_ms,
        stream_limits=StreamLimits(
            cfg.max_streams, cfg.max_streams_per_peer, cfg.stream_idle_timeout, cfg.stream_window
        ),
        gate=security.gate,
    )
    register_ingest(ingest, server)
    queries = ThreadPoolExecutor(cfg.queries, thread_name_prefix="query")
    killer = ThreadPoolExecutor(1, thread_name_prefix="query-kill")
    query_service = QueryService(
        stores,
        QueryLimits(
            max_groups=cfg.query_max_groups,
            max_points=cfg.query_max_points,
            max_rows_read=cfg.query_max_rows_read,
            max_execution_s=cfg.query_max_execution_s,
            max_memory_bytes=cfg.query_max_memory_bytes,
            max_answer_bytes=cfg.query_max_answer_bytes,
        ),
    )
    calls.add_to_server(
        query_service,
        server,
        queries,
        killer,
        lambda tag: stores.get().client.command(calls.kill_sql(tag)),
        query_service.new_call,
    )
    alerting = None
    if cfg.rules:
        alerting = await asyncio.to_thread(
            Alerting.build, cfg.rules, cfg.alert_eval_interval, query_service, stores,
            lambda: store_health.ok,
        )  # fmt: skip
    alerts_service.add_to_server(
        alerting.engine if alerting else None, server, lambda: security.gate.current().name
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = transport.bind(server, cfg.listen, security.credentials)
    if cfg.metrics_listen:
        host, _, mport = cfg.metrics_listen.rpartition(":")
        start_http_server(int(mport), addr=host.strip("[]"))
    await server.start()
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "collector %s listening on %s (port %d, %s), store %s, metrics %s",
        __version__,
        cfg.listen,
        port,
        security.describe(),
        redact(cfg.store),
        cfg.metrics_listen or "off",
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: reload(security, alerting))
    # the probe has the bootstrap store to itself from here on
    watch = asyncio.create_task(watch_store(store_health, bootstrap, health_servicer, cfg, stop))
    pruning = asyncio.create_task(prune_marks(marks, limits, stop))
    auditing = asyncio.create_task(flush_audit(security, stop))
    notifier = Notifier.from_env()
    watchdog = asyncio.create_task(notifier.watchdog(stop))
    if alerting is not None:
        alerting.start()
    notifier.ready(f"serving on {cfg.listen}")
    await stop.wait()
    notifier.stopping()
    await watchdog
    await watch
    await pruning
    await auditing
    if alerting is not None:
        await alerting.stop()
    log.info("stopping: answering the %d frames in progress, then closing streams", ingest.in_progress)
    for name in ("", *SERVICES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await ingest.drain(cfg.drain_timeout)
    await server.stop(grace=1)
    writers.shutdown(wait=True)
    await asyncio.to_thread(committer.stop)
    queries.shutdown(wait=True)
    killer.shutdown(wait=True)
    stores.close_all()
    bootstrap.close()
    store_health.close()
    log.info("stopped")


async def watch_store(
    store_health: StoreHealth,
    store: Store,
    health_servicer: health.aio.HealthServicer,
    cfg: CollectorConfig,
    stop: asyncio.Event,
) -> None:
    """Probe the store every `store_probe_interval` and say in grpc health whether it takes
    writes: NOT_SERVING while it does not (frames get UNAVAILABLE), SERVING again once it does."""
    serving = True
    m.STORE_OK.set(1)
    while not stop.is_set():
        ok = await asyncio.to_thread(store_health.probe, store)
        m.STORE_OK.set(1 if ok else 0)
        if ok != serving:
            serving = ok
            status = (
                health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for name in ("", *SERVICES):
                await health_servicer.set(name, status)
            log.warning(
                "health %s: %s",
                "SERVING" if ok else "NOT_SERVING",
                "store takes writes" if ok else store_health.reason,
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), cfg.store_probe_interval)


async def flush_audit(security: Security, stop: asyncio.Event, every_s: float = 1.0) -> None:
    """Every second (and at the end): the count of refusals the audit trail left unwritten."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        security.gate.audit.flush()


def oldest_day(limits: Limits) -> int:
    """The first day a frame may still carry points of (the day before the window starts)."""
    return int(time.time() * 1000 - limits.max_past_ms) // DAY_MS - 1


async def prune_marks(marks: Marks, limits: Limits, stop: asyncio.Event, every_s: float = 3600.0) -> None:
    """Drop, hourly, the dedup marks of days no frame can carry any more."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        dropped = marks.prune(oldest_day(limits))
        m.MARKS.set(len(marks))
        if dropped:
            log.info("dedup marks: %d of days before the window dropped", dropped)


_RELOADS: set[asyncio.Future] = set()


def reload(security: Security, alerting: Alerting | None = None) -> None:
    """SIGHUP: certificates, keys, the auth file and the rules file read again (other keys need
    a restart)."""
    if security.credentials is None and not security.cfg.auth and alerting is None:
        log.warning("SIGHUP: no TLS files, auth file or rules file to reload; other keys need a restart")
        return
    security.reload()
    if alerting is not None:
        task = asyncio.ensure_future(alerting.reload())
        _RELOADS.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(_RELOADS.discard)


def reread_ledger(store: Store, store_health: StoreHealth, limits: Limits) -> list[ledger.Mark]:
    """The ledger again after a failed write, unless the store was lost: the engine then still
    answers for rows that are not on its disk, and marks taken from it would answer DUPLICATE
    for frames a restart no longer has (so frames stay refused until the restart)."""
    if store_health.lost:
        raise StoreError(f"not read again: {store_health.lost}")
    return list(ledger.read(store, oldest_day(limits)))


def load_marks(store: Store, limits: Limits) -> Marks:
    """The dedup marks, rebuilt from the store's ledger for the days a frame can still carry."""
    started = time.perf_counter()
    marks = Marks()
    n = marks.load(ledger.read(store, oldest_day(limits)))
    seconds = time.perf_counter() - started
    m.LEDGER_SECONDS.set(seconds)
    m.MARKS.set(len(marks))
    log.info("dedup marks: %d rebuilt from the store in %.2f s", n, seconds)
    return marks


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["token"]:
        raise SystemExit(tokens.main(args[1:]))
    cfg = parse_args(
        CollectorConfig, args, "ferry-collector", "Ferry collector: ingest into ClickHouse, serve queries."
    )
    setup(cfg.log_level, native_stderr=True)  # core logs what peers send: kept inside JSON strings
    try:
        security = Security.load(cfg)
        if cfg.rules:
            load_rules(cfg.rules)  # refused before anything starts
    except ConfigError as exc:
        print(f"ferry-collector: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        run(serve(cfg, security=security))
    except (StoreError, OSError) as exc:  # the store, or an address that cannot be listened on
        log.error("%s", exc)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
