"""Parsed metric families of one scrape → Ferry points, histogram points and skip counts.

Called by the runner (in a worker thread) with the target's `TargetState` from the previous
scrape; returns a new state, which the runner keeps only once the points are handed over.

- counter: COUNTER, the `_total` sample as exposed (cumulative; resets are handled at query
  time). prometheus_client's text parser names a counter's sample `<name>_total` also when the
  exposition leaves the suffix off; OpenMetrics always has it.
- gauge, untyped/unknown, info (`<name>_info` = 1), stateset (one sample per state),
  gaugehistogram (its `_bucket`, `_gcount`, `_gsum` samples): GAUGE, each sample as exposed.
- summary: GAUGE `<name>{quantile=...}`, COUNTER `<name>_sum` and `<name>_count`.
- histogram: HISTOGRAM `<name>`, bounds from the finite `le`s, counts per bucket as the growth
  since the previous scrape (see agent/scrape/histograms.py); `_count` is the `+Inf` bucket.
- `_created` samples (and the `<name>_created` gauges the text format carries them in) are
  dropped: Ferry tracks resets itself. Exemplars are dropped.

Labels: the sample's (empty values dropped, as Prometheus does), then the target's `labels`,
`job` and `instance`; a sample label the target sets is kept as `exported_<key>`. Times: the
sample's own timestamp if it has one, else the scrape's start.

A sample Ferry would refuse (name or labels outside ferry.limits, a NaN or infinite value, a
time outside the accepted window, buckets that are not a histogram) is skipped and counted by
reason, never sent: the collector refuses a whole frame for one bad series.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample, Timestamp

from ferry.agent.intake import HistogramPoint, Point
from ferry.agent.scrape.config import ScrapeTarget
from ferry.agent.scrape.histograms import HistogramError, Totals, buckets, delta
from ferry.limits import Limits, ValidationError, check_bounds, check_labels, check_name, check_time_ms
from ferry.series import COUNTER, GAUGE, HISTOGRAM, SeriesDef, labels_key

SKIP_REASONS = ("name", "labels", "value", "time", "histogram")
_HAS_CREATED = ("counter", "summary", "histogram")


class Skip(NamedTuple):
    reason: str  # one of SKIP_REASONS
    message: str


@dataclass
class TargetState:
    """What one target's scrapes carry to the next: validated series (the same SeriesDef
    object every scrape, which the batcher keys on) and each histogram's last exposed totals."""

    series: dict[tuple, SeriesDef | Skip] = field(default_factory=dict)
    totals: dict[SeriesDef, Totals] = field(default_factory=dict)


@dataclass
class Mapped:
    points: list[Point] = field(default_factory=list)
    histograms: list[HistogramPoint] = field(default_factory=list)
    samples: int = 0  # read from the exposition, `_created` ones included
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # the first message per skip reason
    state: TargetState = field(default_factory=TargetState)


def target_labels(target: ScrapeTarget) -> dict[str, str]:
    return {**dict(target.labels), "job": target.job, "instance": target.instance}


def merge_labels(sample: dict[str, str], target: dict[str, str]) -> dict[str, str]:
    """The sample's labels under the target's; a clash keeps the sample's as exported_<key>."""
    merged = {k: v for k, v in sample.items() if v and k not in target}
    for key, value in sample.items():
        if value and key in target:
            renamed = f"exported_{key}"
            while renamed in sample or renamed in target or renamed in merged:
                renamed = f"exported_{renamed}"
            merged[renamed] = value
    merged.update(target)
    return merged


def map_families(
    families: Iterable[Metric],
    target: ScrapeTarget,
    state: TargetState,
    now_ms: int,
    limits: Limits | None = None,
) -> Mapped:
    return _Mapper(target, state, now_ms, limits or Limits()).run(list(families))


class _Mapper:
    def __init__(self, target: ScrapeTarget, state: TargetState, now_ms: int, limits: Limits):
        self.target = target_labels(target)
        self.old = state
        self.now_ms = now_ms
        self.limits = limits
        self.out = Mapped()

    def run(self, families: list[Metric]) -> Mapped:
        created = {f"{f.name}_created" for f in families if f.type in _HAS_CREATED}
        for family in families:
            self.out.samples += len(family.samples)
            if family.type == "histogram":
                self._histogram(family)
            elif family.name not in created:  # a text-format `_created` gauge otherwise
                for sample in family.samples:
                    kind = self._kind(family, sample.name)
                    if kind is not None:
                        self._point(sample, kind, family.unit)
        return self.out

    @staticmethod
    def _kind(family: Metric, name: str) -> int | None:
        suffix = name[len(family.name) :]  # the parsers put only `<family><suffix>` samples in a family
        if family.type in _HAS_CREATED and suffix == "_created":
            return None
        if family.type == "counter" and suffix == "_total":
            return COUNTER
        if family.type == "summary" and suffix in ("_sum", "_count"):
            return COUNTER
        return GAUGE

    def _skip(self, skip: Skip, samples: int = 1) -> None:
        self.out.skipped[skip.reason] += samples
        self.out.examples.setdefault(skip.reason, skip.message)

    def _time(self, sample: Sample, samples: int = 1) -> int | None:
        ts = sample.timestamp
        if ts is None:
            return self.now_ms
        t = ts.sec * 1000 + ts.nsec // 1_000_000 if isinstance(ts, Timestamp) else round(ts * 1000)
        try:
            check_time_ms(t, self.now_ms, self.limits, sample.name)
        except ValidationError as exc:
            self._skip(Skip("time", str(exc)), samples)
            return None
        return t

    def _series(
        self, name: str, kind: int, unit: str, labels: tuple, bounds: tuple[float, ...] = ()
    ) -> SeriesDef | Skip:
        key = (name, kind, unit, bounds, labels)
        found = self.out.state.series.get(key) or self.old.series.get(key) or self._validate(*key)
        self.out.state.series[key] = found
        return found

    def _validate(
        self, name: str, kind: int, unit: str, bounds: tuple[float, ...], labels: tuple
    ) -> SeriesDef | Skip:
        where = f"{name[:40]!r}"
        try:
            check_name(name, self.limits)
        except ValidationError as exc:
            return Skip("name", str(exc))
        merged = labels_key(merge_labels(dict(labels), self.target))
        try:
            check_labels(merged, self.limits, where)
        except ValidationError as exc:
            return Skip("labels", str(exc))
        if kind == HISTOGRAM:
            try:
                check_bounds(bounds, self.limits, where)
            except ValidationError as exc:
                return Skip("histogram", str(exc))
        return SeriesDef(name, kind, unit, merged, bounds)

    def _point(self, sample: Sample, kind: int, unit: str) -> None:
        value = sample.value
        if not isinstance(value, int | float) or not math.isfinite(value):
            self._skip(Skip("value", f"{sample.name}: value {value!r} is not finite"))
            return
        series = self._series(sample.name, kind, unit, tuple(sample.labels.items()))
        if isinstance(series, Skip):
            self._skip(series)
            return
        t = self._time(sample)
        if t is not None:
            self.out.points.append((series, t, float(value)))

    def _histogram(self, family: Metric) -> None:
        groups: dict[tuple, _Group] = {}
        for sample in family.samples:
            suffix = sample.name[len(family.name) :]
            if suffix == "_created":
                continue
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            group = groups.setdefault(key, _Group())
            group.samples += 1
            if suffix == "_bucket":
                le = sample.labels.get("le")
                group.buckets.append((le, sample.value))
                if le is not None and le.strip().lower() in ("+inf", "inf"):
                    group.inf = sample
            elif suffix == "_sum":
                group.sum = sample.value
        for key, group in groups.items():
            self._histogram_point(family, key, group)

    def _histogram_point(self, family: Metric, labels: tuple, group: _Group) -> None:
        name = family.name
        if group.sum is None:
            self._skip(Skip("histogram", f"{name}: no {name}_sum sample"), group.samples)
            return
        if not math.isfinite(group.sum):
            self._skip(Skip("value", f"{name}_sum: value {group.sum!r} is not finite"), group.samples)
            return
        try:
            bounds, counts = buckets(group.buckets)
        except HistogramError as exc:
            self._skip(Skip("histogram", f"{name}: {exc}"), group.samples)
            return
        series = self._series(name, HISTOGRAM, family.unit, labels, bounds)
        if isinstance(series, Skip):
            self._skip(series, group.samples)
            return
        t = self._time(group.inf, group.samples) if group.inf is not None else self.now_ms
        if t is None:
            return
        self.out.state.totals[series] = (counts, group.sum)
        counts_now, sum_now = delta(self.old.totals.get(series), counts, group.sum)
        self.out.histograms.append((series, t, sum_now, counts_now))


@dataclass
class _Group:
    """The samples of one histogram series (one label set without `le`)."""

    buckets: list[tuple[str | None, float]] = field(default_factory=list)
    sum: float | None = None
    inf: Sample | None = None
    samples: int = 0
