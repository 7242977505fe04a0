"""What any metric in Ferry may be: names, labels, sizes. Numpy-free, so the agent checks
records from apps by the same rules the collector applies to frames (a record the collector
would refuse must never get into a frame, where it would take other points down with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]*")
LABEL_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
DAY_MS = 86_400_000


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


def check_name(name: str, limits: Limits, what: str = "metric name") -> None:
    if not name:
        raise ValidationError(f"{what} is empty")
    if len(name) > limits.max_name_len:
        raise ValidationError(f"{what} {name[:40]!r}... is {len(name)} chars > {limits.max_name_len} allowed")
    if not NAME_RE.fullmatch(name):
        raise ValidationError(f"{what} {name!r} does not match {NAME_RE.pattern}")


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
