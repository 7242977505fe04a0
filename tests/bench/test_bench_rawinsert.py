"""bench.rawinsert stores every row it times, with and without the rollup views (no timing is
asserted: that is `make bench`'s job)."""

from __future__ import annotations

import pytest

from bench import rawinsert


@pytest.mark.parametrize("views", [True, False])
def test_every_timed_row_is_stored(views):
    result = rawinsert.measure_isolated(rows=120_000, block_rows=50_000, views=views)
    assert result["rows"] == result["stored"] == 120_000
    assert result["rows_per_s"] > 0
