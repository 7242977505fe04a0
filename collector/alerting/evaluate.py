"""One evaluation of one rule: its groups and their values at `now`, through the query service.

A rule's value for a group is its aggregation over the `window` ending now. The query service
answers in buckets aligned to multiples of the step, so the window is read as buckets of a
quarter of it, from the one holding `now - window` to the one holding `now`, and combined:
avg is the buckets' sum over their count, min and max of the buckets, last of the last; sum,
count and increase add and are scaled to the window (the buckets read span between `window`
and 1.25 x `window`: 74 points over 74 s of a steady 1/s series count 60 for a 60 s window).
rate is read over the window itself as one bucket (QueryRange's `align_ms`): each series'
growth per second of the time its points cover in the window, added per group, as `ferry query
--agg rate`, so a steady counter reads its rate whatever part of the window its points have
reached. Quantiles do not combine: they are read from the last
complete bucket of `window` (so they lag by up to one window; docs/alerting.md).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ferry.collector.alerting.model import Labels
from ferry.collector.alerting.rules import Rule
from ferry.collector.cli.expr import Selector
from ferry.collector.query.sql import QUANTILES
from ferry.v1 import query_pb2

QueryRange = Callable[[query_pb2.QueryRangeRequest], query_pb2.QueryRangeResponse]
ALL = "__all__"  # group_by label no series has: every series in one group
HOUR_MS = 3_600_000


class NoData(Exception):
    """The rule cannot be judged yet (an anomaly rule's baseline is not full): its health says
    why, its instances do not move."""


@dataclass(frozen=True)
class Evaluation:
    """Each group's value (None: no data in the window) and the groups whose condition holds."""

    values: dict[Labels, float | None]
    holding: set[Labels]


def group_of(labels: Mapping[str, str], by: tuple[str, ...]) -> Labels:
    """The group a series (or an alert) with `labels` is in: its `by` labels ('' if missing)."""
    return tuple(sorted((k, labels.get(k, "")) for k in by))


class Evaluator:
    def __init__(self, query_range: QueryRange, clock: Callable[[], float] = time.time):
        self.query_range = query_range
        self.clock = clock

    def _read(
        self,
        sel: Selector,
        agg: str,
        by: tuple[str, ...],
        start_ms: int,
        end_ms: int,
        step_ms: int,
        align_ms: int = 0,
    ) -> dict[Labels, list[tuple[int, float]]]:
        req = query_pb2.QueryRangeRequest(
            metric=sel.metric,
            matchers=sel.matchers,
            start_ms=start_ms,
            end_ms=end_ms,
            step_ms=step_ms,
            agg=agg,
            group_by=list(by) or [ALL],
            align_ms=align_ms,
        )
        out: dict[Labels, list[tuple[int, float]]] = {}
        for s in self.query_range(req).series:
            points = [(t, v) for t, v in zip(s.time_ms, s.value, strict=True) if not math.isnan(v)]
            if points:
                out.setdefault(group_of(s.labels, by), []).extend(points)
        return out

    def window(
        self, sel: Selector, agg: str, by: tuple[str, ...], window_s: float, now_ms: int, scaled: bool = True
    ) -> dict[Labels, float]:
        """Each group's `agg` over the window ending at `now_ms` (groups without data left out);
        `scaled=False`: sums, counts and increases over the span read, not scaled to the window
        (a ratio of two, read over the same span, is then exact)."""
        window_ms = max(1000, int(window_s * 1000))
        if agg in QUANTILES:
            end = now_ms // window_ms * window_ms
            got = self._read(sel, agg, by, end - window_ms, end, window_ms)
            return {g: points[-1][1] for g, points in got.items()}
        if agg == "rate":  # the window itself as one bucket: each series' growth per second of
            # the time its points cover in it, as QueryRange's rate (no dip for a window whose
            # newest points are still coming, nor scaling)
            start = now_ms - window_ms + 1  # (now - window, now], as PromQL's range: window ms
            got = self._read(sel, "rate", by, start, now_ms + 1, window_ms, align_ms=start)
            return {g: points[-1][1] for g, points in got.items()}
        step = max(1000, window_ms // 4)
        start = (now_ms - window_ms) // step * step
        end = now_ms + 1  # through now (a point stamped after it, clock skew, waits its turn)
        span_s = max(0.001, (now_ms - start) / 1000)
        scale = window_ms / 1000 / span_s if scaled else 1.0  # sums, counts, increases: per window
        if agg == "avg":
            sums = self._read(sel, "sum", by, start, end, step)
            counts = self._read(sel, "count", by, start, end, step)
            return {
                g: sum(v for _, v in sums[g]) / total
                for g in sums
                if (total := sum(v for _, v in counts.get(g, ()))) > 0
            }
        got = self._read(sel, agg, by, start, end, step)
        combine: dict[str, Callable[[list[tuple[int, float]]], float]] = {
            "sum": lambda p: sum(v for _, v in p) * scale,
            "count": lambda p: sum(v for _, v in p) * scale,
            "increase": lambda p: sum(v for _, v in p) * scale,
            "min": lambda p: min(v for _, v in p),
            "max": lambda p: max(v for _, v in p),
            "last": lambda p: max(p)[1],
        }
        return {g: combine[agg](points) for g, points in got.items()}

    def evaluate(self, rule: Rule, now_ms: int, known: set[Labels] | None = None) -> Evaluation:
        """The rule's groups at `now_ms`; `known`: groups it has instances of (absent rules
        also judge groups seen before that the lookback no longer shows)."""
        if rule.kind == "condition":
            values = self.window(rule.query, rule.agg, rule.by, rule.window_s, now_ms)
            return Evaluation(dict(values), {g for g, v in values.items() if rule.condition.holds(v)})
        if rule.kind == "ratio":
            num = self.window(rule.ratio.numerator, rule.agg, rule.by, rule.window_s, now_ms, scaled=False)
            den = self.window(rule.ratio.denominator, rule.agg, rule.by, rule.window_s, now_ms, scaled=False)
            values = {g: num.get(g, 0.0) / d for g, d in den.items() if d != 0}
            return Evaluation(dict(values), {g for g, v in values.items() if rule.condition.holds(v)})
        if rule.kind == "absent":
            return self._absent(rule, now_ms, known or set())
        return self._anomaly(rule, now_ms)

    def _absent(self, rule: Rule, now_ms: int, known: set[Labels]) -> Evaluation:
        """Groups with data in the lookback (10 windows, at least an hour), or with an instance
        already, but none in the window: they hold (the alert fires for them)."""
        window_ms = max(1000, int(rule.window_s * 1000))
        lookback_ms = max(10 * window_ms, HOUR_MS)
        seen = self._read(rule.query, "count", rule.by, now_ms - lookback_ms, now_ms + 1, lookback_ms + 1)
        recent = self.window(rule.query, "count", rule.by, rule.window_s, now_ms)
        groups = set(seen) | known
        values: dict[Labels, float | None] = {g: recent.get(g, 0.0) for g in groups}
        return Evaluation(values, {g for g in groups if g not in recent})

    def _anomaly(self, rule: Rule, now_ms: int) -> Evaluation:
        a = rule.anomaly
        window_ms = max(1000, int(rule.window_s * 1000))
        current = self.window(rule.query, rule.agg, rule.by, rule.window_s, now_ms)
        end = (now_ms - window_ms) // window_ms * window_ms
        start = end - int(a.baseline_s * 1000)
        agg = "increase" if rule.agg == "rate" else rule.agg
        history = self._read(rule.query, agg, rule.by, start, end, window_ms)
        if not history:
            raise NoData(f"no baseline: no data in the {a.baseline_s / 86400:g} days before the window")
        # each group is judged once its own baseline is full (a host added an hour ago is not
        # judged against an hour because others have a week)
        full = {
            g
            for g, points in history.items()
            if (end - min(t for t, _ in points)) / (end - start) >= a.min_coverage
        }
        if not full:
            oldest = min(t for points in history.values() for t, _ in points)
            raise NoData(
                f"baseline holds {(end - oldest) / 86_400_000:.2f} of {a.baseline_s / 86400:g} days "
                f"(needs {a.min_coverage:.0%}): not judged until it does"
            )
        values: dict[Labels, float | None] = {}
        holding: set[Labels] = set()
        hour = now_ms // HOUR_MS % 24
        for g, value in current.items():
            if g not in full:
                continue
            past = [
                (v / (window_ms / 1000) if rule.agg == "rate" else v)
                for t, v in history.get(g, ())
                if not a.by_hour or t // HOUR_MS % 24 == hour
            ]
            if len(past) < 2:
                continue
            mean, spread = statistics.fmean(past), statistics.pstdev(past)
            z = (value - mean) / spread if spread > 0 else (0.0 if value == mean else math.inf)
            values[g] = value
            out = {"above": z > a.threshold, "below": z < -a.threshold, "both": abs(z) > a.threshold}
            if out[a.direction]:
                holding.add(g)
        return Evaluation(values, holding)
