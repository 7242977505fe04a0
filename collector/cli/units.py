"""Values for people, from their unit: what `ferry query`, `ferry top` and `ferry series` print
in table format (json and csv print the raw numbers and unit codes).

The unit is the series' own (UCUM-style, as docs/METRICS.md lists them), or what the query
service derived from it (SeriesPoints.unit: a rate's `By/s`, `s/s`; "" for a count of points
or an expression mixing units). `human(value, unit)` renders one value (`unit_name` names
a unit in `ferry series`: bytes, ratio, seconds, thread, bytes/s):

- `By` (also `bytes`, `KiBy`, `MiBy`, `GiBy`): B, KiB, MiB, GiB, TiB, PiB, EiB in 1024 steps:
  `1023 B`, `1 KiB`, `19.9 MiB`; `By/s` the same per second: `1.2 MiB/s`.
- `1` (also `ratio`): percent, `42.5%`, `0%`, `100%`; `%`: percent as given.
- `s`, `ms`, `us`, `ns` (also `seconds`, `min`, `h`, `d`): a duration, `850 ms`, `12.3 s`,
  `4m 05s`, `3h 12m`, `2d 4h`.
- `s/s`, `ms/s` (a time counter's rate: busy time per second): percent, 100% = one CPU busy.
- `""`, `{thing}`, and their rates `/s`, `{thing}/s`, `1/s`: a count with thousands
  separators, `1,234,567`, `0.53`, `12/s`.
- anything else: a count, the unit after it: `21.5 Cel`.

Three significant digits for scaled values (`19.9 MiB`, `858 MiB`, `1.5 GiB`, `42.5%`),
trailing zeros dropped; a value that rounds up to the next step takes it (1023.7 B is `1 KiB`,
59.97 s is `1m 00s`). Durations: below 1 µs in ns, below 1 ms in µs, below 1 s in ms, below a
minute in s, then `Mm SSs` (whole seconds), `Hh MMm` (whole minutes), `Dd Hh` (whole hours).
Counts: integers with separators, others two decimals (`1,234.57`) or, below 1, three
significant digits (`0.00123`); at 1e15 and over in exponent form. Negative values carry a
`-` before the same rendering; NaN and infinities read `NaN`, `Inf`, `-Inf` whatever the unit.
"""

from __future__ import annotations

import math

from ferry.collector.query.resultunit import PER_SECOND

BYTE_STEPS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
BYTES = {"By": 1, "bytes": 1, "KiBy": 1 << 10, "MiBy": 1 << 20, "GiBy": 1 << 30}
SECONDS = {
    "s": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "milliseconds": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "microseconds": 1e-6,
    "ns": 1e-9,
    "nanoseconds": 1e-9,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
RATIOS = ("1", "ratio")
# (scale from seconds, suffix, the rounded value it must stay under): the short durations
_SHORT = ((1e9, "ns", 1000), (1e6, "µs", 1000), (1e3, "ms", 1000), (1.0, "s", 60))
_NAMES = {"By": "bytes", "1": "ratio", "%": "percent", "s": "seconds", "ms": "milliseconds"}
_NAMES |= {"us": "microseconds", "ns": "nanoseconds", "min": "minutes", "h": "hours", "d": "days"}


def human(value: float, unit: str) -> str:
    """`value`, measured in `unit`, as a person reads it (the table above)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value < 0:
        return "-" + human(-value, unit)
    value = abs(value)  # -0.0 reads 0
    if unit in BYTES:
        return _bytes(value * BYTES[unit])
    if unit in RATIOS:
        return sig3(value * 100) + "%"
    if unit == "%":
        return sig3(value) + "%"
    if unit in SECONDS:
        return duration(value * SECONDS[unit])
    per = unit[: -len(PER_SECOND)] if unit.endswith(PER_SECOND) else None
    if per in BYTES:
        return _bytes(value * BYTES[per]) + PER_SECOND
    if per in SECONDS:  # seconds of busy time per second: a share of time
        return sig3(value * SECONDS[per] * 100) + "%"
    if _is_count(unit):
        return count(value)
    if per is not None and (_is_count(per) or per in RATIOS):
        return count(value) + PER_SECOND
    return f"{count(value)} {unit}"


def human_ms(ms: float) -> str:
    """A duration of `ms` milliseconds (an agent's lag, a silence's time left)."""
    return human(ms, "ms")


def unit_name(unit: str) -> str:
    """What `unit` is called in a listing: `bytes`, `ratio`, `seconds`, `thread`, `bytes/s`."""
    if unit in _NAMES:
        return _NAMES[unit]
    if unit.endswith(PER_SECOND) and unit != PER_SECOND:
        return unit_name(unit[: -len(PER_SECOND)]) + PER_SECOND
    if len(unit) > 2 and unit[0] == "{" and unit[-1] == "}":
        return unit[1:-1]
    return unit


def sig3(x: float) -> str:
    """`x` >= 0 in three significant digits, without an exponent from 0.001 up, and without
    trailing zeros: 1023, 858, 19.9, 1.5, 0.425."""
    if x == 0:
        return "0"
    if x >= 100:
        return f"{x:.0f}"
    text = f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def duration(seconds: float) -> str:
    """`seconds` >= 0 as a duration: 250 µs, 850 ms, 12.3 s, 4m 05s, 3h 12m, 2d 4h."""
    if seconds == 0:
        return "0 s"
    for scale, suffix, limit in _SHORT:
        text = sig3(seconds * scale)
        if float(text) < limit:
            return f"{text} {suffix}"
    s = round(seconds)
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    minutes = round(seconds / 60)
    if minutes < 24 * 60:
        return f"{minutes // 60}h {minutes % 60:02d}m"
    hours = round(seconds / 3600)
    return f"{hours // 24}d {hours % 24}h"


def count(x: float) -> str:
    """`x` >= 0 with thousands separators: 1,234,567; 1,234.57; 0.53; 0.00123; 1.235e+15."""
    if x >= 1e15:
        return f"{x:.3e}"
    if x == int(x):
        return f"{int(x):,}"
    if x < 1:
        return f"{x:.3g}"
    return f"{x:,.2f}".rstrip("0").rstrip(".")


def _bytes(n: float) -> str:
    for step in BYTE_STEPS:
        text = sig3(n)
        if float(text) < 1024 or step == BYTE_STEPS[-1]:
            return f"{text} {step}"
        n /= 1024
    raise AssertionError("unreachable")


def _is_count(unit: str) -> bool:
    """A dimensionless count: no unit, an annotation such as {packet}, or 1 per something."""
    return unit == "" or (unit.startswith("{") and unit.endswith("}"))
