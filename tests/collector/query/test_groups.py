"""Matched.locate: series ids read back from a points table → group indexes, with numpy."""

from __future__ import annotations

import numpy as np

from ferry.collector.query.groups import Matched


def _matched() -> Matched:
    ids = np.array([5, 9, 2**63 + 7, 40], dtype=np.uint64)
    order = np.argsort(ids)
    return Matched(
        labels=[{"host": "a"}, {"host": "b"}],
        ids=ids[order],
        group=np.array([0, 1, 1, 0], dtype=np.int64)[order],
        kinds=np.array(["gauge", "counter", "gauge", "delta"], dtype=object)[order],
    )


def test_locate_maps_each_row_and_drops_unmatched_series():
    m = _matched()
    rows = np.array([40, 3, 5, 2**63 + 7, 41, 9, 2**64 - 1, 0], dtype=np.uint64)
    group, known = m.locate(rows)
    assert known.tolist() == [True, False, True, True, False, True, False, False]
    assert group.tolist() == [0, 0, 1, 1]
    assert m.kind_of(rows[known]).tolist() == ["delta", "gauge", "gauge", "counter"]


def test_locate_with_nothing_matched():
    m = Matched(labels=[], ids=np.zeros(0, np.uint64), group=np.zeros(0, np.int64), kinds=np.zeros(0, object))
    group, known = m.locate(np.array([1, 2], dtype=np.uint64))
    assert group.tolist() == [] and known.tolist() == [False, False]
