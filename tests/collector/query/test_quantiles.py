"""Histogram quantiles as the store computes them (ferry.collector.query.grouped's
`_histogram_quantile`): Prometheus' histogram_quantile over added delta bucket counts, run on
the embedded engine over literal rows."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from ferry.collector.query.grouped import _histogram_quantile
from ferry.collector.storage.store import Store

BOUNDS = [0.1, 0.5, 1.0, 5.0]
ROWS = "Array(Tuple(UInt64, Int64, Array(Float64), Array(UInt64)))"


@pytest.fixture(scope="module")
def engine(chdb_dsn):
    s = Store.open(chdb_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    yield s
    s.client.command(f"DROP DATABASE IF EXISTS {s.db}")
    s.close()


def quantiles(store: Store, q: float, rows: list[tuple[int, int, list[float], list[int]]]) -> list[tuple]:
    """(g, t, value, bound lists met) per (g, t) of `rows`: (g, t, bounds, added counts)."""
    counts_sql = (
        f"SELECT r.1 AS g, r.2 AS t, r.3 AS b, r.4 AS c FROM (SELECT arrayJoin({{rows:{ROWS}}}) AS r)"
    )
    sql = _histogram_quantile(counts_sql)
    got = store.query(sql, {"q": q, "rows": rows, "limit": 1000})
    return sorted((int(g), int(t), v, int(n)) for g, t, v, n, _ in got)


@pytest.fixture
def hq(engine):
    def one(q, counts, bounds=BOUNDS):
        ((_, _, v, _),) = quantiles(engine, q, [(0, 0, [float(b) for b in bounds], [int(c) for c in counts])])
        return v

    return one


def test_interpolates_inside_the_bucket_holding_the_rank(hq):
    counts = [60, 390, 420, 125, 5]  # cumulative 60, 450, 870, 995, 1000
    assert hq(0.5, counts) == 0.5 + (1.0 - 0.5) * ((500 - 450) / 420)
    assert hq(0.9, counts) == 1.0 + (5.0 - 1.0) * ((900 - 870) / 125)
    assert hq(0.99, counts) == 1.0 + (5.0 - 1.0) * ((990 - 870) / 125)


def test_rank_on_a_bucket_edge_answers_its_upper_bound(hq):
    assert hq(0.5, [0, 50, 50, 0, 0]) == 0.5


def test_first_bucket_starts_at_zero(hq):
    assert hq(0.5, [10, 0, 0, 0, 0]) == 0.1 * (5 / 10)
    assert hq(0.9, [10, 0, 0, 0, 0]) == 0.1 * (9 / 10)


def test_first_bucket_with_bound_at_or_below_zero_answers_the_bound(hq):
    assert hq(0.5, [4, 0, 0], bounds=[-2.0, 3.0]) == -2.0
    assert hq(0.5, [4, 0, 0], bounds=[0.0, 3.0]) == 0.0
    assert hq(0.5, [1, 3, 0], bounds=[-2.0, 3.0]) == -2.0 + 5.0 * ((2 - 1) / 3)


def test_all_in_the_inf_bucket_answers_the_highest_finite_bound(hq):
    assert hq(0.5, [0, 0, 0, 0, 7]) == 5.0
    assert hq(0.99, [0, 0, 0, 0, 7]) == 5.0


def test_rank_in_the_inf_bucket_answers_the_highest_finite_bound(hq):
    counts = [50, 40, 50, 50, 10]  # cumulative 50, 90, 140, 190, 200
    assert hq(0.95, counts) == 1.0 + 4.0 * ((190 - 140) / 50)  # rank 190: still the (1, 5] bucket
    assert hq(0.99, counts) == 5.0  # rank 198 > 190


def test_single_observation(hq):
    for q in (0.5, 0.9, 0.99):
        assert hq(q, [0, 0, 1, 0, 0]) == 0.5 + 0.5 * q
    assert hq(0.5, [0, 0, 0, 0, 1]) == 5.0


def test_zero_counts_give_nan(hq):
    assert np.isnan(hq(0.5, [0, 0, 0, 0, 0]))


def test_no_finite_bound_gives_nan(hq):
    assert np.isnan(hq(0.5, [9], bounds=[]))


def test_empty_buckets_before_the_rank_are_skipped(hq):
    assert hq(0.5, [0, 0, 0, 4, 0]) == 1.0 + 4.0 * (2 / 4)


def test_rows_are_independent(engine, hq):
    rows = [[60, 390, 420, 125, 5], [0, 0, 0, 0, 0], [0, 0, 0, 0, 3], [10, 0, 0, 0, 0]]
    got = quantiles(engine, 0.5, [(i, 0, BOUNDS, r) for i, r in enumerate(rows)])
    want = [hq(0.5, r) for r in rows]
    assert all((math.isnan(a) and math.isnan(b)) or a == b for (_, _, a, _), b in zip(got, want, strict=True))


def test_against_sorted_observations(hq):
    """The estimate lies in the bucket that holds the true quantile of the observations."""
    rng = np.random.default_rng(3)
    obs = rng.lognormal(mean=-0.5, sigma=1.0, size=1000)
    counts = np.bincount(np.searchsorted(BOUNDS, obs, side="left"), minlength=5)
    for q in (0.5, 0.9, 0.95):
        est = hq(q, counts)
        true = np.quantile(obs, q, method="inverted_cdf")
        assert np.searchsorted(BOUNDS, est, side="left") == np.searchsorted(BOUNDS, true, side="left")


def test_different_bounds_stay_apart_and_are_counted_where_they_meet(engine):
    rows = [
        (0, 0, [1.0, 2.0], [0, 4, 0]),
        (1, 0, BOUNDS, [0, 0, 0, 2, 0]),
        (0, 10, [10.0], [2, 0]),
        (2, 5, BOUNDS, [1, 0, 0, 0, 0]),
        (2, 5, [1.0, 2.0], [1, 0, 0]),  # two bound lists in one group and step: the caller refuses
    ]
    got = quantiles(engine, 0.5, rows)
    assert [(g, t, v, n) for g, t, v, n in got if n == 1] == [
        (0, 0, 1.0 + 1.0 * (2 / 4), 1),
        (0, 10, 10.0 * (1 / 2), 1),
        (1, 0, 1.0 + 4.0 * (1 / 2), 1),
    ]
    assert [(g, t, n) for g, t, _, n in got if n > 1] == [(2, 5, 2)]
