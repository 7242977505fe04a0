"""The agent's configuration, composed from the config dataclasses its components own.

Each component declares its keys once, as a dataclass of `setting`s (ferry.runtime.config) in
its own module: the host collectors (ferry.agent.collectors.system and the collector modules),
the checks, the scraper, the Local service, the spool, the synthetic source, the schedule; the
few keys of the agent itself (where to send, batching, identity, logging) are declared here.
`COMPONENTS` lists them with what a SIGHUP reload does when their keys change, and
`AgentConfig` is the flat view of all their keys that the file, the flags and the configuration
reference (ferry.runtime.configdoc) read. Used by ferry.agent.main, ferry.agent.wiring and
ferry.agent.reload.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from ferry.agent.checks import ChecksConfig
from ferry.agent.collectors.system import HOST_COLLECTORS, HostConfig
from ferry.agent.credentials import CredentialsConfig
from ferry.agent.local.config import LocalConfig, LocalTokenConfig
from ferry.agent.otlp.config import OtlpConfig
from ferry.agent.redact import RedactConfig
from ferry.agent.schedule import ScheduleConfig
from ferry.agent.scrape.config import ScrapeConfig
from ferry.agent.spool import SpoolConfig
from ferry.agent.synthetic import SyntheticConfig
from ferry.runtime.config import ConfigError, check_parts, setting
from ferry.runtime.logs import LEVELS


@dataclass
class SenderConfig:
    """Where frames go."""

    collector: list[str] = setting(
        ["127.0.0.1:4770"],
        "addresses",
        "collector address(es), comma-separated; failover in order",
        metavar="HOST:PORT[,HOST:PORT...]",
    )
    send_window: int = setting(32, "int", "unacked frames in flight per stream")
    stream_encoding: bool = setting(
        True,
        "bool",
        "ask collectors for the stateful stream encoding (series sent once per stream, values "
        "against the last, zstd); off, or with a collector that does not take it: self-contained frames",
    )

    def check(self) -> None:
        if self.send_window < 1:
            raise ConfigError(f"send_window {self.send_window} must be >= 1")


@dataclass
class IdentityConfig:
    """Who the agent is."""

    agent_id: str = setting(
        "", "str", "stable agent id (default: /etc/machine-id, else hostname)", metavar="ID"
    )


@dataclass
class BatchConfig:
    """What every frame carries, and when a frame is cut."""

    host: str = setting("", "str", "host name reported with every series (default: hostname)")
    batch_max_points: int = setting(20_000, "int", "cut a frame at this many points")
    batch_max_age: float = setting(
        10.0, "duration", "cut a frame when its oldest point is this old", metavar="DUR"
    )
    labels: dict = setting({}, "labels", "extra labels on every series (config file only)", flag=False)

    def check(self) -> None:
        if self.batch_max_points < 1:
            raise ConfigError(f"batch_max_points {self.batch_max_points} must be >= 1")


@dataclass
class SelfMetricsConfig:
    """The agent's own metrics."""

    metrics_listen: str = setting(
        "127.0.0.1:9471", "optional_address", "self-metrics HTTP address ('' disables)", metavar="HOST:PORT"
    )


@dataclass
class LogConfig:
    """Logging."""

    log_level: str = setting("info", "choice", "log level", choices=LEVELS)


@dataclass(frozen=True)
class Component:
    """A part of the configuration: the dataclass declaring its keys, and what a reload that
    changes them redoes in the running agent ('': nothing can, the change needs a restart)."""

    config: type
    reload: str = ""


COMPONENTS = (
    Component(SenderConfig),  # the channels are open
    Component(CredentialsConfig, "credentials"),  # the files are read again on every SIGHUP anyway
    Component(ScheduleConfig, "schedule"),
    Component(HostConfig, "collectors"),
    # each host collector's own keys: rebuilding the collectors keeps those whose keys did not change
    *(Component(c.config, "collectors") for c in HOST_COLLECTORS if c.config is not None),
    Component(ChecksConfig, "checks"),
    Component(ScrapeConfig, "scrape"),
    Component(RedactConfig, "redact"),
    Component(LocalConfig),  # the listeners are bound
    Component(LocalTokenConfig, "local"),  # read again on every SIGHUP
    Component(OtlpConfig),  # the listener is bound
    Component(SpoolConfig),  # the spool is open
    Component(SyntheticConfig),
    Component(IdentityConfig),  # the spool's frames carry it
    Component(BatchConfig, "batch"),
    Component(SelfMetricsConfig),
    Component(LogConfig, "log"),
)


@dataclass
class AgentConfig(*(c.config for c in reversed(COMPONENTS))):  # fields in COMPONENTS order
    """Every key of the agent, from its components' config dataclasses."""

    def check(self) -> None:
        check_parts(self)


def default_agent_id(machine_id: Path = Path("/etc/machine-id")) -> str:
    try:
        value = machine_id.read_text().strip()
    except OSError:
        value = ""
    return value or socket.gethostname()
