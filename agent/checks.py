"""Health checks: `http` (status, optional body match), `tcp` (connect) and `command` (exit code).

Configured as `[[checks]]` tables with keys name, type, url / address / command, interval,
timeout, retries (and for http: expect_status, body_match). Each check runs on its own schedule
on the agent's event loop; an attempt that fails is retried at once up to `retries` times, and
the result is `check.up` (1/0) and `check.duration` (ms of the last attempt), labelled by check
name, type and target.

Owns its configuration: `CheckKeys` declares a table's keys (parsed by ferry.runtime.tables,
documented in docs/configuration.md), `ChecksConfig` the `checks` key composed into the agent's,
and `build` the `CheckService` ferry.agent.wiring runs and restarts on reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry.agent import catalogue as c
from ferry.agent.intake import Intake
from ferry.runtime.config import ConfigError, setting
from ferry.runtime.tables import Section, tables
from ferry.series import SeriesDef

log = logging.getLogger("ferry.agent.checks")
TARGET_KEY = {"http": "url", "tcp": "address", "command": "command"}
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,100}")


@dataclass(frozen=True)
class CheckConfig:
    name: str
    type: str
    target: str
    interval: float = 30.0
    timeout: float = 5.0
    retries: int = 0
    expect_status: int = 0  # http: 0 = any 2xx or 3xx
    body_match: str = ""  # http: a regex the body must contain


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} must match {_NAME.pattern}")
    return value


def _type(value: Any, what: str) -> str:
    if value not in TARGET_KEY:
        raise ConfigError(f"{what} is {value!r}, not one of {', '.join(TARGET_KEY)}")
    return value


def _retries(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ConfigError(f"{what} {value!r} must be an integer from 0 to 10")
    return value


def _regex(value: Any, what: str) -> str:
    try:
        re.compile(value)
    except (re.error, TypeError) as exc:
        raise ConfigError(f"{what} {value!r} is not a regex: {exc}") from None
    return value


def _as_given(value: Any, what: str) -> Any:
    return value  # the check's target: `build` says what is wrong with it, naming the type


@dataclass
class CheckKeys:
    """The keys of one `[[checks]]` table."""

    name: str = setting(None, help=f"the check's name label ({_NAME.pattern})", parse=_name, required=True)
    type: str = setting(None, help="http, tcp or command", parse=_type, required=True)
    url: str = setting(
        None, help="http: the url to GET (http:// or https://)", parse=_as_given, only=("http",)
    )
    address: str = setting(None, help="tcp: HOST:PORT to connect to", parse=_as_given, only=("tcp",))
    command: str = setting(
        None, help="command: a shell command; exit status 0 passes", parse=_as_given, only=("command",)
    )
    interval: float = setting(30.0, "duration", "time between runs")
    timeout: float = setting(5.0, "duration", "time one attempt may take")
    retries: int = setting(0, "int", help="attempts after a failed one, at once (0 to 10)", parse=_retries)
    expect_status: int = setting(0, "int", "http: the status that passes (0: any 2xx or 3xx)", only=("http",))
    body_match: str = setting(
        "", "regex", help="http: a regex the body must contain", parse=_regex, only=("http",)
    )


def _check(values: dict[str, Any], at: str, earlier: list[CheckConfig]) -> CheckConfig:
    kind, name = values["type"], values["name"]
    if any(c.name == name for c in earlier):
        raise ConfigError(f"{at}: key 'name' {name!r} is used by another check")
    target_key = TARGET_KEY[kind]
    target = values[target_key]
    if not isinstance(target, str) or not target:
        raise ConfigError(f"{at}: key {target_key!r} is required for a {kind} check")
    if kind == "http" and not target.startswith(("http://", "https://")):
        raise ConfigError(f"{at}: key 'url' {target!r} must start with http:// or https://")
    return CheckConfig(
        name=name,
        type=kind,
        target=target,
        interval=values["interval"],
        timeout=values["timeout"],
        retries=values["retries"],
        expect_status=values.get("expect_status") or 0,
        body_match=values.get("body_match") or "",
    )


parse_checks = Section("checks", CheckKeys, _check, kind="type", noun="check")


@dataclass
class ChecksConfig:
    """Health checks."""

    checks: list = tables(parse_checks, "health checks, as [[checks]] tables (config file only)")


async def attempt(check: CheckConfig) -> tuple[bool, str]:
    """One attempt: (passed, why not)."""
    if check.type == "tcp":
        host, _, port = check.target.rpartition(":")
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), check.timeout
        )
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True, ""
    if check.type == "command":
        proc = await asyncio.create_subprocess_shell(
            check.target,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so a timeout kills what it started too
        )
        try:
            code = await asyncio.wait_for(proc.wait(), check.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise
        return code == 0, f"exit status {code}"
    return await asyncio.to_thread(_http, check)


def _http(check: CheckConfig) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(check.target, timeout=check.timeout) as resp:
            status, body = resp.status, resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, b""
    ok = status == check.expect_status if check.expect_status else 200 <= status < 400
    if not ok:
        return False, f"status {status}"
    if check.body_match and not re.search(check.body_match, body.decode(errors="replace")):
        return False, f"body does not match {check.body_match!r}"
    return True, ""


class CheckRunner:
    def __init__(
        self, checks: list[CheckConfig], emit: Callable[[list[tuple[SeriesDef, int, float]]], object]
    ):
        self.checks = checks
        self.emit = emit

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(self._loop(check, stop) for check in self.checks))

    async def _loop(self, check: CheckConfig, stop: asyncio.Event) -> None:
        labels = (check.name, check.target, check.type)
        up_series, duration_series = c.CHECK_UP.series(labels), c.CHECK_DURATION.series(labels)
        while not stop.is_set():
            started_at = time.time()
            up, elapsed = await self.run_once(check)
            t_ms = int(started_at * 1000)
            self.emit([(up_series, t_ms, 1.0 if up else 0.0), (duration_series, t_ms, elapsed * 1000)])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=check.interval)

    @staticmethod
    async def run_once(check: CheckConfig) -> tuple[bool, float]:
        why = ""
        elapsed = 0.0
        for _ in range(check.retries + 1):
            started = time.perf_counter()
            try:
                ok, why = await attempt(check)
            except (OSError, TimeoutError, ValueError) as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            if ok:
                return True, elapsed
        log.warning("check %s (%s %s) failed: %s", check.name, check.type, check.target, why)
        return False, elapsed


class CheckService:
    """The check runner as the agent runs it: on the event loop, restarted with the new checks
    when a reload changes them."""

    def __init__(self, checks: list[CheckConfig], submit: Callable[[Intake], object]):
        self.checks = checks
        self.submit = submit
        self._running: tuple[asyncio.Event, asyncio.Task] | None = None

    def _emit(self, points: list[tuple[SeriesDef, int, float]]) -> None:
        self.submit(Intake(points=points))

    async def start(self) -> None:
        stop = asyncio.Event()
        self._running = (stop, asyncio.create_task(CheckRunner(self.checks, self._emit).run(stop)))

    async def stop(self) -> None:
        if self._running is not None:
            stop, task = self._running
            stop.set()
            await task
            self._running = None

    async def apply(self, cfg: ChecksConfig) -> None:
        await self.stop()
        self.checks = cfg.checks
        await self.start()


def build(cfg: ChecksConfig, submit: Callable[[Intake], object]) -> CheckService:
    return CheckService(cfg.checks, submit)
