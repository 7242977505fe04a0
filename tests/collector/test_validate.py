"""ferry.collector.validate: every ValidationError branch, with exact messages, and a good batch passing."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ferry.collector.validate import (
    DAY_MS,
    LABEL_KEY_RE,
    NAME_RE,
    Limits,
    ValidationError,
    check_labels,
    check_name,
    check_series,
    validate_batch,
)
from ferry.wire.columns import COUNTER, DELTA, GAUGE, HISTOGRAM, MetricBatch, SeriesDef

NOW = 1_700_000_000_000
LIMITS = Limits()
PAST = 15 * DAY_MS
FUTURE = 600_000


def batch(series, refs=None, times=None, values=None) -> MetricBatch:
    n = len(series) if refs is None else len(refs)
    refs = list(range(n)) if refs is None else refs
    return MetricBatch(
        series=list(series),
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array([NOW] * n if times is None else times, dtype=np.int64),
        value=np.array([1.0] * n if values is None else values, dtype=np.float64),
    )


def rejected(b: MetricBatch, limits: Limits = LIMITS, now_ms: int = NOW) -> str:
    with pytest.raises(ValidationError) as exc:
        validate_batch(b, now_ms, limits)
    return str(exc.value)


def one(series: SeriesDef, limits: Limits = LIMITS) -> str:
    return rejected(batch([series]), limits)


GOOD = [
    SeriesDef("system.cpu.time", COUNTER, "s", (("cpu", "cpu0"), ("state", "idle"))),
    SeriesDef("app:requests-total", DELTA, "{request}", (("route.name", "/x"), ("_code", "200"))),
    SeriesDef("_g", GAUGE),
    SeriesDef("http.latency", HISTOGRAM, "ms", (("k", "é" * 128),), (0.5, 1.0, 2.5, 1e300)),
    SeriesDef("h.no_bounds", HISTOGRAM),
    SeriesDef("h.one_bound", HISTOGRAM, "", (), (-1.0,)),
]


def test_defaults():
    assert Limits(200, 100, 256, 32, 100_000, 4_000_000, 256, 15 * 86_400_000, 600_000) == LIMITS
    assert DAY_MS == 86_400_000


def test_good_batch_passes():
    b = batch(
        GOOD,
        refs=[0, 1, 2, 3, 4, 5, 0, 2],
        times=[NOW, NOW - 1, NOW - PAST, NOW + FUTURE, NOW, NOW, NOW - PAST + 1, NOW + FUTURE - 1],
        values=[0.0, -1.5, 1e308, -1e308, 5e-324, -0.0, 3.0, 2.0],
    )
    assert validate_batch(b, NOW, LIMITS) is None


def test_empty_batch_passes_even_with_no_time_checks():
    assert validate_batch(MetricBatch.empty(), NOW, LIMITS) is None
    # series with no points: only the series table is checked
    assert validate_batch(batch(GOOD, refs=[]), NOW, LIMITS) is None


def test_limits_exactly_reached_pass():
    name = "n" * 200
    labels = tuple((f"k{i:02d}", "v") for i in range(32))
    s = SeriesDef(name, GAUGE, "", labels)
    assert validate_batch(batch([s]), NOW, LIMITS) is None
    assert validate_batch(batch([SeriesDef("m", GAUGE, "", (("k" * 100, "v" * 256),))]), NOW, LIMITS) is None
    hist = SeriesDef("h", HISTOGRAM, bounds=(1.0, 2.0))
    small = Limits(max_series=2, max_points=3, max_bounds=2)
    assert validate_batch(batch([hist, hist], refs=[0, 1, 0]), NOW, small) is None


# ---- names ----------------------------------------------------------------------------------------


def test_empty_name():
    assert one(SeriesDef("", GAUGE)) == "metric name is empty"


def test_too_long_name():
    name = "a" * 201
    assert one(SeriesDef(name, GAUGE)) == f"metric name {'a' * 40!r}... is 201 chars > 200 allowed"


def test_too_long_name_with_small_limit():
    assert (
        one(SeriesDef("abcdef", GAUGE), Limits(max_name_len=5))
        == "metric name 'abcdef'... is 6 chars > 5 allowed"
    )


@pytest.mark.parametrize("name", ["1abc", "a b", "a/b", "cpu{x}", "é", "a\n", "-a", ".a", "a,b", "ä.b"])
def test_bad_name_charset(name):
    assert one(SeriesDef(name, GAUGE)) == f"metric name {name!r} does not match {NAME_RE.pattern}"


@pytest.mark.parametrize("name", ["a", "_", "A9", "a.b:c-d_e", "Z" * 200])
def test_good_names(name):
    assert check_name(name, LIMITS) is None


def test_check_name_what():
    with pytest.raises(ValidationError, match=r"^label name is empty$"):
        check_name("", LIMITS, what="label name")


# ---- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["1k", "k-x", "k:x", "", "k y", "ключ", "k/"])
def test_bad_label_key(key):
    msg = one(SeriesDef("m", GAUGE, "", (("ok", "1"), (key, "v"))))
    assert msg == f"series 0 'm': label key {key!r} does not match {LABEL_KEY_RE.pattern}"


def test_label_key_too_long():
    key = "k" * 101
    msg = one(SeriesDef("m", GAUGE, "", ((key, "v"),)))
    assert msg == f"series 0 'm': label key {'k' * 40!r}... is 101 chars > 100 allowed"


def test_duplicate_label_key():
    msg = one(SeriesDef("m", GAUGE, "", (("a", "1"), ("b", "2"), ("a", "3"))))
    assert msg == "series 0 'm': label key 'a' appears twice"


def test_label_value_over_max_bytes_counts_bytes_not_chars():
    # 129 chars of 2-byte UTF-8: 258 bytes although only 129 characters
    msg = one(SeriesDef("m", GAUGE, "", (("host", "x"), ("path", "é" * 129))))
    assert msg == "series 0 'm': label value 258 bytes > 256 allowed for 'path'"


def test_label_value_over_small_limit():
    msg = one(SeriesDef("m", GAUGE, "", (("k", "✓✓"),)), Limits(max_label_value_bytes=5))
    assert msg == "series 0 'm': label value 6 bytes > 5 allowed for 'k'"


def test_too_many_labels():
    labels = tuple((f"k{i}", "v") for i in range(33))
    assert one(SeriesDef("m", GAUGE, "", labels)) == "series 0 'm': 33 labels > 32 allowed"
    assert (
        one(SeriesDef("m", GAUGE, "", labels[:3]), Limits(max_labels=2))
        == "series 0 'm': 3 labels > 2 allowed"
    )


def test_check_labels_where_is_prefixed():
    with pytest.raises(ValidationError, match=r"^resource: label key 'a' appears twice$"):
        check_labels((("a", ""), ("a", "")), LIMITS, "resource")


def test_error_names_the_right_series_index():
    b = batch([GOOD[0], GOOD[2], SeriesDef("bad.one", GAUGE, "", (("x", "1"), ("x", "2")))])
    assert rejected(b) == "series 2 'bad.one': label key 'x' appears twice"


# ---- kinds and bounds -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [0, 5, 99])
def test_unknown_kind(kind):
    msg = one(SeriesDef("m", kind))
    assert msg == f"series 0 'm': unknown kind {kind} (known: 1 GAUGE, 2 COUNTER, 3 DELTA, 4 HISTOGRAM)"


@pytest.mark.parametrize(
    "bounds",
    [(1.0, 1.0), (2.0, 1.0), (1.0, 3.0, 2.0), (-1.0, -2.0), (0.0, -0.0)],
)
def test_histogram_bounds_not_strictly_ascending(bounds):
    msg = one(SeriesDef("h", HISTOGRAM, "", (), bounds))
    assert msg == "series 0 'h': bucket bounds must be finite and strictly ascending"


@pytest.mark.parametrize(
    "bounds",
    [(float("nan"),), (1.0, float("inf")), (float("-inf"), 0.0), (1.0, float("nan"), 3.0)],
)
def test_histogram_bounds_not_finite(bounds):
    msg = one(SeriesDef("h", HISTOGRAM, "", (), bounds))
    assert msg == "series 0 'h': bucket bounds must be finite and strictly ascending"


def test_too_many_bounds():
    msg = one(SeriesDef("h", HISTOGRAM, "", (), (1.0, 2.0, 3.0)), Limits(max_bounds=2))
    assert msg == "series 0 'h': 3 bucket bounds > 2 allowed"
    bounds = tuple(float(i) for i in range(257))
    assert one(SeriesDef("h", HISTOGRAM, "", (), bounds)) == "series 0 'h': 257 bucket bounds > 256 allowed"


@pytest.mark.parametrize("kind", [GAUGE, COUNTER, DELTA])
def test_bounds_on_non_histogram(kind):
    msg = one(SeriesDef("g", kind, "", (), (1.0, 2.0)))
    assert msg == "series 0 'g': bucket bounds given for a non-histogram series"


def test_check_series_directly():
    with pytest.raises(
        ValidationError, match=r"^series 7 'g': bucket bounds given for a non-histogram series$"
    ):
        check_series(SeriesDef("g", GAUGE, bounds=(1.0,)), LIMITS, 7)
    assert check_series(GOOD[3], LIMITS, 0) is None


# ---- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")],
)
def test_non_finite_value_names_the_series(bad, shown):
    b = batch([GOOD[0], SeriesDef("disk.io", COUNTER)], refs=[0, 0, 1, 1], values=[1.0, 2.0, bad, 3.0])
    msg = rejected(b)
    # numpy >= 2 reprs scalars as np.float64(...); accept either spelling of the same value
    assert re.fullmatch(
        rf"point 2 of 'disk\.io' has non-finite value (?:np\.float64\()?{re.escape(shown)}\)?", msg
    ), msg


def test_first_non_finite_value_is_reported():
    b = batch(
        [SeriesDef("a", GAUGE), SeriesDef("b", GAUGE)],
        refs=[0, 1, 0],
        values=[1.0, float("inf"), float("nan")],
    )
    assert rejected(b).startswith("point 1 of 'b' has non-finite value ")


def test_non_finite_checked_before_time_window():
    b = batch([SeriesDef("a", GAUGE)], refs=[0, 0], times=[0, NOW], values=[1.0, float("nan")])
    assert rejected(b).startswith("point 1 of 'a' has non-finite value ")


# ---- time window ----------------------------------------------------------------------------------


def window_msg(i: int, name: str, t: int, now: int, past: int = PAST, future: int = FUTURE) -> str:
    return (
        f"point {i} of {name!r} has time {t} ms outside the accepted window "
        f"[{now - past}, {now + future}] (now - {past} ms, now + {future} ms)"
    )


def test_time_too_old():
    t = NOW - PAST - 1
    b = batch([SeriesDef("a", GAUGE), SeriesDef("old.one", GAUGE)], refs=[0, 1], times=[NOW, t])
    assert rejected(b) == window_msg(1, "old.one", t, NOW)


def test_time_too_far_in_future():
    t = NOW + FUTURE + 1
    b = batch([SeriesDef("a", GAUGE)], refs=[0, 0, 0], times=[NOW, t, NOW + 10 * FUTURE])
    assert rejected(b) == window_msg(1, "a", t, NOW)


def test_time_window_uses_injected_now_and_limits():
    limits = Limits(max_past_ms=1000, max_future_ms=10)
    now = 5_000
    assert (
        validate_batch(batch([SeriesDef("a", GAUGE)], refs=[0, 0], times=[4_000, 5_010]), now, limits) is None
    )
    b = batch([SeriesDef("a", GAUGE)], refs=[0, 0], times=[4_000, 3_999])
    assert rejected(b, limits, now) == window_msg(1, "a", 3_999, now, 1000, 10)
    b = batch([SeriesDef("a", GAUGE)], refs=[0], times=[5_011])
    assert rejected(b, limits, now) == window_msg(0, "a", 5_011, now, 1000, 10)
    # the same points are fine for a different now
    assert validate_batch(batch([SeriesDef("a", GAUGE)], refs=[0], times=[5_011]), 5_001, limits) is None


def test_zero_and_negative_times_rejected():
    b = batch([SeriesDef("a", GAUGE)], refs=[0], times=[-1])
    assert rejected(b) == window_msg(0, "a", -1, NOW)


# ---- frame-level limits ---------------------------------------------------------------------------


def test_too_many_series():
    b = batch([SeriesDef("a", GAUGE)] * 3, refs=[0])
    assert rejected(b, Limits(max_series=2)) == "3 series in one frame > 2 allowed"


def test_too_many_points():
    b = batch([SeriesDef("a", GAUGE)], refs=[0, 0, 0, 0])
    assert rejected(b, Limits(max_points=3)) == "4 points in one frame > 3 allowed"


def test_frame_limits_checked_before_series():
    b = batch([SeriesDef("", GAUGE)] * 3, refs=[0])
    assert rejected(b, Limits(max_series=2)) == "3 series in one frame > 2 allowed"


def test_validation_error_is_value_error():
    assert issubclass(ValidationError, ValueError)
