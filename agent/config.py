"""The agent's configuration: defaults, TOML keys and flags (see ferry.runtime.config)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.agent.checks import parse_checks
from ferry.agent.collectors.filesystem import PSEUDO_FS
from ferry.agent.collectors.process_groups import parse_process_groups
from ferry.agent.collectors.system import COLLECTOR_NAMES
from ferry.agent.scrape.config import parse_scrape
from ferry.agent.spool import FSYNC_POLICIES
from ferry.runtime.config import ConfigError, parse_names, setting
from ferry.runtime.logs import LEVELS


def parse_spec(text: str, what: str = "--synthetic") -> tuple[float, int]:
    rate, sep, total = text.partition(":")
    try:
        if not sep:
            raise ValueError
        r, t = float(rate), int(total)
    except ValueError:
        raise ConfigError(
            f"{what}: {text!r} is not RATE:TOTAL (points/s, 0 = unlimited : point count)"
        ) from None
    if r < 0 or t < 0:
        raise ConfigError(f"{what}: {text!r}: RATE and TOTAL must be >= 0")
    return r, t


def _collector_names(value: Any, where: str) -> list[str]:
    names = parse_names(value, where)
    unknown = [n for n in names if n not in COLLECTOR_NAMES]
    if unknown:
        raise ConfigError(
            f"{where}: unknown collector(s) {', '.join(unknown)} (known: {', '.join(COLLECTOR_NAMES)})"
        )
    return names


@dataclass
class AgentConfig:
    collector: list[str] = setting(
        ["127.0.0.1:4770"],
        "addresses",
        "collector address(es), comma-separated; failover in order",
        metavar="HOST:PORT[,HOST:PORT...]",
    )
    interval: float = setting(10.0, "duration", "collection interval", metavar="DUR")
    jitter: float = setting(
        0.0,
        "duration",
        "collect up to this much after each aligned tick (a fixed offset per agent, so a fleet "
        "does not read /proc and send in the same instant)",
        metavar="DUR",
    )
    collectors: list = setting(
        list(COLLECTOR_NAMES),
        "names",
        f"host collectors to run, comma-separated (of {', '.join(COLLECTOR_NAMES)})",
        metavar="NAME[,NAME...]",
        parse=_collector_names,
    )
    filesystem_exclude_types: list = setting(
        sorted(PSEUDO_FS),
        "names",
        "filesystem types the filesystem collector skips (default: pseudo filesystems)",
        metavar="TYPE[,TYPE...]",
    )
    spool: str = setting(
        "/var/lib/ferry/spool", "str", "spool directory: frames wait here until acked", metavar="DIR"
    )
    spool_max_bytes: int = setting(
        512 * 1024 * 1024,
        "int",
        "spool size bound; past it the oldest unacked frames are dropped and counted",
    )
    spool_fsync: str = setting(
        "frame", "choice", "fsync each frame, or at most every spool_fsync_interval", choices=FSYNC_POLICIES
    )
    spool_fsync_interval: float = setting(1.0, "duration", "with spool_fsync=interval", metavar="DUR")
    synthetic: str = setting(
        "",
        "str",
        "RATE:TOTAL: emit TOTAL ferry_synthetic points at RATE/s "
        "(0 = unlimited) instead of host metrics; resumes from the spool",
        metavar="RATE:TOTAL",
    )
    agent_id: str = setting(
        "", "str", "stable agent id (default: /etc/machine-id, else hostname)", metavar="ID"
    )
    host: str = setting("", "str", "host name reported with every series (default: hostname)")
    local_listen: str = setting(
        "127.0.0.1:4771",
        "optional_address",
        "Local gRPC service for apps on loopback TCP ('' disables)",
        metavar="HOST:PORT",
    )
    local_socket: str = setting(
        "/run/ferry/agent.sock", "str", "Local gRPC unix socket for apps ('' disables)", metavar="PATH"
    )
    metrics_listen: str = setting(
        "127.0.0.1:9471", "optional_address", "self-metrics HTTP address ('' disables)", metavar="HOST:PORT"
    )
    log_level: str = setting("info", "choice", "log level", choices=LEVELS)
    batch_max_points: int = setting(20_000, "int", "cut a frame at this many points")
    batch_max_age: float = setting(
        10.0, "duration", "cut a frame when its oldest point is this old", metavar="DUR"
    )
    send_window: int = setting(32, "int", "unacked frames in flight per stream")
    process_top_n: int = setting(
        10, "int", "per-process metrics for the top N by CPU and the top N by memory (0: none)"
    )
    processes: list = setting(
        [],
        "processes",
        "process groups reported whatever their rank, as [[processes]] tables (config file only)",
        flag=False,
        parse=parse_process_groups,
    )
    checks: list = setting(
        [], "checks", "health checks, as [[checks]] tables (config file only)", flag=False, parse=parse_checks
    )
    scrape: list = setting(
        [],
        "scrape",
        "Prometheus endpoints to scrape, as [[scrape]] tables (config file only)",
        flag=False,
        parse=parse_scrape,
    )
    labels: dict = setting({}, "labels", "extra labels on every series (config file only)", flag=False)

    def check(self) -> None:
        if self.batch_max_points < 1:
            raise ConfigError(f"batch_max_points {self.batch_max_points} must be >= 1")
        if self.send_window < 1:
            raise ConfigError(f"send_window {self.send_window} must be >= 1")
        if self.spool_max_bytes < 64 * 1024:
            raise ConfigError(f"spool_max_bytes {self.spool_max_bytes} must be >= 65536")
        if self.jitter > self.interval:
            raise ConfigError(f"jitter {self.jitter:g}s must not exceed interval {self.interval:g}s")
        if self.process_top_n > 1000:
            raise ConfigError(f"process_top_n {self.process_top_n} must be <= 1000")
        if self.synthetic:
            parse_spec(self.synthetic)


def default_agent_id(machine_id: Path = Path("/etc/machine-id")) -> str:
    try:
        value = machine_id.read_text().strip()
    except OSError:
        value = ""
    return value or socket.gethostname()
