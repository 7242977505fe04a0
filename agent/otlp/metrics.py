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
  since the series' previous point, by the Prometheus scraper's own rule
  (ferry.agent.scrape.histograms.delta): the first point of a series is emitted whole, and so is
  one after a reset (a bucket went down). OTLP also says when a series restarted: a point whose
  start time differs from the previous point's is a reset too. A histogram without a sum is
  refused (Ferry's carry one); one without buckets is one +Inf bucket of `count`.
- Exponential histograms and summaries are refused, naming the metric.
A data point flagged "no recorded value" (a staleness marker) is skipped without a refusal.

Names and attribute keys are mapped by ferry.agent.otlp.names; the labels of a point are its
resource's attributes with its own over them; the unit is the series' unit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from ferry.agent.otlp.accept import Refusal
from ferry.agent.otlp.names import attributes, metric_name
from ferry.agent.scrape.histograms import Totals, delta
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


@dataclass
class Row:
    """One data point as a Local record in its Records `field` ("metrics", "histograms"); `where`
    names it in a refusal ("metric 'x' data point 2")."""

    field: str
    record: local_pb2.MetricRecord | local_pb2.HistogramRecord
    where: str
    # a cumulative histogram's totals, kept as its series' previous point once the row is accepted
    totals: tuple[HistogramKey, int, Totals] | None = None


Item = Row | Refusal


class CumulativeHistograms:
    """Each cumulative histogram series' last accepted totals and start time, least recently seen
    forgotten first past `max_series` or `max_bytes` (a forgotten series' next point counts whole,
    as a first point does). The receiver's own thread only (ferry.agent.otlp.server)."""

    def __init__(self, max_series: int = 20_000, max_bytes: int = 16 * 1024 * 1024):
        self.max_series = max_series
        self.max_bytes = max_bytes
        self._last: OrderedDict[HistogramKey, tuple[int, Totals, int]] = OrderedDict()  # ..., size
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._last)

    def get(self, key: HistogramKey) -> tuple[int, Totals] | None:
        found = self._last.get(key)
        return None if found is None else found[:2]

    def keep(self, key: HistogramKey, start_ns: int, totals: Totals) -> None:
        old = self._last.pop(key, None)
        if old is not None:
            self._bytes -= old[2]
        size = 200 + sum(len(k) + len(v) for k, v in key[2]) + 16 * len(key[3])
        self._last[key] = (start_ns, totals, size)
        self._bytes += size
        while len(self._last) > self.max_series or self._bytes > self.max_bytes:
            _, (_, _, freed) = self._last.popitem(last=False)
            self._bytes -= freed


def map_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest, cumulative: CumulativeHistograms
) -> Iterator[Item]:
    """The request's data points as rows, and what is refused, in the request's order (lazily:
    the caller validates and hands on a chunk before the next is mapped)."""
    # this request's cumulative histogram totals so far: a series twice in one request
    pending: dict[HistogramKey, tuple[int, Totals]] = {}
    for resource_metrics in request.resource_metrics:
        resource_labels = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from _metric(metric, resource_labels, cumulative, pending)


def _metric(
    metric: metrics_pb2.Metric,
    resource_labels: dict[str, str],
    cumulative: CumulativeHistograms,
    pending: dict[HistogramKey, tuple[int, Totals]],
) -> Iterator[Item]:
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
        yield from _histograms(metric, temporality == CUMULATIVE, resource_labels, cumulative, pending)
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
    metric: metrics_pb2.Metric,
    is_cumulative: bool,
    resource_labels: dict[str, str],
    cumulative: CumulativeHistograms,
    pending: dict[HistogramKey, tuple[int, Totals]],
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
        if is_cumulative and len(counts) == len(bounds) + 1:  # else the validator says what is wrong
            key = (name, metric.unit, tuple(sorted(labels.items())), bounds)
            kept = (key, point.start_time_unix_nano, (counts, total))
            counts, total = _growth(key, point.start_time_unix_nano, counts, total, cumulative, pending)
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


def _growth(
    key: HistogramKey,
    start_ns: int,
    counts: tuple[int, ...],
    total: float,
    cumulative: CumulativeHistograms,
    pending: dict[HistogramKey, tuple[int, Totals]],
) -> Totals:
    """What a cumulative point adds to its series: the scraper's `delta`, with a new start time
    counted as a reset (the previous totals are then not subtracted)."""
    previous = pending.get(key) or cumulative.get(key)
    pending[key] = (start_ns, (counts, total))
    if previous is not None and previous[0] != start_ns:
        previous = None
    return delta(None if previous is None else previous[1], counts, total)
