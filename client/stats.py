"""What a client did: records taken, sent, waiting and dropped (by reason)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

INVALID_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class Stats:
    recorded: int  # calls that were kept (counter increments and histogram observations included)
    sent: int  # records the agent accepted (a counter series per interval is one record)
    queued: int  # records waiting in the buffer or for a retry
    dropped: int  # records given up, all reasons
    dropped_by_reason: dict[str, int] = field(default_factory=dict)
    last_error: str = ""  # the last failed send, e.g. "UNAVAILABLE: failed to connect"

    @classmethod
    def of(cls, buffer, outbox) -> Stats:
        by_reason = {k: v for k, v in buffer.dropped.items() if v}
        return cls(
            recorded=buffer.recorded,
            sent=outbox.sent,
            queued=len(buffer) + len(outbox),
            dropped=sum(by_reason.values()),
            dropped_by_reason=by_reason,
            last_error=outbox.last_error,
        )


def invalid_logger(log: logging.Logger) -> Callable[[str], None]:
    """Logs why records are dropped as invalid, at most once per INVALID_LOG_EVERY_S (an app
    recording a bad name in a loop must not flood its own log)."""
    state = {"next": 0.0, "suppressed": 0}

    def report(message: str) -> None:
        now = time.monotonic()
        if now < state["next"]:
            state["suppressed"] += 1
            return
        more = f" ({state['suppressed']} more since the last report)" if state["suppressed"] else ""
        log.warning("ferry client: dropped an invalid record: %s%s", message, more)
        state["next"], state["suppressed"] = now + INVALID_LOG_EVERY_S, 0

    return report
