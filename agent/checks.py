"""Health checks: `http` (status, optional body match), `tcp` (connect) and `command` (exit code).

Configured as `[[checks]]` tables with keys name, type, url / address / command, interval,
timeout, retries (and for http: expect_status, body_match). Each check runs on its own schedule
on the agent's event loop; an attempt that fails is retried at once up to `retries` times, and
the result is `check.up` (1/0) and `check.duration` (ms of the last attempt), labelled by check
name, type and target.
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
from ferry.runtime.config import ConfigError, array_of_tables, parse_duration
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


def parse_checks(value: Any, where: str) -> list[CheckConfig]:
    """Validate the `[[checks]]` tables; errors name the table's position and key."""
    checks, names = [], set()
    for at, table in array_of_tables(value, where, "checks"):
        kind = table.get("type")
        if kind not in TARGET_KEY:
            raise ConfigError(f"{at}: key 'type' is {kind!r}, not one of http, tcp, command")
        target_key = TARGET_KEY[kind]
        allowed = {"name", "type", target_key, "interval", "timeout", "retries"}
        if kind == "http":
            allowed |= {"expect_status", "body_match"}
        unknown = set(table) - allowed
        if unknown:
            raise ConfigError(f"{at}: unknown key(s) {', '.join(sorted(unknown))} for a {kind} check")
        name = table.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{at}: key 'name' {name!r} must match {_NAME.pattern}")
        if name in names:
            raise ConfigError(f"{at}: key 'name' {name!r} is used by another check")
        names.add(name)
        target = table.get(target_key)
        if not isinstance(target, str) or not target:
            raise ConfigError(f"{at}: key {target_key!r} is required for a {kind} check")
        if kind == "http" and not target.startswith(("http://", "https://")):
            raise ConfigError(f"{at}: key 'url' {target!r} must start with http:// or https://")
        retries = table.get("retries", 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ConfigError(f"{at}: key 'retries' {retries!r} must be an integer from 0 to 10")
        body_match = table.get("body_match", "")
        try:
            re.compile(body_match)
        except re.error as exc:
            raise ConfigError(f"{at}: key 'body_match' {body_match!r} is not a regex: {exc}") from None
        checks.append(
            CheckConfig(
                name=name,
                type=kind,
                target=target,
                interval=parse_duration(table.get("interval", "30s"), f"{at}: key 'interval'"),
                timeout=parse_duration(table.get("timeout", "5s"), f"{at}: key 'timeout'"),
                retries=retries,
                expect_status=int(table.get("expect_status", 0)),
                body_match=body_match,
            )
        )
    return checks


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
