"""One receiver's way out: a bounded queue of notifications and the task that sends them, one at
a time and in order, each attempt in the receiver's own thread (urllib or smtplib, bounded by the
receiver's `timeout`), so a receiver that hangs holds only its own thread and queue.

A failed attempt is retried up to `max_retries` times after an exponential, jittered and
bounded backoff; a refusal that cannot change (HTTP 4xx other than 408 and 429, SMTP 5xx) is not
retried. A notification given up on is counted `failed` and logged; a full queue drops its
oldest notification, counted `dropped`. ferry_collector_notifications_total{receiver,outcome}.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import orjson

from ferry.collector import selfmetrics as m
from ferry.collector.alerting.notify import payloads
from ferry.collector.alerting.notify.config import Receiver
from ferry.collector.alerting.notify.payloads import Notification

log = logging.getLogger("ferry.collector.alerting.notify")

QUEUE_BOUND = 100  # notifications waiting per receiver
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
ALERTMANAGER_PATH = "/api/v2/alerts"


class Permanent(Exception):
    """A refusal another attempt would get again (HTTP 400, SMTP 550): not retried."""


def backoff(attempt: int, base_s: float, max_s: float, rng: Callable[[], float] = random.random) -> float:
    """The wait before retry `attempt` (1, 2, ...): base x 2^(attempt-1), at most max_s, then a
    random half of it taken off (so receivers failing together do not retry together)."""
    full = min(max_s, base_s * 2 ** (attempt - 1))
    return full * (0.5 + 0.5 * rng())


def post_json(url: str, body: object, timeout: float) -> int:
    """POST body as JSON; the status. Raises Permanent for a 4xx but 408 and 429."""
    data = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "ferry"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            resp.read(1 << 16)
            return resp.status
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace").strip()
        message = f"{url}: HTTP {exc.code}" + (f": {detail}" if detail else "")
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise Permanent(message) from None
        raise OSError(message) from None


def send_email(receiver: Receiver, n: Notification) -> None:
    msg = payloads.email_message(n, receiver.sender, receiver.to)
    try:
        with smtplib.SMTP(receiver.smtp_host, receiver.smtp_port, timeout=receiver.timeout) as smtp:
            if receiver.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if receiver.username:
                smtp.login(receiver.username, receiver.password())
            smtp.send_message(msg, receiver.sender, list(receiver.to))
    except smtplib.SMTPRecipientsRefused as exc:
        raise Permanent(f"{receiver.smtp_host}:{receiver.smtp_port}: recipients refused: {exc}") from None
    except smtplib.SMTPResponseException as exc:
        text = f"{receiver.smtp_host}:{receiver.smtp_port}: SMTP {exc.smtp_code} {exc.smtp_error!r}"
        if exc.smtp_code >= 500:
            raise Permanent(text) from None
        raise OSError(text) from None


def send(receiver: Receiver, n: Notification, generator_url: str = "") -> None:
    """One attempt to deliver `n`, blocking (called in the receiver's thread)."""
    if receiver.type == "webhook":
        post_json(receiver.url, payloads.webhook_body(n), receiver.timeout)
    elif receiver.type == "slack":
        post_json(receiver.url, payloads.slack_body(n), receiver.timeout)
    elif receiver.type == "alertmanager":
        body = payloads.alertmanager_body(n, generator_url)
        post_json(receiver.url + ALERTMANAGER_PATH, body, receiver.timeout)
    elif receiver.type == "email":
        send_email(receiver, n)
    else:
        raise Permanent(f"receiver type {receiver.type!r} has no sender")


class Channel:
    """A receiver's queue and sender. `put` never blocks; `run` sends until `stop` is set."""

    def __init__(
        self,
        receiver: Receiver,
        bound: int = QUEUE_BOUND,
        backoff_s: tuple[float, float] = (BACKOFF_BASE_S, BACKOFF_MAX_S),
        generator_url: str = "",
        rng: Callable[[], float] = random.random,
    ):
        self.receiver = receiver
        self.bound = bound
        self.backoff_s = backoff_s
        self.generator_url = generator_url
        self.rng = rng
        self.queue: deque[Notification] = deque()
        self._wake = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None

    def put(self, n: Notification) -> None:
        if len(self.queue) >= self.bound:
            old = self.queue.popleft()
            self._count("dropped")
            log.warning(
                "receiver %s: queue full (%d notifications waiting): dropped the oldest (%s, %d alerts)",
                self.receiver.name, self.bound, old.status, len(old.alerts),
            )  # fmt: skip
        self.queue.append(n)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"ferry-notify-{self.receiver.name}")
        try:
            while not stop.is_set():
                if not self.queue:
                    self._wake.clear()
                    await first_set(self._wake, stop)
                    continue
                await self.deliver(self.queue.popleft(), stop)
        finally:
            # a send blocked in its thread ends within its timeout; nobody waits for it
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def deliver(self, n: Notification, stop: asyncio.Event) -> bool:
        """Send with retries; whether it was delivered."""
        r = self.receiver
        loop = asyncio.get_running_loop()
        for attempt in range(r.max_retries + 1):
            started = time.perf_counter()
            try:
                await loop.run_in_executor(self._executor, send, r, n, self.generator_url)
            except Permanent as exc:
                self._observe(started)
                return self._give_up(n, attempt + 1, exc)
            except Exception as exc:
                self._observe(started)
                if attempt == r.max_retries:
                    return self._give_up(n, attempt + 1, exc)
                wait = backoff(attempt + 1, *self.backoff_s, self.rng)
                self._count("retried")
                log.info(
                    "receiver %s: attempt %d of %d failed (%s); retrying in %.2fs",
                    r.name, attempt + 1, r.max_retries + 1, exc, wait,
                )  # fmt: skip
                if await first_set(stop, timeout=wait):
                    return self._give_up(n, attempt + 1, "stopping")
                continue
            self._observe(started)
            self._count("sent")
            names = ", ".join(sorted({a.labels.get("alertname", "") for a in n.alerts}))
            log.info("receiver %s: sent %s notification of %d alerts (%s)", r.name, n.status, len(n.alerts),
                     names)  # fmt: skip
            return True
        return False

    def _give_up(self, n: Notification, attempts: int, why: object) -> bool:
        self._count("failed")
        log.warning(
            "receiver %s: %s notification of %d alerts not delivered after %d attempt(s): %s",
            self.receiver.name, n.status, len(n.alerts), attempts, why,
        )  # fmt: skip
        return False

    def _count(self, outcome: str) -> None:
        m.NOTIFICATIONS.labels(self.receiver.name, outcome).inc()

    def _observe(self, started: float) -> None:
        m.NOTIFICATION_SECONDS.labels(self.receiver.name).observe(time.perf_counter() - started)


async def first_set(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of the events is set (or the timeout passes); whether one was."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waits, return_exceptions=True)
    return bool(done)
