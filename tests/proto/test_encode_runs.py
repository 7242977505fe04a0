"""ref_deltas and time_deltas take shortcuts for runs of one ref and for one shared time; whatever
the columns, they must equal the plain definition (each element minus the one before)."""

from __future__ import annotations

import itertools
import operator
import random
from array import array

import pytest

from ferry.wire.encode import RUN_MIN, ref_deltas, time_deltas


def plain(column: array, typecode: str) -> array:
    out = array(typecode, column[:1])
    out.extend(map(operator.sub, itertools.islice(column, 1, None), column))
    return out


def runs(rng: random.Random, shuffle: bool) -> array:
    refs = [ref for ref in range(rng.randint(1, 5)) for _ in range(rng.randint(1, 3 * RUN_MIN))]
    if shuffle:
        rng.shuffle(refs)
    return array("I", refs)


FIXED = [
    [],
    [5],
    [0] * 100,
    [0] * 70 + [1] * 70 + [2] * 70,  # the accumulator's layout
    [0] * 70 + [2] * 70 + [1] * 70,  # runs out of order
    [3] * 200 + [4] * 100,
    [0] * 100 + [1] * 100 + [0] * 100,  # a ref back again
    [0] * RUN_MIN + [1] * RUN_MIN,
]


@pytest.mark.parametrize("refs", FIXED)
def test_ref_deltas_of_given_runs(refs):
    column = array("I", refs)
    assert ref_deltas(column) == plain(column, "i")


@pytest.mark.parametrize("seed", range(200))
def test_ref_deltas_of_random_runs(seed):
    rng = random.Random(seed)
    column = runs(rng, shuffle=seed % 3 == 0)
    assert ref_deltas(column) == plain(column, "i")


@pytest.mark.parametrize("times", [[], [7], [7] * 10, [7, 7, 8], [5, 3, 5], [10**12] * 5000])
def test_time_deltas(times):
    column = array("q", times)
    assert time_deltas(column) == plain(column, "q")
