"""The bookkeeping of ingest streams: what streams are counted by per peer, their limits, the
log of rejected frames, and the markers that end a stream (`Abort`, `BadMessage`)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import unquote

import grpc

from ferry.collector.agents import peer_address
from ferry.collector.config import CollectorConfig

log = logging.getLogger("ferry.collector.ingest")
REJECT_LOG_INTERVAL_S = 10.0


def peer_key(peer: str) -> str:
    """What streams are counted by for `max_streams_per_peer`: the peer's host, without its port
    ('ipv4:10.0.0.5:40122' → '10.0.0.5', 'ipv6:[::1]:5000' → '[::1]'). One function, so that it
    can become the authenticated identity once agents have credentials."""
    address = unquote(peer_address(peer))  # grpc percent-encodes the brackets of ipv6 peers
    host, sep, _ = address.rpartition(":")
    return host if sep else address


_DEFAULTS = CollectorConfig()


@dataclass(frozen=True)
class StreamLimits:
    """The collector's stream settings (CollectorConfig declares them and their defaults)."""

    max_streams: int = _DEFAULTS.max_streams
    max_streams_per_peer: int = _DEFAULTS.max_streams_per_peer
    idle_timeout_s: float = _DEFAULTS.stream_idle_timeout
    window: int = _DEFAULTS.stream_window


class RejectLog:
    """One warning per peer per interval for rejected frames, naming how many went unlogged."""

    def __init__(self, interval_s: float = REJECT_LOG_INTERVAL_S, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # peer key → (last logged, suppressed since)
        self._lock = threading.Lock()  # Push calls come on grpc's threads, streams on the loop

    def rejected(self, key: str, what: str) -> None:
        now = self.clock()
        with self._lock:
            last, suppressed = self._last.get(key, (None, 0))
            if last is not None and now - last < self.interval_s:
                self._last[key] = (last, suppressed + 1)
                return
            self._last[key] = (now, 0)
            if len(self._last) > 10_000:  # peers come and go: forget the oldest half
                for k in list(self._last)[:5_000]:
                    del self._last[k]
        more = f" ({suppressed} more rejected from {key} since the last of these lines)" if suppressed else ""
        log.warning("%s%s", what, more)


def status_of(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode whose number is `code` (INVALID_ARGUMENT if none is)."""
    return next((s for s in grpc.StatusCode if s.value[0] == code), grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True)
class Abort:
    """End the stream with this status (after the answers queued before it)."""

    code: grpc.StatusCode
    message: str


@dataclass(frozen=True)
class BadMessage:
    """A stream message that is not a Frame: the handler ends the stream with INVALID_ARGUMENT
    (from its own body: aborting inside the request iterator could surface as INTERNAL)."""

    message: str
