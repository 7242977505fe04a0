"""ferry.agent.otlp: OTLP metrics → Ferry series and points, refusals and partial success.

Requests are built with the opentelemetry-proto messages an SDK's exporter sends and answered
by the receiver's own `OtlpService.metrics` (mapping, then the Local service's validator).
"""

from __future__ import annotations

import math
import re
import time
import tracemalloc

import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2 as mp

from ferry.agent.intake import Intake
from ferry.agent.otlp.metrics import CumulativeHistograms
from ferry.agent.otlp.names import label_key, metric_name, text
from ferry.agent.otlp.server import OtlpService
from ferry.limits import MAX_RECORDS
from ferry.series import COUNTER, DELTA, GAUGE, HISTOGRAM, SeriesDef

CUMULATIVE, DELTA_T = mp.AGGREGATION_TEMPORALITY_CUMULATIVE, mp.AGGREGATION_TEMPORALITY_DELTA
NOW_NS = time.time_ns()
NOW_MS = NOW_NS // 1_000_000
LISTENING_SINCE = NOW_NS - 3_600 * 10**9  # when the test receivers started, for cumulative runs
STARTED = NOW_NS - 60 * 10**9  # the start time of a run that began while the receiver listened
BEFORE = LISTENING_SINCE - 1  # ... and of one that began before: the app is older than the agent
RESOURCE = (("service.name", "shop"), ("host.arch", "amd64"))
LABELS = (("host.arch", "amd64"), ("service", "shop"))  # the resource's attributes as labels


def kv(key: str, value) -> common_pb2.KeyValue:
    if isinstance(value, common_pb2.AnyValue):
        return common_pb2.KeyValue(key=key, value=value)
    if isinstance(value, bool):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=value))
    if isinstance(value, int):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(int_value=value))
    if isinstance(value, float):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(double_value=value))
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def request(*metrics: mp.Metric, resource=RESOURCE) -> ms.ExportMetricsServiceRequest:
    return ms.ExportMetricsServiceRequest(
        resource_metrics=[
            mp.ResourceMetrics(
                resource={"attributes": [kv(k, v) for k, v in resource]},
                scope_metrics=[mp.ScopeMetrics(metrics=list(metrics))],
            )
        ]
    )


def number(value, attrs=(), t=NOW_NS, **kw) -> mp.NumberDataPoint:
    field = "as_int" if isinstance(value, int) else "as_double"
    return mp.NumberDataPoint(
        attributes=[kv(k, v) for k, v in attrs], time_unix_nano=t, **{field: value}, **kw
    )


def hist_point(counts, bounds, total, start=STARTED, t=NOW_NS, attrs=()) -> mp.HistogramDataPoint:
    return mp.HistogramDataPoint(
        attributes=[kv(k, v) for k, v in attrs],
        start_time_unix_nano=start,
        time_unix_nano=t,
        count=sum(counts),
        sum=total,
        bucket_counts=counts,
        explicit_bounds=bounds,
    )


def histogram(name, *points, temporality=CUMULATIVE, unit="ms") -> mp.Metric:
    return mp.Metric(
        name=name, unit=unit, histogram=mp.Histogram(aggregation_temporality=temporality, data_points=points)
    )


class Pipeline:
    """Stands in for the agent's `submit`: keeps the Intakes the receiver hands over."""

    def __init__(self):
        self.intakes: list[Intake] = []

    def __call__(self, intake: Intake) -> None:
        self.intakes.append(intake)

    def taken(self) -> Intake:
        """Everything handed over since the last call, as one Intake."""
        out = Intake()
        for intake in self.intakes:
            for name in out.__dataclass_fields__:
                getattr(out, name).extend(getattr(intake, name))
        self.intakes.clear()
        return out


def receiver(**kw) -> OtlpService:
    return OtlpService(
        Pipeline(), lambda: 0, cumulative=CumulativeHistograms(started_ns=LISTENING_SINCE, **kw)
    )


def export(service: OtlpService, *metrics: mp.Metric, **kw) -> tuple[Intake, int, str]:
    accepted, refused, message = service.metrics(request(*metrics, **kw))
    intake = service.submit.taken()
    assert accepted == len(intake)
    return intake, refused, message


@pytest.fixture
def service() -> OtlpService:
    return receiver()


def test_each_kind_of_number_maps_to_its_ferry_kind(service):
    intake, refused, message = export(
        service,
        mp.Metric(name="queue.depth", unit="{item}", gauge=mp.Gauge(data_points=[number(3.5)])),
        mp.Metric(
            name="http.requests",
            unit="{request}",
            sum=mp.Sum(aggregation_temporality=CUMULATIVE, is_monotonic=True, data_points=[number(42)]),
        ),
        mp.Metric(
            name="jobs.active",  # an up-down counter: a level, not a total
            sum=mp.Sum(aggregation_temporality=CUMULATIVE, is_monotonic=False, data_points=[number(-2)]),
        ),
        mp.Metric(
            name="bytes.read",
            unit="By",
            sum=mp.Sum(aggregation_temporality=DELTA_T, is_monotonic=True, data_points=[number(512)]),
        ),
    )
    assert (refused, message) == (0, "")
    assert intake.points == [
        (SeriesDef("queue.depth", GAUGE, "{item}", LABELS), NOW_MS, 3.5),
        (SeriesDef("http.requests", COUNTER, "{request}", LABELS), NOW_MS, 42.0),
        (SeriesDef("jobs.active", GAUGE, "", LABELS), NOW_MS, -2.0),
    ]
    assert intake.deltas == [(SeriesDef("bytes.read", DELTA, "By", LABELS), NOW_MS, 512.0)]


def test_resource_and_point_attributes_become_labels(service):
    attrs = (("http.route", "/cart"), ("ok", True), ("code", 200), ("ratio", 0.25), ("host.arch", "arm64"))
    resource = (*RESOURCE, ("k8s/pod name", "p-1"), ("9lives", "x"))
    intake, _, _ = export(
        service, mp.Metric(name="a/b c", gauge=mp.Gauge(data_points=[number(1, attrs)])), resource=resource
    )
    [(series, _, _)] = intake.points
    assert series.name == "a_b_c"
    assert dict(series.labels) == {
        "service": "shop",
        "host.arch": "arm64",  # the point's attribute wins over the resource's
        "k8s_pod_name": "p-1",
        "_9lives": "x",
        "http.route": "/cart",
        "ok": "true",
        "code": "200",
        "ratio": "0.25",
    }


def test_names_and_values_mapping():
    assert metric_name("http.server.duration") == "http.server.duration"
    assert metric_name("db/calls-total:x") == "db_calls-total:x"
    assert metric_name("1st") == "_1st"
    assert label_key("service.name") == "service"
    assert label_key("a-b.c") == "a_b.c"
    array = common_pb2.AnyValue(
        array_value=common_pb2.ArrayValue(
            values=[common_pb2.AnyValue(int_value=1), common_pb2.AnyValue(string_value="x")]
        )
    )
    assert text(array) == '[1,"x"]'
    kvlist = common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=[kv("a", True)]))
    assert text(kvlist) == '{"a":true}'
    assert text(common_pb2.AnyValue(bytes_value=b"\x01\xff")) == "01ff"
    assert text(common_pb2.AnyValue()) == ""


def cumulative_sender(service, name="rpc.duration", bounds=(1.0, 5.0)):
    """send(counts, total, start, route) → the (counts, sum) stored for that cumulative point."""

    def send(counts, total, start=STARTED, route="/a"):
        point = hist_point(counts, list(bounds), total, start=start, attrs=(("route", route),))
        intake, refused, message = export(service, histogram(name, point))
        assert (refused, message) == (0, "")
        [(series, t, s, c)] = intake.histograms
        assert series == SeriesDef(name, HISTOGRAM, "ms", tuple(sorted((*LABELS, ("route", route)))), bounds)
        assert t == NOW_MS
        return c, s

    return send


def test_cumulative_histograms_become_deltas_per_run_with_resets(service):
    send = cumulative_sender(service)
    assert send([1, 2, 0], 10.0) == ((1, 2, 0), 10.0)  # a run begun while listening: all of it
    assert send([3, 2, 1], 20.0) == ((2, 0, 1), 10.0)  # the growth since the previous point
    assert send([3, 2, 1], 20.0) == ((0, 0, 0), 0.0)
    assert send([1, 0, 0], 0.5) == ((1, 0, 0), 0.5)  # a bucket went down: a reset, emitted whole
    assert send([2, 0, 0], 1.0) == ((1, 0, 0), 0.5)
    assert send([2, 1, 0], 4.0, start=STARTED + 1) == ((2, 1, 0), 4.0)  # a new run, begun while listening
    assert send([5, 5, 5], 50.0, route="/b") == ((5, 5, 5), 50.0)  # another series: its own first
    assert send([3, 1, 0], 6.0, start=STARTED + 1) == ((1, 0, 0), 2.0)
    assert send([3, 0, 0], 3.0) == ((1, 0, 0), 2.0)  # the first run's points still diff against its own


def test_a_run_older_than_the_receiver_is_only_a_baseline(service):
    """An agent restarted (or an app started before it): the first point of a run that began
    before the receiver holds growth it may already have counted, so it only sets the baseline."""
    send = cumulative_sender(service)
    assert send([100, 20, 3], 900.0, start=BEFORE) == ((0, 0, 0), 0.0)
    assert send([101, 22, 3], 910.0, start=BEFORE) == ((1, 2, 0), 10.0)
    # a start time of 0 is unknown: the run may be older than the receiver, a baseline too
    assert send([7, 0, 0], 7.0, start=0) == ((0, 0, 0), 0.0)
    assert send([9, 0, 0], 9.0, start=0) == ((2, 0, 0), 2.0)
    assert send([1, 0, 0], 1.0, start=0) == ((1, 0, 0), 1.0)  # a bucket went down: a reset, whole
    # a restarted agent: a new receiver forgets the totals; the run's next point is a baseline
    send = cumulative_sender(receiver())
    assert send([102, 22, 4], 930.0, start=BEFORE) == ((0, 0, 0), 0.0)
    assert send([103, 22, 4], 931.0, start=BEFORE) == ((1, 0, 0), 1.0)


def test_two_writers_of_one_series_each_count_their_own_growth(service):
    """Two processes with the same resource and attributes write one series; their points
    alternate, each with its own start time. Each run is diffed against its own last point."""
    send = cumulative_sender(service)
    stored = [0]
    for i in range(6):
        for start, base in ((BEFORE, 500), (BEFORE - 7, 520)):
            counts, _ = send([base + i, 0, 0], float(base + i), start=start)
            stored[0] += sum(counts)
    assert stored[0] == 10  # each grew by 5: the growth, not 1,030 observations of whole totals


def test_a_forgotten_run_is_never_counted_twice():
    """Past the memory bound the least recently seen run is forgotten; its next point is a
    baseline even if it began while the receiver listened (it was counted whole then)."""
    service = receiver(max_runs=1)
    send = cumulative_sender(service)
    assert send([2, 0, 0], 2.0, start=STARTED) == ((2, 0, 0), 2.0)
    assert send([3, 0, 0], 3.0, start=STARTED + 5) == ((3, 0, 0), 3.0)  # a newer run: the first goes
    assert len(service.cumulative) == 1 and service.cumulative.since == STARTED + 1
    assert send([4, 0, 0], 4.0, start=STARTED) == ((0, 0, 0), 0.0)  # not its 4 whole again
    assert send([5, 0, 0], 5.0, start=STARTED + 9) == ((5, 0, 0), 5.0)  # began after: nothing forgotten


def test_a_refused_point_is_not_the_baseline_of_the_next_one_in_the_request(service):
    day_ahead = NOW_NS + 86_400 * 10**9
    a = hist_point([1, 0], [1.0], 1.0)
    b = hist_point([5, 0], [1.0], 5.0, t=day_ahead)  # refused: a day in the future
    c = hist_point([9, 0], [1.0], 9.0)
    intake, refused, message = export(service, histogram("h", a, b, c))
    assert refused == 1 and "metric 'h' data point 1: time" in message
    assert [(total, counts) for _, _, total, counts in intake.histograms] == [(1.0, (1, 0)), (8.0, (8, 0))]
    d = hist_point([10, 0], [1.0], 10.0)
    intake, _, _ = export(service, histogram("h", d))
    assert intake.histograms[0][2:] == (1.0, (1, 0))


def test_a_request_not_handed_over_keeps_no_totals(service):
    """A request whose RPC died before its hand-over is not stored, so its totals are not the
    next request's baseline (the client sends it again)."""
    first = request(histogram("h", hist_point([3, 0], [1.0], 3.0)))
    service.metrics(first, hand_over=lambda chunks: False)
    assert len(service.cumulative) == 0 and service.submit.taken().histograms == []
    intake, _, _ = export(service, histogram("h", hist_point([3, 0], [1.0], 3.0)))  # the retry
    assert intake.histograms[0][2:] == (3.0, (3, 0))


def test_a_refused_cumulative_point_is_not_kept_as_the_previous_one(service):
    bad = hist_point([1, 2, 3], [1.0, 5.0], math.inf)
    _, refused, message = export(service, histogram("h", bad))
    assert (
        refused == 1
        and message == "1 of 1 data points refused: metric 'h' data point 0: sum inf is not finite"
    )
    assert len(service.cumulative) == 0
    intake, _, _ = export(service, histogram("h", hist_point([1, 2, 3], [1.0, 5.0], 9.0)))
    assert intake.histograms[0][2:] == (9.0, (1, 2, 3))


def test_delta_histograms_and_histograms_without_buckets(service):
    intake, refused, _ = export(
        service,
        histogram("d", hist_point([1, 1], [2.0], 3.0), hist_point([0, 4], [2.0], 12.0), temporality=DELTA_T),
        histogram(
            "only.count",
            mp.HistogramDataPoint(count=7, sum=70.0, start_time_unix_nano=STARTED, time_unix_nano=NOW_NS),
        ),
    )
    assert refused == 0
    assert [(s.name, s.bounds, total, counts) for s, _, total, counts in intake.histograms] == [
        ("d", (2.0,), 3.0, (1, 1)),
        ("d", (2.0,), 12.0, (0, 4)),  # delta points are taken as they are, never subtracted
        ("only.count", (), 70.0, (7,)),  # no buckets: one +Inf bucket of `count`
    ]


def test_cumulative_state_is_bounded():
    state = CumulativeHistograms(max_runs=2, started_ns=10)
    for i in range(3):
        state.keep(((f"h{i}", "", (), ()), 20 + i), ((1,), 1.0))
    assert len(state) == 2 and state.get((("h0", "", (), ()), 20)) is None  # the least recently seen goes
    assert state.get((("h2", "", (), ()), 22)) == ((1,), 1.0)
    assert state.since == 21  # a run of h0 begun at 20 or before may have been counted
    small = CumulativeHistograms(max_bytes=1_000)
    for i in range(10):
        small.keep(((f"h{i}", "", (("k", "v" * 100),), ()), 1), ((1,), 1.0))
    assert len(small) == 3


def test_stale_points_are_skipped_without_a_refusal(service):
    stale = number(1.0, flags=mp.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK)
    intake, refused, message = export(service, mp.Metric(name="g", gauge=mp.Gauge(data_points=[stale])))
    assert (len(intake), refused, message) == (0, 0, "")


def test_what_ferry_has_no_kind_for_is_refused_naming_the_metric(service):
    intake, refused, message = export(
        service,
        mp.Metric(name="ok", gauge=mp.Gauge(data_points=[number(1.0)])),
        mp.Metric(name="s", summary=mp.Summary(data_points=[mp.SummaryDataPoint(), mp.SummaryDataPoint()])),
        mp.Metric(
            name="e",
            exponential_histogram=mp.ExponentialHistogram(data_points=[mp.ExponentialHistogramDataPoint()]),
        ),
        mp.Metric(name="u", sum=mp.Sum(data_points=[number(1)])),
        mp.Metric(name="empty", gauge=mp.Gauge(data_points=[mp.NumberDataPoint(time_unix_nano=NOW_NS)])),
        histogram("nosum", mp.HistogramDataPoint(count=1, bucket_counts=[1], time_unix_nano=NOW_NS)),
    )
    assert [s.name for s, _, _ in intake.points] == ["ok"]
    assert refused == 6
    assert message == "; ".join(
        [
            "6 of 7 data points refused: metric 's': summaries are not taken (Ferry has no summary kind)",
            "export a histogram",
            "metric 'e': exponential histograms are not taken (Ferry stores explicit bucket bounds)",
            "export explicit-bucket histograms (the SDKs' default; "
            "OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION=explicit_bucket_histogram)",
            "metric 'u': sum with aggregation temporality UNSPECIFIED (neither delta nor cumulative)",
            "metric 'empty' data point 0: no value (neither as_double nor as_int)",
            "metric 'nosum' data point 0: histogram without a sum (Ferry's histograms carry one)",
        ]
    )


def test_the_local_validator_refuses_points_one_by_one_with_its_messages(service):
    many = tuple((f"k{i}", "v") for i in range(10_000))
    old = NOW_NS - 20 * 86_400 * 10**9
    intake, refused, message = export(
        service,
        mp.Metric(name="bad.nan", gauge=mp.Gauge(data_points=[number(1.0), number(math.nan)])),
        mp.Metric(name="wide", gauge=mp.Gauge(data_points=[number(1.0, many)])),
        mp.Metric(name="long", gauge=mp.Gauge(data_points=[number(1.0, (("path", "x" * 300),))])),
        mp.Metric(name="n" * 201, gauge=mp.Gauge(data_points=[number(1.0)])),
        mp.Metric(name="old", gauge=mp.Gauge(data_points=[number(1.0, t=old)])),
        mp.Metric(name="unit", unit="u" * 65, gauge=mp.Gauge(data_points=[number(1.0)])),
        histogram("short", hist_point([1, 2], [1.0, 2.0], 3.0)),
        histogram("desc", hist_point([1, 2, 3], [5.0, 2.0], 3.0)),
        histogram("fine", hist_point([1, 2, 3], [1.0, 2.0], 3.0)),
    )
    assert [s.name for s, _, _ in intake.points] == ["bad.nan"]
    assert [s.name for s, *_ in intake.histograms] == ["fine"]
    assert refused == 8
    head, *reasons = message.split("; ")
    assert head.startswith("8 of 10 data points refused: ")
    reasons.insert(0, head.removeprefix("8 of 10 data points refused: "))
    window = re.fullmatch(
        r"metric 'old' data point 0: time (\d+) ms is outside the accepted window \[(\d+), (\d+)\]",
        reasons[4],
    )
    assert window and int(window[1]) == old // 1_000_000 and int(window[2]) > int(window[1])
    assert reasons[:4] + reasons[5:] == [
        "metric 'bad.nan' data point 1: value nan is not finite",
        "metric 'wide' data point 0: 10002 labels > 32 allowed",
        "metric 'long' data point 0: label value 300 bytes > 256 allowed for 'path'",
        f"metric '{'n' * 201}' data point 0: name '{'n' * 40}'... is 201 chars > 200 allowed",
        "metric 'unit' data point 0: unit is 65 bytes > 64 allowed",
        "metric 'short' data point 0: 2 counts != 3 (one per bound, then +Inf)",
        "metric 'desc' data point 0: bucket bounds must be finite and strictly ascending",
    ]


def test_the_messages_past_the_first_ten_are_counted(service):
    points = [number(math.nan) for _ in range(12)]
    _, refused, message = export(service, mp.Metric(name="g", gauge=mp.Gauge(data_points=points)))
    assert refused == 12
    assert message.startswith(
        "12 of 12 data points refused: metric 'g' data point 0: value nan is not finite; "
    )
    assert message.endswith("metric 'g' data point 9: value nan is not finite; and 2 more")


def test_a_big_request_is_checked_and_handed_over_in_chunks_of_the_local_limit(service):
    points = [number(float(i), (("i", str(i)),)) for i in range(25_000)]
    points[12_345] = number(math.inf, (("i", "12345"),))
    accepted, refused, message = service.metrics(
        request(mp.Metric(name="g", gauge=mp.Gauge(data_points=points)))
    )
    assert (accepted, refused) == (24_999, 1)
    assert message == "1 of 25000 data points refused: metric 'g' data point 12345: value inf is not finite"
    sizes = [len(intake) for intake in service.submit.intakes]
    assert sizes == [MAX_RECORDS, MAX_RECORDS - 1, 5_000]  # never more than one Local request's worth


def test_a_cumulative_series_twice_in_one_request_counts_each_growth_once(service):
    first, later = hist_point([1, 0], [1.0], 1.0), hist_point([3, 1], [1.0], 9.0)
    intake, refused, _ = export(service, histogram("h", first, later))
    assert refused == 0
    assert [(total, counts) for _, _, total, counts in intake.histograms] == [(1.0, (1, 0)), (8.0, (2, 1))]


def test_a_resource_over_the_label_limit_is_refused_once_without_copying_its_labels(service):
    """1,000 resource attributes and 2,000 points (a 72 KB request) would be 2,000,000 labels
    once copied onto every point: the resource is checked once and its points refused together."""
    wide = (*RESOURCE, *((f"r{i}", "v") for i in range(1_000)))
    points = [number(float(i), (("i", str(i)),)) for i in range(2_000)]
    metrics = [
        mp.Metric(name="g", gauge=mp.Gauge(data_points=points)),
        histogram("h", hist_point([1, 0], [1.0], 1.0)),
    ]
    both = ms.ExportMetricsServiceRequest(
        resource_metrics=[
            mp.ResourceMetrics(
                resource={"attributes": [kv(k, v) for k, v in wide]},
                scope_metrics=[mp.ScopeMetrics(metrics=metrics)],
            ),
            request(mp.Metric(name="ok", gauge=mp.Gauge(data_points=[number(1.0)]))).resource_metrics[0],
        ]
    )
    tracemalloc.start()
    try:
        accepted, refused, message = service.metrics(both)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (accepted, refused) == (1, 2_001)
    assert message == (
        "2001 of 2002 data points refused: resource 0 (its 2001 data points): 1002 labels > 32 allowed"
    )
    assert [s.name for s, _, _ in service.submit.taken().points] == ["ok"]
    assert peak < 20 * 1024 * 1024  # the labels copied per point took 600 MB

    bad_key = (*RESOURCE, ("", "x"))  # an empty key stays empty: no label takes it
    _, refused, message = export(
        service, mp.Metric(name="g", gauge=mp.Gauge(data_points=[number(1.0)])), resource=bad_key
    )
    assert refused == 1 and message == (
        "1 of 1 data points refused: resource 0 (its 1 data points): label key '' does not match "
        "[A-Za-z_][A-Za-z0-9_.]*"
    )
    # a value is the points' to check: a point's own attribute may replace it
    long_value = (*RESOURCE, ("path", "x" * 300))
    intake, refused, message = export(
        service,
        mp.Metric(name="g", gauge=mp.Gauge(data_points=[number(1.0, (("path", "/"),)), number(2.0)])),
        resource=long_value,
    )
    assert [v for _, _, v in intake.points] == [1.0]
    assert message == (
        "1 of 2 data points refused: metric 'g' data point 1: label value 300 bytes > 256 allowed for 'path'"
    )
