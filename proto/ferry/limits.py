"""What any metric in Ferry may be: names, labels, sizes. Numpy-free, so the agent checks
records from apps by the same rules the collector applies to frames (a record the collector
would refuse must never get into a frame, where it would take other points down with it).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, replace

NAME_CHARS = r"A-Za-z0-9_.:\-"  # what a metric name is made of, after its first character
LABEL_KEY_CHARS = r"A-Za-z0-9_."
NAME_RE = re.compile(rf"[A-Za-z_][{NAME_CHARS}]*")
LABEL_KEY_RE = re.compile(rf"[A-Za-z_][{LABEL_KEY_CHARS}]*")
DAY_MS = 86_400_000
MAX_RECORDS = 10_000  # per Local request; a bigger batch is refused whole (RESOURCE_EXHAUSTED)


class ValidationError(ValueError):
    """A frame or record breaks a limit; it is rejected whole, with INVALID_ARGUMENT."""


@dataclass(frozen=True)
class Limits:
    max_name_len: int = 200
    max_label_key_len: int = 100
    max_label_value_bytes: int = 256
    max_labels: int = 32
    max_series: int = 100_000
    max_points: int = 4_000_000
    max_bounds: int = 256
    max_past_ms: int = 15 * DAY_MS  # the default raw retention: older points would be dropped anyway
    max_future_ms: int = 10 * 60_000
    # What one frame may hold, counted before it is parsed (ferry.wire.census). An agent cuts a
    # frame at batch_max_points (20,000): its largest, 20,000 series x 8 labels, costs ~0.45 s
    # of CPU from census to rows; at these caps (100,000 series x 4 labels) ~1.6 s, and a frame
    # over them is refused after ~0.1 s (bench/framecost.py).
    max_series_labels: int = 400_000  # label keys over the whole series table of one frame
    max_fields: int = 2_000_000  # protobuf fields at every level of one payload
    # text that is stored and listed as is (series.unit, agents.version)
    max_unit_bytes: int = 64
    max_agent_version_bytes: int = 128


def check_name(name: str, limits: Limits, what: str = "metric name") -> None:
    if not name:
        raise ValidationError(f"{what} is empty")
    if len(name) > limits.max_name_len:
        raise ValidationError(f"{what} {name[:40]!r}... is {len(name)} chars > {limits.max_name_len} allowed")
    if not NAME_RE.fullmatch(name):
        raise ValidationError(f"{what} {name!r} does not match {NAME_RE.pattern}")


def check_unit(unit: str, limits: Limits, where: str) -> None:
    """A series' unit ("By", "ms", "1"): stored with the series and shown by every listing."""
    size = len(unit.encode())
    if size > limits.max_unit_bytes:
        raise ValidationError(f"{where}: unit is {size} bytes > {limits.max_unit_bytes} allowed")


def check_resource_text(host: str, agent_version: str, limits: Limits) -> None:
    """The resource's own text (its labels go through check_labels). The collector checks every
    frame's resource with this; the agent is to check its own by it (and every series' unit by
    check_unit) before it spools a frame, so that no frame of its is refused for them."""
    if not host:
        raise ValidationError("resource.host is empty")
    size = len(agent_version.encode())
    if size > limits.max_agent_version_bytes:
        raise ValidationError(
            f"resource.agent_version is {size} bytes > {limits.max_agent_version_bytes} allowed"
        )


def check_labels(labels: tuple[tuple[str, str], ...], limits: Limits, where: str) -> None:
    if len(labels) > limits.max_labels:
        raise ValidationError(f"{where}: {len(labels)} labels > {limits.max_labels} allowed")
    seen = set()
    for key, value in labels:
        if len(key) > limits.max_label_key_len:
            raise ValidationError(
                f"{where}: label key {key[:40]!r}... is {len(key)} chars > {limits.max_label_key_len} allowed"
            )
        if not LABEL_KEY_RE.fullmatch(key):
            raise ValidationError(f"{where}: label key {key!r} does not match {LABEL_KEY_RE.pattern}")
        if key in seen:
            raise ValidationError(f"{where}: label key {key!r} appears twice")
        seen.add(key)
        size = len(value.encode())
        if size > limits.max_label_value_bytes:
            raise ValidationError(
                f"{where}: label value {size} bytes > {limits.max_label_value_bytes} allowed for {key!r}"
            )


def check_bounds(bounds, limits: Limits, where: str) -> None:
    """HISTOGRAM bucket upper bounds: at most `max_bounds`, finite, strictly ascending."""
    if len(bounds) > limits.max_bounds:
        raise ValidationError(f"{where}: {len(bounds)} bucket bounds > {limits.max_bounds} allowed")
    if not all(map(math.isfinite, bounds)) or any(b <= a for a, b in itertools.pairwise(bounds)):
        raise ValidationError(f"{where}: bucket bounds must be finite and strictly ascending")


@dataclass(frozen=True)
class RecordLimits:
    """Limits on the record kinds (`ferry.records`: events, logs); checked by the client, by the
    agent on receipt and again by the collector on every frame."""

    max_field_bytes: int = 256  # a kind's `short` fields (type, level, service, ...)
    max_message_bytes: int = 65_536  # a kind's `long` fields (a log message)
    max_attributes: int = 64  # event properties / log attributes
    max_attribute_value_bytes: int = 4096
    max_id_len: int = 64  # trace_id, span_id
    max_past_ns: int = Limits.max_past_ms * 1_000_000
    max_future_ns: int = Limits.max_future_ms * 1_000_000
    # records of every kind in one frame (the agent cuts at 20,000 points and records together);
    # counted before the payload is parsed, like Limits.max_fields
    max_records: int = 100_000


def check_text(value: str, field_name: str, limit: int, where: str) -> None:
    size = len(value.encode())
    if size > limit:
        raise ValidationError(f"{where}: {field_name} is {size} bytes > {limit} allowed")


def check_attributes(attrs, what: str, limits: RecordLimits, where: str) -> None:
    """A record's map of attributes: how many, keys like label keys, values by size."""
    if len(attrs) > limits.max_attributes:
        raise ValidationError(f"{where}: {len(attrs)} {what} > {limits.max_attributes} allowed")
    for key, value in attrs.items():
        if not key or len(key) > limits.max_field_bytes or not LABEL_KEY_RE.fullmatch(key):
            raise ValidationError(
                f"{where}: {what} key {key[:40]!r} must match {LABEL_KEY_RE.pattern}, "
                f"at most {limits.max_field_bytes} chars"
            )
        check_text(value, f"{what} {key!r}", limits.max_attribute_value_bytes, where)


def check_time(t: int, now: int, past: int, future: int, unit: str, where: str) -> None:
    """`t` within [now - past, now + future], all in `unit` ("ms" or "ns")."""
    lo, hi = now - past, now + future
    if not lo <= t <= hi:
        raise ValidationError(f"{where}: time {t} {unit} is outside the accepted window [{lo}, {hi}]")


def check_time_ms(t_ms: int, now_ms: int, limits: Limits, where: str) -> None:
    """A metric point's time against the window the collector accepts (older points would fall
    outside the raw retention anyway)."""
    check_time(t_ms, now_ms, limits.max_past_ms, limits.max_future_ms, "ms", where)


# The agent takes a point or record from an app only this far inside the collector's time
# window, so it is still inside it when it arrives: DELIVERY_MARGIN_MS for the time a frame may
# wait in the spool (an outage), CLOCK_MARGIN_MS for the agent's clock running ahead.
DELIVERY_MARGIN_MS = DAY_MS
CLOCK_MARGIN_MS = 5 * 60_000


def on_arrival(limits: Limits) -> Limits:
    """The limits an agent checks app records by: the collector's, the time window narrowed by
    the delivery and clock margins (everything else is the same rule, applied by the same code)."""
    return replace(
        limits,
        max_past_ms=limits.max_past_ms - DELIVERY_MARGIN_MS,
        max_future_ms=max(0, limits.max_future_ms - CLOCK_MARGIN_MS),
    )


def records_on_arrival(limits: RecordLimits) -> RecordLimits:
    """`on_arrival` for the record kinds (events, logs), whose times are in ns."""
    return replace(
        limits,
        max_past_ns=limits.max_past_ns - DELIVERY_MARGIN_MS * 1_000_000,
        max_future_ns=max(0, limits.max_future_ns - CLOCK_MARGIN_MS * 1_000_000),
    )
