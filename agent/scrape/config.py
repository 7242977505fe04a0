"""`[[scrape]]` tables: which Prometheus endpoints the agent scrapes, and how often.

Keys: `job` (required: the `job` label), `url` (http:// or https://), `interval` (default 15s),
`timeout` (default the smaller of 10s and the interval; at most the interval) and `labels` (a
table added to every sample of the target). The `instance` label is the url's host:port (the
scheme's port when the url has none; never the url's user or password). Two targets with the
same (job, instance) are refused: their series would be indistinguishable.

`ScrapeKeys` declares a table's keys (parsed by ferry.runtime.tables, documented in
docs/configuration.md), `ScrapeConfig` the `scrape` key composed into the agent's, and `build`
the `ScrapeService` ferry.agent.wiring runs and restarts on reload.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ferry.agent.intake import Intake
from ferry.limits import LABEL_KEY_RE, Limits
from ferry.runtime.config import ConfigError, setting
from ferry.runtime.tables import Section, tables

DEFAULT_INTERVAL_S = 15.0
MAX_TIMEOUT_S = 10.0
_JOB = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
RESERVED_LABELS = ("job", "instance")  # set from the `job` key and the url


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    url: str
    interval: float = DEFAULT_INTERVAL_S
    timeout: float = MAX_TIMEOUT_S
    labels: tuple[tuple[str, str], ...] = ()  # sorted; hashable, so a reload can compare targets

    @property
    def instance(self) -> str:
        return instance_of(self.url)

    @property
    def key(self) -> tuple:
        """What a target is known by across reloads: its state (validated series, histogram
        totals) is kept under it. Not the interval or timeout: changing those keeps the state."""
        return self.job, self.url, self.labels


def instance_of(url: str) -> str:
    """host:port of an http(s) url, [v6]:port for IPv6 hosts."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def _url(url: Any, what: str) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{what} is required (e.g. http://127.0.0.1:9100/metrics)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError(f"{what} {url!r} is not a url: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{what} {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError(f"{what} {url!r} has no host")
    return url


def _labels(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a table of strings, e.g. labels = {{ env = 'prod' }}")
    limits = Limits()
    for key, v in value.items():
        if key in RESERVED_LABELS:
            raise ConfigError(
                f"{what}: {key!r} is set by the agent (job from the 'job' key, "
                "instance from the url's host:port)"
            )
        if not LABEL_KEY_RE.fullmatch(key) or len(key) > limits.max_label_key_len:
            raise ConfigError(
                f"{what}: label {key!r} must match {LABEL_KEY_RE.pattern}, "
                f"at most {limits.max_label_key_len} chars"
            )
        if not isinstance(v, str):
            raise ConfigError(f"{what}: value of {key!r} is {v!r}, not a string")
        if len(v.encode()) > limits.max_label_value_bytes:
            raise ConfigError(
                f"{what}: value of {key!r} is {len(v.encode())} bytes "
                f"> {limits.max_label_value_bytes} allowed"
            )
    if len(value) + len(RESERVED_LABELS) > limits.max_labels:
        raise ConfigError(f"{what}: {len(value)} labels + job and instance > {limits.max_labels} allowed")
    return tuple(sorted(value.items()))


def _job(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _JOB.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is required and must match {_JOB.pattern}")
    return value


@dataclass
class ScrapeKeys:
    """The keys of one `[[scrape]]` table."""

    job: str = setting(None, help=f"the `job` label ({_JOB.pattern})", parse=_job, required=True)
    url: str = setting(
        None,
        help="the endpoint, http:// or https://; its host:port is the `instance` label",
        parse=_url,
        required=True,
    )
    interval: float = setting(DEFAULT_INTERVAL_S, "duration", "time between scrapes")
    timeout: float = setting(
        None,
        "duration",
        f"time a scrape may take (default: the smaller of {MAX_TIMEOUT_S:g}s and the "
        "interval; at most the interval)",
    )
    labels: dict = setting({}, "labels", help="a table of labels added to every sample", parse=_labels)


def _target(values: dict[str, Any], at: str, earlier: list[ScrapeTarget]) -> ScrapeTarget:
    interval = values["interval"]
    timeout = values["timeout"] if values["timeout"] is not None else min(MAX_TIMEOUT_S, interval)
    if timeout > interval:
        raise ConfigError(f"{at}: key 'timeout' {timeout:g}s must not exceed the interval {interval:g}s")
    target = ScrapeTarget(values["job"], values["url"], interval, timeout, values["labels"])
    for other in earlier:
        if (other.job, other.instance) == (target.job, target.instance):
            raise ConfigError(
                f"{at}: job {target.job!r} already scrapes instance {target.instance} ({other.url}); "
                "give one of them another job"
            )
    return target


parse_scrape = Section("scrape", ScrapeKeys, _target)


@dataclass
class ScrapeConfig:
    """Prometheus endpoints the agent scrapes."""

    scrape: list = tables(
        parse_scrape, "Prometheus endpoints to scrape, as [[scrape]] tables (config file only)"
    )


class ScrapeService:
    """The scraper as the agent runs it (ferry.agent.wiring builds it): one runner task over the
    targets, restarted with the new ones when a reload changes them. Each target's state
    (validated series, histogram totals) is kept in `states` across those restarts. The runner
    (the parser, the mapping, the HTTP client) is imported only when there is a target."""

    def __init__(self, targets: list[ScrapeTarget], submit: Callable[[Intake], object]):
        self.targets = targets
        self.submit = submit
        self.states: dict = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        if not self.targets:
            self.states.clear()  # as a runner of no targets would: no totals to keep
            return
        from ferry.agent.scrape.runner import ScrapeRunner

        self._task = asyncio.create_task(ScrapeRunner(self.targets, self.submit, self.states).run())

    async def stop(self) -> None:
        if self._task is not None:
            from ferry.agent.scrape.runner import stop_task

            await stop_task(self._task)
            self._task = None

    async def apply(self, cfg: ScrapeConfig) -> None:
        await self.stop()
        self.targets = cfg.scrape
        await self.start()


def build(cfg: ScrapeConfig, submit: Callable[[Intake], object]) -> ScrapeService:
    return ScrapeService(cfg.scrape, submit)
