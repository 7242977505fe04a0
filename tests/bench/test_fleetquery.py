"""bench.fleetquery at a tiny size (5 hosts, the day's last 10 minutes raw): the store holds the
formulas' values exactly (raw points, the 1h rollup's day, histogram counts) through a real
collector, and Ferry's and Prometheus's answers to the fleet questions agree. No timing is
asserted: that is `make bench`'s job."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from bench import fleetquery as fq
from bench import prometheus

HOSTS = 5
RAW_STEPS = 60  # 10 minutes


@pytest.fixture(scope="module")
def span() -> fq.Span:
    return fq.Span.ending_hours_ago(raw_steps=RAW_STEPS)


@pytest.fixture(scope="module")
def fleet() -> fq.Fleet:
    return fq.Fleet.make(HOSTS)


@pytest.fixture(scope="module")
def generated(tmp_path_factory, span):
    store = tmp_path_factory.mktemp("fleetquery") / "store"
    return store, fq.generate_isolated(store, HOSTS, span)


def test_sizes(generated):
    _, gen = generated
    series, histograms = HOSTS * fq.PER_HOST, HOSTS * len(fq.SERVICES)
    plain = series - histograms
    assert fq.PER_HOST == 319 and fq.CPU_PER_HOST == 128 and gen["cpu_series"] == HOSTS * 128
    assert gen["rows"] == {
        "series": series,
        "samples": plain * RAW_STEPS,
        "histograms": histograms * RAW_STEPS,
        "samples_1m": plain * RAW_STEPS // 6,
        "samples_1h": plain * 24,
        "histograms_1m": histograms * RAW_STEPS // 6,
        "histograms_1h": histograms * 24,
    }


def _query(client: fq.FerryClient, resolution: str = "raw", **fields) -> fq.Answer:
    return fq._ferry_answer(client.stub.QueryRange(fq._request(fields, resolution), timeout=60))


def test_the_store_holds_the_formulas(generated, span, fleet, tmp_path):
    store, _ = generated
    steps = np.arange(span.raw_first, fq.DAY_STEPS)
    times = span.d0_ms + steps * fq.STEP_MS  # the 10 s bucket of each point
    raw = {"start_ms": span.raw_start_ms, "end_ms": span.end_ms}
    with fq.collector(store, tmp_path) as (addr, _):
        client = fq.FerryClient(addr)
        try:
            # one gauge and one counter, point by point (one point per 10 s bucket)
            for name, labels, values in (
                (fq.CPU, {"host": "host-0003", "cpu": "7", "state": "user"}, fleet.gauge),
                (fq.REQUESTS, {"host": "host-0001", "service": "web", "code": "500"}, fleet.counter),
            ):
                matchers = [{"label": k, "op": 0, "value": v} for k, v in labels.items()]
                got = _query(client, metric=name, agg="max", matchers=matchers, step_ms=fq.STEP_MS, **raw)
                (t, v), = got.values()  # fmt: skip
                want = values(fleet.where(name, **labels), steps)[0]
                assert t.tolist() == times.tolist() and v.tolist() == want.tolist()
            # each host's avg cpu per hour of the day: 23 hours of closed forms in the 1h rollup,
            # the last one from its 10 raw minutes, exactly the formula's mean
            day = _query(client, "1h", metric=fq.CPU, agg="avg", group_by=["host"], start_ms=span.d0_ms,
                         end_ms=span.end_ms, step_ms=fq.HOUR_MS)  # fmt: skip
            want = fq.expected_avg_by_host(fleet, span, fq.HOUR_MS)
            assert fq.compare(day, want, rel=0.0)["equal"]
            # observations per minute over the fleet, raw and from the 1m rollup
            idx = fleet.where(fq.DURATION)
            per_minute = fleet.histogram(idx, steps).sum(axis=(0, 2)).reshape(-1, 6).sum(axis=1)
            for res in ("raw", "1m"):
                got = _query(client, res, metric=fq.DURATION, agg="count", group_by=["__all__"],
                             step_ms=fq.MINUTE_MS, **raw)  # fmt: skip
                assert got[()][1].tolist() == per_minute.astype(float).tolist()
        finally:
            client.close()


def _prometheus_missing() -> str:
    exe = shutil.which("prometheus") or (prometheus.BINARY if os.path.exists(prometheus.BINARY) else "")
    if not exe:
        return f"no prometheus binary (PATH, {prometheus.BINARY}): the Prometheus side is not run"
    if not (shutil.which("promtool") or os.path.exists(os.path.join(os.path.dirname(exe), "promtool"))):
        return f"no promtool next to {exe}: the Prometheus side is not run"
    return ""


@pytest.mark.skipif(bool(_prometheus_missing()), reason=_prometheus_missing() or "-")
def test_ferry_and_prometheus_agree(generated, span, fleet, tmp_path):
    store, _ = generated
    load = fq.load_prometheus(tmp_path, fleet, span)
    assert load["samples"] == HOSTS * (fq.PER_HOST - len(fq.SERVICES) + len(fq.SERVICES) * 9) * RAW_STEPS
    with fq.prom_server(tmp_path / "tsdb", tmp_path) as server, fq.collector(store, tmp_path) as (addr, _):
        asked = fq.ask_all(addr, span, 1, server, fleet)
    for key, res in (
        ("avg_by_host", "raw"), ("avg_by_host", "1m"), ("avg_by_host", "auto"),
        ("avg_by_host_step_1h", "raw"), ("avg_by_host_step_1h", "1h"),
        ("sum_by_state", "raw"), ("sum_by_state", "1m"),
        ("p99_duration", "raw:by __all__"), ("p99_duration", "1m:by __all__"),
        ("rate_requests", "raw"), ("error_ratio", "raw:two queries"), ("label_values_host", "auto"),
    ):  # fmt: skip
        got = asked[key]["ferry"][res]
        assert "refused" not in got, (key, res, got["refused"])
        same = got["same_as_prometheus"]
        assert same["equal"], (key, res, same)
    # the answers are not empty: every host, every step of the raw 10 minutes
    cpu = asked["avg_by_host"]["ferry"]["raw"]["same_as_prometheus"]
    assert cpu["groups"] == [HOSTS, HOSTS] and cpu["points"] == [HOSTS * 10, HOSTS * 10]
    p99 = asked["p99_duration"]["ferry"]["raw:by __all__"]["answer"][()][1]
    assert ((p99 > 500) & (p99 < 1000)).all()  # inside the (500, 1000] bucket, interpolated


@pytest.mark.skipif(bool(_prometheus_missing()), reason=_prometheus_missing() or "-")
def test_the_day_from_the_1h_rollup_is_prometheus_over_every_point(generated, span, fleet, tmp_path):
    store, _ = generated
    load = fq.load_prometheus(tmp_path, fleet, span, [fq.CPU])
    assert load["samples"] == HOSTS * fq.CPU_PER_HOST * (23 * 360 + RAW_STEPS)  # what the store stands for
    with fq.prom_server(tmp_path / "tsdb", tmp_path) as server, fq.collector(store, tmp_path) as (addr, _):
        asked = fq.ask_all(addr, span, 1, server, fleet, day=True)
    assert list(asked) == ["avg_by_host_24h"]
    same = asked["avg_by_host_24h"]["ferry"]["1h"]["same_as_prometheus"]
    assert same["equal"] and same["points"] == [HOSTS * 24, HOSTS * 24], same
