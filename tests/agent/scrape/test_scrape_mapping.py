"""Expositions written by a real prometheus_client registry (text and OpenMetrics), parsed and
mapped onto Ferry series the way the agent's scraper does."""

from __future__ import annotations

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from ferry.agent.scrape.config import ScrapeTarget
from ferry.agent.scrape.fetch import ScrapeError
from ferry.agent.scrape.histograms import HistogramError, buckets, delta
from ferry.agent.scrape.mapping import Mapped, TargetState, map_families, merge_labels
from ferry.agent.scrape.parse import parse
from ferry.series import COUNTER, GAUGE, HISTOGRAM

NOW = 1_700_000_000_000
TARGET = ScrapeTarget("app", "http://127.0.0.1:9100/metrics", labels=(("env", "test"),))
BASE = (("env", "test"), ("instance", "127.0.0.1:9100"), ("job", "app"))
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
FORMATS = [(generate_latest, TEXT), (generate_openmetrics, OPENMETRICS)]
FORMAT_IDS = ["text", "openmetrics"]


def scrape(registry: CollectorRegistry, fmt, state: TargetState | None = None) -> Mapped:
    generate, content_type = fmt
    return map_families(parse(generate(registry), content_type), TARGET, state or TargetState(), NOW)


def scrape_text(text: str, content_type: str = TEXT, state: TargetState | None = None) -> Mapped:
    return map_families(parse(text.encode(), content_type), TARGET, state or TargetState(), NOW)


def points(mapped: Mapped) -> dict[tuple, tuple[int, int, float]]:
    """{(name, labels beyond the target's): (kind, time, value)}"""
    return {
        (s.name, tuple(kv for kv in s.labels if kv not in BASE)): (s.kind, t, v) for s, t, v in mapped.points
    }


def histograms(mapped: Mapped) -> dict[tuple, tuple]:
    return {
        (s.name, tuple(kv for kv in s.labels if kv not in BASE)): (s.bounds, total, counts)
        for s, _t, total, counts in mapped.histograms
    }


@pytest.fixture
def registry() -> CollectorRegistry:
    r = CollectorRegistry()
    requests = Counter("http_requests", "Requests", ["code"], registry=r)
    requests.labels("200").inc(40)
    requests.labels("500").inc(2)
    Gauge("temperature", "Now", registry=r).set(3.25)
    latency = Histogram("latency_seconds", "Latency", buckets=(0.1, 0.5, 1.0), registry=r)
    for v in (0.05, 0.1, 0.25, 0.5, 0.75, 2.0):
        latency.observe(v)
    Summary("payload_bytes", "Sizes", registry=r).observe(512)
    return r


@pytest.mark.parametrize("fmt", FORMATS, ids=FORMAT_IDS)
def test_counter_gauge_summary_histogram(registry, fmt):
    mapped = scrape(registry, fmt)
    assert points(mapped) == {
        ("http_requests_total", (("code", "200"),)): (COUNTER, NOW, 40.0),
        ("http_requests_total", (("code", "500"),)): (COUNTER, NOW, 2.0),
        ("temperature", ()): (GAUGE, NOW, 3.25),
        ("payload_bytes_count", ()): (COUNTER, NOW, 1.0),
        ("payload_bytes_sum", ()): (COUNTER, NOW, 512.0),
    }  # no `_created` series, from either format
    # le 0.1 holds 0.05 and 0.1; 0.5 holds 0.25 and 0.5; 1.0 holds 0.75; +Inf holds 2.0
    assert histograms(mapped) == {
        ("latency_seconds", ()): ((0.1, 0.5, 1.0), pytest.approx(3.65), (2, 2, 1, 1))
    }
    assert not mapped.skipped
    every_series = [s for s, *_ in mapped.points] + [s for s, *_ in mapped.histograms]
    assert all(dict(s.labels).items() >= dict(BASE).items() for s in every_series)
    assert [s.kind for s, *_ in mapped.histograms] == [HISTOGRAM]


def test_summary_quantiles_are_gauges():
    mapped = scrape_text(
        "# TYPE rpc_seconds summary\n"
        'rpc_seconds{quantile="0.5"} 0.25\n'
        'rpc_seconds{quantile="0.99"} NaN\n'
        "rpc_seconds_sum 7.5\n"
        "rpc_seconds_count 30\n"
    )
    assert points(mapped) == {
        ("rpc_seconds", (("quantile", "0.5"),)): (GAUGE, NOW, 0.25),
        ("rpc_seconds_sum", ()): (COUNTER, NOW, 7.5),
        ("rpc_seconds_count", ()): (COUNTER, NOW, 30.0),
    }
    assert mapped.skipped == {"value": 1}  # the NaN quantile
    assert "rpc_seconds: value nan is not finite" in mapped.examples["value"]


def test_info_and_stateset_are_gauges_per_sample():
    r = CollectorRegistry()
    Info("build", "Build", registry=r).info({"version": "1.2"})
    Enum("phase", "Phase", states=["starting", "running"], registry=r).state("running")
    for fmt in FORMATS:
        assert points(scrape(r, fmt)) == {
            ("build_info", (("version", "1.2"),)): (GAUGE, NOW, 1.0),
            ("phase", (("phase", "starting"),)): (GAUGE, NOW, 0.0),
            ("phase", (("phase", "running"),)): (GAUGE, NOW, 1.0),
        }


def test_untyped_and_unknown_are_gauges():
    assert points(scrape_text("some_value 7\n")) == {("some_value", ()): (GAUGE, NOW, 7.0)}
    mapped = scrape_text("# TYPE u unknown\nu 8\n# EOF\n", OPENMETRICS)
    assert points(mapped) == {("u", ()): (GAUGE, NOW, 8.0)}


def test_histogram_counts_are_growth_since_the_last_scrape_and_restart_on_reset(registry):
    latency = registry._names_to_collectors["latency_seconds"]
    first = scrape(registry, FORMATS[1])
    assert histograms(first)[("latency_seconds", ())][1:] == (pytest.approx(3.65), (2, 2, 1, 1))

    latency.observe(0.3)
    latency.observe(5.0)
    second = scrape(registry, FORMATS[1], first.state)
    (_, total, counts) = histograms(second)[("latency_seconds", ())]
    assert counts == (0, 1, 0, 1) and total == pytest.approx(5.3)

    unchanged = scrape(registry, FORMATS[1], second.state)
    assert histograms(unchanged)[("latency_seconds", ())][1:] == (0.0, (0, 0, 0, 0))
    # the same SeriesDef object every scrape: the batcher keys series by identity
    assert unchanged.histograms[0][0] is first.histograms[0][0]

    restarted = CollectorRegistry()  # the target restarted: fewer observations than before
    fresh = Histogram("latency_seconds", "Latency", buckets=(0.1, 0.5, 1.0), registry=restarted)
    fresh.observe(0.7)
    after = scrape(restarted, FORMATS[1], unchanged.state)
    assert histograms(after)[("latency_seconds", ())][1:] == (0.7, (0, 0, 1, 0))

    # summed over every scrape, counts are what the target exposed (before and after its restart)
    summed = [sum(c) for c in zip(*(m.histograms[0][3] for m in (first, second, unchanged)), strict=True)]
    assert summed == [2, 3, 1, 2]


def test_histogram_labels_bounds_and_state_per_series():
    text = (
        "# TYPE rt histogram\n"
        'rt_bucket{route="/a",le="1"} 1\nrt_bucket{route="/a",le="+Inf"} 3\n'
        'rt_sum{route="/a"} 12\nrt_count{route="/a"} 3\n'
        'rt_bucket{route="/b",le="1"} 0\nrt_bucket{route="/b",le="+Inf"} 1\n'
        'rt_sum{route="/b"} 4\nrt_count{route="/b"} 1\n'
    )
    first = scrape_text(text)
    assert histograms(first) == {
        ("rt", (("route", "/a"),)): ((1.0,), 12.0, (1, 2)),
        ("rt", (("route", "/b"),)): ((1.0,), 4.0, (0, 1)),
    }
    again = scrape_text(
        text.replace('rt_bucket{route="/b",le="+Inf"} 1', 'rt_bucket{route="/b",le="+Inf"} 2').replace(
            'rt_sum{route="/b"} 4', 'rt_sum{route="/b"} 9'
        ),
        state=first.state,
    )
    assert histograms(again) == {
        ("rt", (("route", "/a"),)): ((1.0,), 0.0, (0, 0)),
        ("rt", (("route", "/b"),)): ((1.0,), 5.0, (0, 1)),
    }


@pytest.mark.parametrize(
    ("body", "reason", "message"),
    [
        ('# TYPE h histogram\nh_bucket{le="1"} 2\nh_sum 1\nh_count 2\n', "histogram", "no le=+Inf bucket"),
        (
            '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n',
            "histogram",
            "bucket le=inf count 2 < 3 of the bucket below",
        ),
        ('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 2\n', "histogram", "no h_sum sample"),
        ('# TYPE h histogram\nh_bucket{le="+Inf"} 2.5\nh_sum 1\n', "histogram", "is not a whole number"),
        ('# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum +Inf\n', "value", "h_sum: value inf"),
    ],
)
def test_broken_histograms_are_skipped_whole(body, reason, message):
    mapped = scrape_text(body + "ok 1\n")
    assert not mapped.histograms
    assert points(mapped) == {("ok", ()): (GAUGE, NOW, 1.0)}
    assert mapped.skipped == {reason: body.count("\n") - 1}
    assert message in mapped.examples[reason]


def test_label_clashes_are_exported_like_prometheus():
    mapped = scrape_text('up_like{job="inner",instance="x:1",env="prod",exported_job="y"} 1\n')
    (series, _t, _v) = mapped.points[0]
    assert dict(series.labels) == {
        "job": "app",
        "instance": "127.0.0.1:9100",
        "env": "test",
        "exported_instance": "x:1",
        "exported_env": "prod",
        "exported_job": "y",
        "exported_exported_job": "inner",
    }
    assert merge_labels({"a": "", "b": "1"}, {"job": "j"}) == {"b": "1", "job": "j"}  # empty = absent


def test_samples_ferry_refuses_are_skipped_and_counted():
    long_value = "v" * 300
    many = ",".join(f'l{i}="x"' for i in range(31))
    mapped = scrape_text(
        "good 1\n"
        '{"dotted name with space"} 2\n'  # a UTF-8 name Prometheus allows and Ferry does not
        f'long_label{{path="{long_value}"}} 3\n'
        f"many_labels{{{many}}} 4\n"  # 31 + env, job, instance > 32
        '{"ok_name", "bad key"="v"} 5\n'
        "not_a_number NaN\n"
        "too_big +Inf\n"
        "too_small -Inf\n"
        "stale 1 1000\n"  # 1970: outside the accepted window
    )
    assert points(mapped) == {("good", ()): (GAUGE, NOW, 1.0)}
    assert mapped.skipped == {"name": 1, "labels": 3, "value": 3, "time": 1}
    assert mapped.samples == 9
    assert "does not match" in mapped.examples["name"]
    assert "label value 300 bytes > 256 allowed for 'path'" in mapped.examples["labels"]


def test_refused_series_stay_refused_from_the_cache_on_later_scrapes():
    first = scrape_text('{"a b"} 1\nfine 2\n')
    second = scrape_text('{"a b"} 1\nfine 2\n', state=first.state)
    assert second.skipped == {"name": 1} and len(second.points) == 1
    assert second.points[0][0] is first.points[0][0]


def test_sample_timestamps_are_kept():
    text = scrape_text(f"with_time 1 {NOW - 5000}\nwithout 2\n")
    assert points(text) == {("with_time", ()): (GAUGE, NOW - 5000, 1.0), ("without", ()): (GAUGE, NOW, 2.0)}
    om = scrape_text(f"# TYPE g gauge\ng 1 {(NOW - 1500) / 1000}\n# EOF\n", OPENMETRICS)
    assert points(om) == {("g", ()): (GAUGE, NOW - 1500, 1.0)}


def test_openmetrics_units_become_the_series_unit():
    r = CollectorRegistry()
    Gauge("disk_free", "Free", unit="bytes", registry=r).set(5)
    (series, _t, _v) = scrape(r, FORMATS[1]).points[0]
    assert (series.name, series.unit) == ("disk_free_bytes", "bytes")


def test_bad_expositions_are_scrape_errors():
    with pytest.raises(ScrapeError, match="Prometheus text parse error"):
        parse(b"metric{ 1\n", TEXT)
    with pytest.raises(ScrapeError, match="OpenMetrics parse error: Missing # EOF"):
        parse(b"# TYPE a gauge\na 1\n", OPENMETRICS)
    with pytest.raises(ScrapeError, match="not UTF-8"):
        parse(b"a 1\n\xff\n", TEXT)


def test_buckets_and_delta():
    assert buckets([("+Inf", 6), ("0.5", 4), ("0.1", 2), ("1", 5)]) == ((0.1, 0.5, 1.0), (2, 2, 1, 1))
    assert buckets([("+Inf", 3)]) == ((), (3,))
    for bad in ([("1", 1), ("1.0", 1), ("+Inf", 1)], [("x", 1), ("+Inf", 1)], [("-Inf", 0), ("+Inf", 1)]):
        with pytest.raises(HistogramError):
            buckets(bad)
    assert delta(None, (1, 2), 3.0) == ((1, 2), 3.0)
    assert delta(((1, 2), 3.0), (1, 5), 4.5) == ((0, 3), 1.5)
    assert delta(((1, 2), 3.0), (0, 5), 4.5) == ((0, 5), 4.5)  # a bucket went down: a reset
