"""`[[scrape]]` tables: which Prometheus endpoints the agent scrapes, and how often.

Keys: `job` (required: the `job` label), `url` (http:// or https://), `interval` (default 15s),
`timeout` (default the smaller of 10s and the interval; at most the interval) and `labels` (a
table added to every sample of the target). The `instance` label is the url's host:port (the
scheme's port when the url has none; never the url's user or password). Two targets with the
same (job, instance) are refused: their series would be indistinguishable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ferry.limits import LABEL_KEY_RE, Limits
from ferry.runtime.config import ConfigError, array_of_tables, parse_duration

DEFAULT_INTERVAL_S = 15.0
MAX_TIMEOUT_S = 10.0
_JOB = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")
_KEYS = frozenset(("job", "url", "interval", "timeout", "labels"))
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


def parse_scrape(value: Any, where: str) -> list[ScrapeTarget]:
    """Validate the `[[scrape]]` tables; errors name the file, line, table and key."""
    targets: list[ScrapeTarget] = []
    seen: dict[tuple[str, str], str] = {}
    for at, table in array_of_tables(value, where, "scrape"):
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(
                f"{at}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KEYS))})"
            )
        job = table.get("job")
        if not isinstance(job, str) or not _JOB.fullmatch(job):
            raise ConfigError(f"{at}: key 'job' {job!r} is required and must match {_JOB.pattern}")
        url = _url(table.get("url"), at)
        interval = parse_duration(table.get("interval", DEFAULT_INTERVAL_S), f"{at}: key 'interval'")
        timeout = parse_duration(table.get("timeout", min(MAX_TIMEOUT_S, interval)), f"{at}: key 'timeout'")
        if timeout > interval:
            raise ConfigError(f"{at}: key 'timeout' {timeout:g}s must not exceed the interval {interval:g}s")
        target = ScrapeTarget(job, url, interval, timeout, _labels(table.get("labels", {}), at))
        ident = (job, target.instance)
        if ident in seen:
            raise ConfigError(
                f"{at}: job {job!r} already scrapes instance {target.instance} ({seen[ident]}); "
                "give one of them another job"
            )
        seen[ident] = url
        targets.append(target)
    return targets


def _url(url: Any, at: str) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"{at}: key 'url' is required (e.g. http://127.0.0.1:9100/metrics)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ConfigError(f"{at}: key 'url' {url!r} is not a url: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{at}: key 'url' {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ConfigError(f"{at}: key 'url' {url!r} has no host")
    return url


def _labels(value: Any, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{at}: key 'labels' must be a table of strings, e.g. labels = {{ env = 'prod' }}")
    limits = Limits()
    for key, v in value.items():
        if key in RESERVED_LABELS:
            raise ConfigError(
                f"{at}: key 'labels': {key!r} is set by the agent (job from the 'job' key, "
                "instance from the url's host:port)"
            )
        if not LABEL_KEY_RE.fullmatch(key) or len(key) > limits.max_label_key_len:
            raise ConfigError(
                f"{at}: key 'labels': label {key!r} must match {LABEL_KEY_RE.pattern}, "
                f"at most {limits.max_label_key_len} chars"
            )
        if not isinstance(v, str):
            raise ConfigError(f"{at}: key 'labels': value of {key!r} is {v!r}, not a string")
        if len(v.encode()) > limits.max_label_value_bytes:
            raise ConfigError(
                f"{at}: key 'labels': value of {key!r} is {len(v.encode())} bytes "
                f"> {limits.max_label_value_bytes} allowed"
            )
    if len(value) + len(RESERVED_LABELS) > limits.max_labels:
        raise ConfigError(
            f"{at}: key 'labels': {len(value)} labels + job and instance > {limits.max_labels} allowed"
        )
    return tuple(sorted(value.items()))
