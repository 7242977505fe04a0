"""The unit of a QueryRange answer's values (SeriesPoints.unit), from its series' units.

The series table holds each series' unit as its sender gave it (UCUM-style: `By`, `s`, `ms`,
`1`, `{packet}`; docs/METRICS.md lists the agent's). What a query answers is in that unit or
one derived from it, and only the query service knows which: the aggregation service
(ferry.collector.query.aggregate) calls `aggregated`, the expression evaluator
(ferry.collector.query.arith) `combined`. Clients render values with it (the `ferry` CLI's
tables, ferry.collector.cli.units); "" means "a plain number".

- avg, min, max, sum, last, increase and the quantiles are in the series' unit;
- rate appends `/s` (`By` -> `By/s`, `s` -> `s/s`, `{packet}` -> `{packet}/s`, "" -> `/s`);
- count counts points: "";
- series of different units in one answer: "" (no one unit is right for all of them).
- In an expression, + and - keep a unit both sides share (a number takes the other side's),
  unary minus keeps it; * and / give "" (`bytes * 8` is not bytes, `a / b * 100` is not a ratio).
"""

from __future__ import annotations

PER_SECOND = "/s"


def aggregated(units: list[str], agg: str) -> str:
    """The unit of `agg` over series whose distinct units are `units`."""
    if len(units) != 1 or agg == "count":
        return ""
    return units[0] + PER_SECOND if agg == "rate" else units[0]


def combined(op: str, left: str | None, right: str | None) -> str | None:
    """The unit of `left op right`; None stands for a number (and is what two numbers give)."""
    if op in "*/":
        return ""
    if left is None or right is None:
        return right if left is None else left
    return left if left == right else ""
