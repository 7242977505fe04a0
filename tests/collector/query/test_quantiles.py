"""ferry.collector.query.quantiles: Prometheus-style histogram_quantile over summed delta counts."""

from __future__ import annotations

import numpy as np
import pytest

from ferry.collector.query.quantiles import MixedBounds, combine_histograms, histogram_quantile

BOUNDS = np.array([0.1, 0.5, 1.0, 5.0])


def hq(q, counts, bounds=BOUNDS):
    return histogram_quantile(q, np.asarray(bounds, dtype=np.float64), np.array([counts])).tolist()[0]


def test_interpolates_inside_the_bucket_holding_the_rank():
    counts = [60, 390, 420, 125, 5]  # cumulative 60, 450, 870, 995, 1000
    assert hq(0.5, counts) == 0.5 + (1.0 - 0.5) * ((500 - 450) / 420)
    assert hq(0.9, counts) == 1.0 + (5.0 - 1.0) * ((900 - 870) / 125)
    assert hq(0.99, counts) == 1.0 + (5.0 - 1.0) * ((990 - 870) / 125)


def test_rank_on_a_bucket_edge_answers_its_upper_bound():
    assert hq(0.5, [0, 50, 50, 0, 0]) == 0.5


def test_first_bucket_starts_at_zero():
    assert hq(0.5, [10, 0, 0, 0, 0]) == 0.1 * (5 / 10)
    assert hq(0.9, [10, 0, 0, 0, 0]) == 0.1 * (9 / 10)


def test_first_bucket_with_bound_at_or_below_zero_answers_the_bound():
    assert hq(0.5, [4, 0, 0], bounds=[-2.0, 3.0]) == -2.0
    assert hq(0.5, [4, 0, 0], bounds=[0.0, 3.0]) == 0.0
    assert hq(0.5, [1, 3, 0], bounds=[-2.0, 3.0]) == -2.0 + 5.0 * ((2 - 1) / 3)


def test_all_in_the_inf_bucket_answers_the_highest_finite_bound():
    assert hq(0.5, [0, 0, 0, 0, 7]) == 5.0
    assert hq(0.99, [0, 0, 0, 0, 7]) == 5.0


def test_rank_in_the_inf_bucket_answers_the_highest_finite_bound():
    counts = [50, 40, 50, 50, 10]  # cumulative 50, 90, 140, 190, 200
    assert hq(0.95, counts) == 1.0 + 4.0 * ((190 - 140) / 50)  # rank 190: still the (1, 5] bucket
    assert hq(0.99, counts) == 5.0  # rank 198 > 190


def test_single_observation():
    for q in (0.5, 0.9, 0.99):
        assert hq(q, [0, 0, 1, 0, 0]) == 0.5 + 0.5 * q
    assert hq(0.5, [0, 0, 0, 0, 1]) == 5.0


def test_zero_counts_give_nan():
    assert np.isnan(hq(0.5, [0, 0, 0, 0, 0]))


def test_no_finite_bound_gives_nan():
    assert np.isnan(hq(0.5, [9], bounds=[]))


def test_empty_buckets_before_the_rank_are_skipped():
    assert hq(0.5, [0, 0, 0, 4, 0]) == 1.0 + 4.0 * (2 / 4)


def test_rows_are_independent_and_vectorized():
    counts = np.array([[60, 390, 420, 125, 5], [0, 0, 0, 0, 0], [0, 0, 0, 0, 3], [10, 0, 0, 0, 0]])
    got = histogram_quantile(0.5, BOUNDS, counts)
    want = [hq(0.5, list(row)) for row in counts]
    assert np.array_equal(got, want, equal_nan=True)


def test_counts_shape_must_fit_bounds():
    with pytest.raises(ValueError, match=r"does not fit 4 bounds"):
        histogram_quantile(0.5, BOUNDS, np.zeros((2, 4)))


def test_against_sorted_observations():
    """The estimate lies in the bucket that holds the true quantile of the observations."""
    rng = np.random.default_rng(3)
    obs = rng.lognormal(mean=-0.5, sigma=1.0, size=1000)
    counts = np.bincount(np.searchsorted(BOUNDS, obs, side="left"), minlength=5)
    for q in (0.5, 0.9, 0.95):
        est = hq(q, counts)
        true = np.quantile(obs, q, method="inverted_cdf")
        assert np.searchsorted(BOUNDS, est, side="left") == np.searchsorted(BOUNDS, true, side="left")


def test_combine_adds_counts_per_group_and_step():
    group = np.array([1, 0, 1, 0, 1])
    t = np.array([0, 0, 0, 10, 10])
    bounds = [[0.1, 0.5, 1.0, 5.0]] * 5
    counts = [[10, 30, 20, 35, 5], [0, 0, 0, 0, 0], [40, 10, 30, 15, 5], [0, 0, 2, 0, 0], [0, 0, 0, 0, 0]]
    g, tt, v = combine_histograms(0.5, group, t, bounds, counts)
    # (0, 0) and (1, 10) hold no observation: no point. (1, 0) sums to [50, 40, 50, 50, 10].
    assert (g.tolist(), tt.tolist()) == ([0, 1], [10, 0])
    assert v.tolist() == [0.5 + 0.5 * (1 / 2), 0.5 + 0.5 * ((100 - 90) / 50)]


def test_combine_keeps_different_bounds_apart_across_groups_and_steps():
    group = np.array([0, 1, 0])
    t = np.array([0, 0, 10])
    bounds = [[1.0, 2.0], [0.1, 0.5, 1.0, 5.0], [10.0]]
    counts = [[0, 4, 0], [0, 0, 0, 2, 0], [2, 0]]
    g, tt, v = combine_histograms(0.5, group, t, bounds, counts)
    assert list(zip(g.tolist(), tt.tolist(), v.tolist(), strict=True)) == [
        (0, 0, 1.0 + 1.0 * (2 / 4)),
        (0, 10, 10.0 * (1 / 2)),
        (1, 0, 1.0 + 4.0 * (1 / 2)),
    ]


def test_combine_refuses_different_bounds_in_one_group_and_step():
    group, t = np.array([0, 0]), np.array([5, 5])
    with pytest.raises(MixedBounds) as info:
        combine_histograms(0.5, group, t, [[0.1, 0.5, 1.0, 5.0], [1.0, 2.0]], [[1, 0, 0, 0, 0], [1, 0, 0]])
    assert {tuple(info.value.a), tuple(info.value.b)} == {(0.1, 0.5, 1.0, 5.0), (1.0, 2.0)}
    assert info.value.t_ms == 5


def test_combine_empty():
    g, t, v = combine_histograms(0.5, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), [], [])
    assert g.shape == t.shape == v.shape == (0,)
