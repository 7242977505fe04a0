"""The collector's configuration: defaults, TOML keys and flags (see ferry.runtime.config)."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.collector.query.sql import QueryLimits
from ferry.collector.storage.layout import check_identifier
from ferry.runtime.config import ConfigError, is_loopback, setting
from ferry.runtime.logs import LEVELS
from ferry.wire.frames import AGENT_FRAME_BYTES, DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_RAW_BYTES
from ferry.wire.stream import Bounds

_QUERY = QueryLimits()  # the query limits' defaults are declared there
_STREAM = Bounds()  # and the stream encoding's bounds there


@dataclass
class CollectorConfig:
    listen: str = setting(
        "127.0.0.1:4770", "address", "gRPC listen address (Ingest, Query, health)", metavar="HOST:PORT"
    )
    store: str = setting(
        "chdb:///var/lib/ferry/store",
        "str",
        "chdb:///path (embedded) or http(s)://user:pass@host:8123/db",
        metavar="DSN",
    )
    tls_cert: str = setting(
        "",
        "str",
        "serve TLS with this certificate chain (PEM; with tls_key); SIGHUP reloads it",
        metavar="FILE",
    )
    tls_key: str = setting("", "str", "the private key of tls_cert (PEM)", metavar="FILE")
    tls_client_ca: str = setting(
        "", "str", "require client certificates that chain to this CA (mTLS; PEM)", metavar="FILE"
    )
    auth: str = setting(
        "",
        "str",
        "auth file: principals, their tokens, roles and rate limits (TOML; SIGHUP reloads it)",
        metavar="FILE",
    )
    handshake_timeout: float = setting(
        10.0,
        "duration",
        "a connection that has not finished its TLS handshake (or HTTP/2 preface) by then is closed",
        metavar="DUR",
    )
    insecure: bool = setting(
        False,
        "bool",
        "serve a non-loopback listen address without TLS and an auth file (logs a warning)",
    )
    rules: str = setting(
        "",
        "str",
        "alert rules, receivers and routes (TOML; SIGHUP reloads it); without it nothing is evaluated",
        metavar="FILE",
    )
    alert_eval_interval: float = setting(
        15.0, "duration", "how often every alert rule is evaluated", metavar="DUR"
    )
    metrics_listen: str = setting(
        "127.0.0.1:9470", "optional_address", "self-metrics HTTP address ('' disables)", metavar="HOST:PORT"
    )
    log_level: str = setting("info", "choice", "log level", choices=LEVELS)
    writers: int = setting(2, "int", "threads running store inserts")
    max_frame_bytes: int = setting(DEFAULT_MAX_FRAME_BYTES, "int", "largest compressed frame payload")
    max_raw_bytes: int = setting(DEFAULT_MAX_RAW_BYTES, "int", "largest decompressed payload")
    max_pending_bytes: int = setting(
        256 * 1024 * 1024, "int", "bound on frames accepted and not yet written (backpressure past it)"
    )
    max_streams: int = setting(1024, "int", "ingest streams open at once")
    max_streams_per_peer: int = setting(64, "int", "ingest streams open at once from one peer (its host)")
    stream_idle_timeout: float = setting(
        300.0, "duration", "end an ingest stream that sends no frame for this long", metavar="DUR"
    )
    stream_window: int = setting(
        4, "int", "frames of one stream decoded or waiting for their group at once (more wait unread)"
    )
    stream_encoding: bool = setting(
        True,
        "bool",
        "take the stateful stream encoding from agents that ask (series sent once per stream, "
        "values against the last, zstd); off: self-contained frames only",
    )
    stream_max_series: int = setting(
        _STREAM.max_series, "int", "series one ingest stream's dictionary may hold (stream encoding)"
    )
    stream_max_bytes: int = setting(
        _STREAM.max_bytes,
        "int",
        "bytes one ingest stream's dictionary may hold: each series' definition + 1536 (stream encoding)",
    )
    stream_state_max_bytes: int = setting(
        1024 * 1024 * 1024,
        "int",
        "bytes every stream's dictionary together may hold; past it new streams get self-contained frames",
    )
    group_max_rows: int = setting(
        100_000, "int", "a group (one insert per table) is written once it holds this many points and records"
    )
    group_max_age: float = setting(
        0.2, "duration", "... or once its first frame has waited this long", metavar="DUR"
    )
    retry_after_ms: int = setting(500, "int", "base delay a refused agent is told to wait (plus jitter)")
    drain_timeout: float = setting(
        30.0, "duration", "on SIGTERM, how long to finish frames already taken", metavar="DUR"
    )
    store_probe_interval: float = setting(
        1.0,
        "duration",
        "how often the store is probed; grpc health is NOT_SERVING while it takes no writes",
        metavar="DUR",
    )
    queries: int = setting(4, "int", "query RPCs that run at once (more wait for a thread)")
    query_max_memory_bytes: int = setting(
        _QUERY.max_memory_bytes,
        "int",
        "memory one query statement may use in the store (max_memory_usage); past it RESOURCE_EXHAUSTED",
    )
    query_max_answer_bytes: int = setting(
        _QUERY.max_answer_bytes,
        "int",
        "largest QueryRange answer, checked before it is built; past it RESOURCE_EXHAUSTED",
    )
    query_max_groups: int = setting(
        _QUERY.max_groups,
        "int",
        "groups one QueryRange answer (or expression operand) may hold (series, without a group-by); "
        "past it RESOURCE_EXHAUSTED",
    )
    query_max_points: int = setting(
        _QUERY.max_points,
        "int",
        "(group, step) points one QueryRange answer (or expression operand) may hold; past it "
        "RESOURCE_EXHAUSTED",
    )
    query_max_rows_read: int = setting(
        _QUERY.max_rows_read,
        "int",
        "rows one query statement may scan in the store (max_rows_to_read); past it RESOURCE_EXHAUSTED",
    )
    query_max_execution_s: float = setting(
        _QUERY.max_execution_s,
        "duration",
        "longest a query call may run in the store (max_execution_time; the client's deadline may "
        "cut it); past it RESOURCE_EXHAUSTED",
        metavar="DUR",
    )
    raw_ttl_days: int = setting(15, "int", "retention of raw samples, days")
    events_ttl_days: int = setting(30, "int", "retention of events, days")
    logs_ttl_days: int = setting(15, "int", "retention of log records, days")
    rollup_1m_ttl_days: int = setting(90, "int", "retention of the 1-minute rollup, days")
    rollup_1h_ttl_days: int = setting(730, "int", "retention of the 1-hour rollup, days")
    alerts_ttl_days: int = setting(90, "int", "retention of alert transitions and acknowledgements, days")
    cluster: str = setting(
        "",
        "str",
        "ClickHouse cluster: ON CLUSTER DDL, Replicated + Distributed tables (http(s) store only)",
        metavar="NAME",
    )

    def check(self) -> None:
        self.check_security()
        if self.writers < 1:
            raise ConfigError(f"writers {self.writers} must be >= 1")
        for key in ("max_frame_bytes", "max_raw_bytes"):  # an agent's frame must always fit
            if getattr(self, key) < AGENT_FRAME_BYTES:
                raise ConfigError(
                    f"{key} {getattr(self, key)} must be >= {AGENT_FRAME_BYTES} (an agent's largest frame)"
                )
        if self.max_streams_per_peer < 1:
            raise ConfigError(f"max_streams_per_peer {self.max_streams_per_peer} must be >= 1")
        for key in (
            "stream_window",
            "group_max_rows",
            "stream_max_series",
            "stream_max_bytes",
            "stream_state_max_bytes",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} {getattr(self, key)} must be >= 1")
        if self.group_max_age < 0:
            raise ConfigError(f"group_max_age {self.group_max_age} must be >= 0")
        if self.stream_idle_timeout <= 0:
            raise ConfigError(f"stream_idle_timeout {self.stream_idle_timeout} must be > 0")
        for key in (
            "queries",
            "query_max_memory_bytes",
            "query_max_answer_bytes",
            "query_max_groups",
            "query_max_points",
            "query_max_rows_read",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} {getattr(self, key)} must be >= 1")
        if self.query_max_execution_s <= 0:
            raise ConfigError(f"query_max_execution_s {self.query_max_execution_s} must be > 0")
        if self.store_probe_interval <= 0:
            raise ConfigError(f"store_probe_interval {self.store_probe_interval} must be > 0")
        for key in (
            "raw_ttl_days",
            "events_ttl_days",
            "logs_ttl_days",
            "rollup_1m_ttl_days",
            "rollup_1h_ttl_days",
            "alerts_ttl_days",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} {getattr(self, key)} must be >= 1")
        if self.cluster:
            try:
                check_identifier(self.cluster, "cluster")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            if not self.store.startswith(("http://", "https://")):
                raise ConfigError(
                    f"cluster {self.cluster!r} needs a ClickHouse server store (http(s)://...), "
                    f"not {self.store.split(':', 1)[0]}:"
                )

    def check_security(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca (mTLS) needs TLS: give tls_cert and tls_key too")
        if self.auth and not self.tls_cert:
            raise ConfigError(
                "auth needs TLS (tls_cert, tls_key): bearer tokens must not cross the network in plaintext"
            )
        if not is_loopback(self.listen) and not (self.tls_cert and self.auth) and not self.insecure:
            missing = " and ".join(
                w for w, given in (("TLS (--tls-cert, --tls-key)", self.tls_cert), ("--auth", self.auth))
                if not given
            )  # fmt: skip
            raise ConfigError(
                f"listen {self.listen} is not a loopback address: serving it needs {missing}, "
                "or --insecure to serve it without (anyone who reaches the port could write as any "
                "agent and read everything, in plaintext)"
            )
