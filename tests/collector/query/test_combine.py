"""ferry.collector.query.combine: per-(series, bucket) partials -> one row per (group, bucket)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from ferry.collector.query.combine import combine

# Rows as the store returns them: one per (series, bucket), NOT sorted by group.
# Group 5 and group 2; buckets 0, 60_000, 120_000 (group 5 has no 120_000 bucket).
GROUP = np.array([5, 2, 2, 5, 2, 5, 2], dtype=np.int64)
T = np.array([60_000, 0, 60_000, 0, 0, 60_000, 120_000], dtype=np.int64)
SUMS = [10.0, 1.0, 4.0, 7.0, 3.0, 20.0, 5.0]  # sum(value)
COUNTS = [2, 1, 2, 1, 3, 3, 1]  # count()
MINS = [3.5, -1.0, 2.0, 0.0, -4.0, 9.0, 6.25]  # min(value)
MAXS = [4.0, 8.0, 2.5, 0.5, -4.0, 9.5, 6.25]  # max(value)
LAST_V = [3.5, -1.0, 2.0, 0.0, -4.0, 9.0, 6.25]  # argMax(value, ts)
LAST_TS = [61_000, 100, 60_001, 5, 150, 60_500, 120_000]  # max(ts) in ms

OUT_GROUP = [2, 2, 2, 5, 5]
OUT_T = [0, 60_000, 120_000, 0, 60_000]


def run(agg, partials):
    g, t, v = combine(agg, GROUP, T, partials)
    assert g.tolist() == OUT_GROUP
    assert t.tolist() == OUT_T
    assert v.dtype == np.float64
    return v.tolist()


def test_avg_is_sum_of_sums_over_sum_of_counts():
    # (5, 60000): (10 + 20) / (2 + 3) = 6.0, not the mean of the means (5 + 6.67) / 2
    assert run("avg", [SUMS, COUNTS]) == [4.0 / 4, 4.0 / 2, 5.0 / 1, 7.0 / 1, 30.0 / 5]


def test_sum():
    assert run("sum", [SUMS]) == [4.0, 4.0, 5.0, 7.0, 30.0]


def test_count_adds_counts():
    assert run("count", [COUNTS]) == [4.0, 2.0, 1.0, 1.0, 5.0]


def test_min():
    assert run("min", [MINS]) == [-4.0, 2.0, 6.25, 0.0, 3.5]


def test_max():
    assert run("max", [MAXS]) == [8.0, 2.5, 6.25, 0.5, 9.5]


def test_last_picks_value_with_greatest_last_ts():
    # (2, 0): row 4 (ts 150) beats row 1 (ts 100) although row 1 comes first;
    # (5, 60000): row 0 (ts 61000) beats row 5 (ts 60500) although row 5 comes later and is larger
    assert run("last", [LAST_V, LAST_TS]) == [-4.0, 2.0, 6.25, 0.0, 3.5]


def test_partials_as_tuples_and_numpy_ints():
    g, t, v = combine("sum", GROUP, T, [tuple(np.array(COUNTS, dtype=np.uint64))])
    assert (g.tolist(), t.tolist(), v.tolist()) == (OUT_GROUP, OUT_T, [4.0, 2.0, 1.0, 1.0, 5.0])


def test_input_order_does_not_matter():
    rng = np.random.default_rng(7)
    for _ in range(5):
        p = rng.permutation(GROUP.shape[0])
        g, t, v = combine("last", GROUP[p], T[p], [np.array(LAST_V)[p], np.array(LAST_TS)[p]])
        assert (g.tolist(), t.tolist(), v.tolist()) == (OUT_GROUP, OUT_T, [-4.0, 2.0, 6.25, 0.0, 3.5])
        g, t, v = combine("avg", GROUP[p], T[p], [np.array(SUMS)[p], np.array(COUNTS)[p]])
        assert v.tolist() == [1.0, 2.0, 5.0, 7.0, 6.0]


def test_single_row():
    g, t, v = combine("max", np.array([3]), np.array([42]), [[1.5]])
    assert (g.tolist(), t.tolist(), v.tolist()) == ([3], [42], [1.5])


def test_every_row_its_own_output():
    g, t, v = combine("min", np.array([1, 0, 1]), np.array([0, 0, 10]), [[3.0, 2.0, 1.0]])
    assert (g.tolist(), t.tolist(), v.tolist()) == ([0, 1, 1], [0, 0, 10], [2.0, 3.0, 1.0])


@pytest.mark.parametrize("agg", ["avg", "sum", "count", "min", "max", "last"])
def test_empty(agg):
    g, t, v = combine(agg, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [[], []])
    assert g.shape == t.shape == v.shape == (0,)
    assert v.dtype == np.float64


def test_unknown_aggregation():
    with pytest.raises(ValueError, match=r"^unknown aggregation 'median'$"):
        combine("median", GROUP, T, [SUMS])


def reference(agg, group, t, partials):
    acc = defaultdict(list)
    for i in range(len(group)):
        acc[(int(group[i]), int(t[i]))].append([p[i] for p in partials])
    out = []
    for key in sorted(acc):
        rows = acc[key]
        if agg == "avg":
            v = sum(r[0] for r in rows) / sum(r[1] for r in rows)
        elif agg in ("sum", "count"):
            v = sum(r[0] for r in rows)
        elif agg == "min":
            v = min(r[0] for r in rows)
        elif agg == "max":
            v = max(r[0] for r in rows)
        else:
            v = max(rows, key=lambda r: r[1])[0]
        out.append((*key, float(v)))
    return out


@pytest.mark.parametrize("agg", ["avg", "sum", "count", "min", "max", "last"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_reference(agg, seed):
    rng = np.random.default_rng(seed)
    n = 400
    group = rng.integers(0, 6, n)
    t = rng.integers(0, 20, n) * 15_000
    # integers keep float sums exact whatever the summation order
    a = rng.integers(-1000, 1000, n).astype(np.float64)
    b = rng.permutation(n) + 1  # counts >= 1; unique last_ts so "last" is well defined
    got = combine(agg, group, t, [a, b])
    want = reference(agg, group.tolist(), t.tolist(), [a.tolist(), b.tolist()])
    assert list(zip(got[0].tolist(), got[1].tolist(), got[2].tolist(), strict=True)) == want
