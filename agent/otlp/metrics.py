"""An OTLP `ExportMetricsServiceRequest` → Local metric and histogram records, and what is refused.

Called by the OTLP receiver (ferry.agent.otlp.server) on its own thread. The records are the
rows apps send to `ferry.v1.Local` (local.proto), so that they are validated, limited and
redacted by the same code (ferry.agent.otlp.accept feeds them to ferry.agent.local.records).

Kinds (docs/otlp.md has the table):
- Gauge → GAUGE.
- Sum: cumulative and monotonic → COUNTER (Ferry handles resets at query time); cumulative and
  not monotonic (an up-down counter) → GAUGE, since its value is a level that goes both ways;
  delta → DELTA (summed per series until the agent's next frame, as Local's DELTA records).
  Temporality UNSPECIFIED is refused.
- Histogram (explicit buckets): delta → HISTOGRAM as it is; cumulative → HISTOGRAM of the growth
  since the previous accepted point of the same series *and start time* (OTLP's start time names
  one run of a writer: two writers of one series, or a restarted app, are separate runs), the way
  the OpenTelemetry Collector's cumulativetodelta processor does with `initial_value: auto`. A
  run seen for the first time is emitted whole only if it started at or after the receiver did
  (nothing of it can have been counted before); otherwise (an app older than the agent, a start
  time of 0, a run forgotten past the memory bound) the point is only the run's baseline: it is
  taken as a point of zero growth, and what the run counted before it is not stored. Within a
  run a bucket going down is a reset, emitted whole (ferry.agent.scrape.histograms.delta). The
  point is validated as sent; its growth replaces it once it is accepted (`to_growth`), so a
  refused point is never a baseline. A histogram without a sum is refused (Ferry's carry one);
  one without buckets is one +Inf bucket of `count`.
- Exponential histograms and summaries are refused, naming the metric.
A data point flagged "no recorded value" (a staleness marker) is skipped without a refusal.

Names and attribute keys are mapped by ferry.agent.otlp.names; the labels of a point are its
resource's attributes with its own over them; the unit is the series' unit. A resource whose
attributes alone break the label limits (count, keys) is refused whole, with one refusal, before
its attributes are copied onto any point.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from ferry.agent.intake import Intake
from ferry.agent.otlp.accept import Refusal, resource_refusal
from ferry.agent.otlp.names import attributes, metric_name
from ferry.agent.scrape.histograms import Totals, delta
from ferry.limits import Limits, check_labels
from ferry.series import COUNTER, DELTA, GAUGE
from ferry.v1 import local_pb2

CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA_TEMPORALITY = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
NO_RECORDED_VALUE = metrics_pb2.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
EXPLICIT_BUCKETS_HINT = (
    "export explicit-bucket histograms (the SDKs' default; "
    "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=explicit_bucket_histogram)"
)

HistogramKey = tuple[str, str, tuple[tuple[str, str], ...], tuple[float, ...]]  # name, unit, labels, bounds
Run = tuple[HistogramKey, int]  # a series and its points' start time (ns): one run of one writer


@dataclass
class Row:
    """One data point as a Local record in its Records `field` ("metrics", "histograms"); `where`
    names it in a refusal ("metric 'x' data point 2")."""

    field: str
    record: local_pb2.MetricRecord | local_pb2.HistogramRecord
    where: str
    # a cumulative histogram's run and totals as sent: its growth replaces it once accepted
    totals: tuple[HistogramKey, int, Totals] | None = None


Item = Row | Refusal


class CumulativeHistograms:
    """Each cumulative histogram run's last totals handed to the pipeline, least recently seen
    forgotten first past `max_runs` or `max_bytes`. `since`: a run not known here is emitted whole
    only if it started at or after this (ns): the receiver's start, raised past the start time of
    every run forgotten, so that a forgotten run is never counted twice. The receiver's own thread
    only (ferry.agent.otlp.server)."""

    def __init__(
        self, max_runs: int = 20_000, max_bytes: int = 16 * 1024 * 1024, started_ns: int | None = None
    ):
        self.max_runs = max_runs
        self.max_bytes = max_bytes
        self.since = max(1, time.time_ns() if started_ns is None else started_ns)
        self._last: OrderedDict[Run, tuple[Totals, int]] = OrderedDict()  # totals, size
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._last)

    def get(self, run: Run) -> Totals | None:
        found = self._last.get(run)
        return None if found is None else found[0]

    def keep(self, run: Run, totals: Totals) -> None:
        old = self._last.pop(run, None)
        if old is not None:
            self._bytes -= old[1]
        key = run[0]
        size = 200 + sum(len(k) + len(v) for k, v in key[2]) + 16 * len(key[3]) + 8 * len(totals[0])
        self._last[run] = (totals, size)
        self._bytes += size
        while len(self._last) > self.max_runs or self._bytes > self.max_bytes:
            (_, start_ns), (_, freed) = self._last.popitem(last=False)
            self._bytes -= freed
            self.since = max(self.since, start_ns + 1)

    def growth(self, run: Run, totals: Totals, pending: dict[Run, Totals]) -> Totals:
        """What a point of `run` now at `totals` adds; `pending`: the totals of this request's
        points taken so far (kept here only once the request is handed over)."""
        previous = pending.get(run) or self.get(run)
        pending[run] = totals
        counts, total = totals
        if previous is not None:
            return delta(previous, counts, total)
        if run[1] >= self.since:  # never 0 (unknown: the run may be older than we are)
            return counts, total  # a run that began while we listened: nothing of it was counted
        return (0,) * len(counts), 0.0  # its baseline: what it counted before is not ours to add


def to_growth(
    intake: Intake, rows: list[Row], cumulative: CumulativeHistograms, pending: dict[Run, Totals]
) -> None:
    """Replace the cumulative histogram points of `intake` (the accepted `rows`, validated as
    sent) by their growth. `intake.histograms` holds the histogram rows' points in their order."""
    histograms = [row for row in rows if row.field == "histograms"]
    for i, row in enumerate(histograms):
        if row.totals is not None:
            key, start_ns, totals = row.totals
            series, t, _, _ = intake.histograms[i]
            counts, total = cumulative.growth((key, start_ns), totals, pending)
            intake.histograms[i] = (series, t, total, counts)


def map_metrics(request: metrics_service_pb2.ExportMetricsServiceRequest, limits: Limits) -> Iterator[Item]:
    """The request's data points as rows, and what is refused, in the request's order (lazily:
    the caller validates a chunk before the next is mapped). `limits`: the validator's, by which
    a resource's own attributes are checked once, before they are copied onto its points."""
    for i, resource_metrics in enumerate(request.resource_metrics):
        resource_labels = attributes(resource_metrics.resource.attributes)
        refusal = resource_refusal(
            i, resource_labels, _points(resource_metrics), "data points", _check_resource(limits)
        )
        if refusal is not None:
            yield refusal
            continue
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from _metric(metric, resource_labels)


def _check_resource(limits: Limits):
    # a point's labels hold every key of its resource (its own only add or replace values): a
    # count or a key the validator refuses is refused for every point. Values are left to the
    # points, which may replace them.
    return lambda labels, where: check_labels(tuple((k, "") for k in labels), limits, where)


def _points(resource_metrics: metrics_pb2.ResourceMetrics) -> int:
    n = 0
    for scope_metrics in resource_metrics.scope_metrics:
        for metric in scope_metrics.metrics:
            which = metric.WhichOneof("data")
            n += 0 if which is None else len(getattr(metric, which).data_points)
    return n


def _metric(metric: metrics_pb2.Metric, resource_labels: dict[str, str]) -> Iterator[Item]:
    which = metric.WhichOneof("data")
    shown = repr(metric.name)
    if which == "gauge":
        yield from _numbers(metric, metric.gauge.data_points, GAUGE, resource_labels)
    elif which == "sum":
        temporality = metric.sum.aggregation_temporality
        if temporality == CUMULATIVE:
            kind = COUNTER if metric.sum.is_monotonic else GAUGE
        elif temporality == DELTA_TEMPORALITY:
            kind = DELTA
        else:
            yield Refusal(
                len(metric.sum.data_points),
                f"metric {shown}: sum with aggregation temporality UNSPECIFIED "
                "(neither delta nor cumulative)",
            )
            return
        yield from _numbers(metric, metric.sum.data_points, kind, resource_labels)
    elif which == "histogram":
        temporality = metric.histogram.aggregation_temporality
        if temporality not in (CUMULATIVE, DELTA_TEMPORALITY):
            yield Refusal(
                len(metric.histogram.data_points),
                f"metric {shown}: histogram with aggregation temporality UNSPECIFIED "
                "(neither delta nor cumulative)",
            )
            return
        yield from _histograms(metric, temporality == CUMULATIVE, resource_labels)
    elif which == "exponential_histogram":
        yield Refusal(
            len(metric.exponential_histogram.data_points),
            f"metric {shown}: exponential histograms are not taken (Ferry stores explicit bucket "
            f"bounds); {EXPLICIT_BUCKETS_HINT}",
        )
    elif which == "summary":
        yield Refusal(
            len(metric.summary.data_points),
            f"metric {shown}: summaries are not taken (Ferry has no summary kind); export a histogram",
        )
    # a metric without data has no points to take or refuse


def _labels(resource_labels: dict[str, str], point) -> dict[str, str]:
    return {**resource_labels, **attributes(point.attributes)}


def _numbers(
    metric: metrics_pb2.Metric, points, kind: int, resource_labels: dict[str, str]
) -> Iterator[Item]:
    name = metric_name(metric.name)
    for j, point in enumerate(points):
        if point.flags & NO_RECORDED_VALUE:
            continue
        which = point.WhichOneof("value")
        where = f"metric {metric.name!r} data point {j}"
        if which is None:
            yield Refusal(1, f"{where}: no value (neither as_double nor as_int)")
            continue
        record = local_pb2.MetricRecord(
            name=name,
            kind=kind,
            value=float(getattr(point, which)),
            labels=_labels(resource_labels, point),
            time_unix_ms=point.time_unix_nano // 1_000_000,
            unit=metric.unit,
        )
        yield Row("metrics", record, where)


def _histograms(
    metric: metrics_pb2.Metric, is_cumulative: bool, resource_labels: dict[str, str]
) -> Iterator[Item]:
    name = metric_name(metric.name)
    for j, point in enumerate(metric.histogram.data_points):
        if point.flags & NO_RECORDED_VALUE:
            continue
        where = f"metric {metric.name!r} data point {j}"
        if not point.HasField("sum"):
            yield Refusal(1, f"{where}: histogram without a sum (Ferry's histograms carry one)")
            continue
        bounds = tuple(point.explicit_bounds)
        # no buckets at all: OTLP's way of sending only count and sum, i.e. one +Inf bucket
        counts = tuple(point.bucket_counts) if point.bucket_counts or bounds else (point.count,)
        labels = _labels(resource_labels, point)
        total, kept = point.sum, None
        if is_cumulative:  # validated as sent; to_growth makes it the growth once accepted
            key = (name, metric.unit, tuple(sorted(labels.items())), bounds)
            kept = (key, point.start_time_unix_nano, (counts, total))
        record = local_pb2.HistogramRecord(
            name=name,
            labels=labels,
            bounds=bounds,
            counts=counts,
            sum=total,
            time_unix_ms=point.time_unix_nano // 1_000_000,
            unit=metric.unit,
        )
        yield Row("histograms", record, where, kept)
