"""Times and steps on the command line: durations ('90s', '5m') and instants (now, unix, RFC 3339)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from ferry.runtime.config import ConfigError, parse_duration


def duration_ms(text: str, what: str) -> int:
    try:
        return round(parse_duration(text, what) * 1000)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def instant_ms(text: str | None, now_ms: int | None = None) -> int:
    """'now', unix seconds or ms, RFC 3339, or a duration meaning that long ago."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if text is None or text == "now":
        return now_ms
    if text.isdigit():
        n = int(text)
        return n if n > 10**11 else n * 1000
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now_ms - duration_ms(text, "--until")
        except ValueError:
            raise ValueError(
                f"--until {text!r} is not 'now', unix seconds, RFC 3339 or a duration ago"
            ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def auto_step_ms(range_ms: int, target_points: int = 240) -> int:
    """A step giving about `target_points` buckets, rounded up to whole seconds (>= 1 s)."""
    step = max(1000, -(-range_ms // target_points))
    return -(-step // 1000) * 1000
