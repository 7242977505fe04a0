"""The recording calls both clients share. Each guards the app from any error of ours."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc

from ferry.client.auth import LocalToken
from ferry.client.buffer import CLOSED, ERROR, INVALID, Buffer
from ferry.client.outbox import Outbox
from ferry.client.stats import Stats, invalid_logger

log = logging.getLogger("ferry.client")


class Recorder:
    """`target` is "unix:/run/ferry/agent.sock" or "127.0.0.1:4771". `service` names the app in
    its events and logs. Sends every `flush_interval` seconds, or sooner when `batch_size`
    gauges, events and logs wait. At most `max_queue` of those wait (and as many again for a
    retry while the agent is unreachable), and at most `max_series` counter and histogram series
    are summed between sends; past that, records are dropped and counted (`stats()`).
    When the agent has a `local_token_file`, give its token as `token=` or `token_file=`, or in
    the environment variable FERRY_LOCAL_TOKEN (that order: the first one given wins); records
    the agent refuses UNAUTHENTICATED are kept and sent again like those of any failed send."""

    _wake_pending: bool = False  # set when a wake was asked for; the sender clears it on drain

    def __init__(
        self,
        target: str,
        *,
        service: str = "",
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        max_series: int = 10_000,
        batch_size: int = 10_000,
        token: str | None = None,
        token_file: str | None = None,
    ):
        self.target = target
        self._token = LocalToken(token, token_file)
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._buffer = Buffer(max_queue, max_series, service, on_invalid=invalid_logger(log))
        self._outbox = Outbox(self._buffer, max_queue)
        self._closed = False

    def stats(self) -> Stats:
        return Stats.of(self._buffer, self._outbox)

    def _wake_sender(self) -> None:
        raise NotImplementedError

    def _send_failed(self, request, exc: grpc.RpcError) -> None:
        """A send the agent did not answer with an ack (the outbox decides: retry or drop)."""
        self._outbox.failed(request, exc)
        if getattr(exc, "code", None) and exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            self._token.refused(exc.details() or "")

    def counter(self, name: str, value: float = 1.0, labels: Mapping | None = None) -> None:
        """Add `value` (>= 0) to a counter; sent as one DELTA record per series per flush."""
        try:
            if self._closed:
                self._buffer.drop(CLOSED)
            else:
                self._buffer.counter(name, value, labels)
        except (TypeError, ValueError) as exc:  # e.g. a value that is not a number
            self._buffer.drop(INVALID, f"{exc}")
        except Exception:  # an error of ours: counted, never raised into the app
            self._buffer.drop(ERROR)

    def gauge(self, name: str, value: float, labels: Mapping | None = None) -> None:
        """A value at this instant (stamped now)."""
        try:
            if self._closed:
                self._buffer.drop(CLOSED)
            else:
                self._buffer.gauge(name, value, labels)
                self._maybe_wake()
        except (TypeError, ValueError) as exc:  # e.g. a value that is not a number
            self._buffer.drop(INVALID, f"{exc}")
        except Exception:  # an error of ours: counted, never raised into the app
            self._buffer.drop(ERROR)

    def histogram(self, name: str, value: float, labels: Mapping | None = None, buckets=None) -> None:
        """One observation, bucketed by `buckets` (ascending upper bounds; default: latency
        seconds as prometheus_client's); sent as one HISTOGRAM record per series per flush."""
        try:
            if self._closed:
                self._buffer.drop(CLOSED)
            else:
                self._buffer.histogram(name, value, labels, buckets)
        except (TypeError, ValueError) as exc:  # e.g. a value that is not a number
            self._buffer.drop(INVALID, f"{exc}")
        except Exception:  # an error of ours: counted, never raised into the app
            self._buffer.drop(ERROR)

    def event(
        self, type: str, category: str = "", action: str = "", value=None, properties=None, **fields
    ) -> None:
        """An analytics event; `fields` may set label, user_id, session_id and service."""
        try:
            if self._closed:
                self._buffer.drop(CLOSED)
            else:
                self._buffer.event(type, category, action, value, properties, fields)
                self._maybe_wake()
        except (TypeError, ValueError) as exc:  # e.g. a value that is not a number
            self._buffer.drop(INVALID, f"{exc}")
        except Exception:  # an error of ours: counted, never raised into the app
            self._buffer.drop(ERROR)

    def log(self, level: str, message: str, **attributes) -> None:
        """A log record; `service`, `trace_id` and `span_id` are fields, the rest attributes."""
        try:
            if self._closed:
                self._buffer.drop(CLOSED)
            else:
                self._buffer.log(level, message, attributes)
                self._maybe_wake()
        except (TypeError, ValueError) as exc:  # e.g. a value that is not a number
            self._buffer.drop(INVALID, f"{exc}")
        except Exception:  # an error of ours: counted, never raised into the app
            self._buffer.drop(ERROR)

    def _maybe_wake(self) -> None:
        if not self._wake_pending and self._buffer.waiting() >= self.batch_size:
            self._wake_pending = True  # once per batch, not on every call past the threshold
            self._wake_sender()
