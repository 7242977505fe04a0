"""bench.native: every insert path it times stores every row and honours the dedup token (the
run raises otherwise), and its figures come out positive. No timing is asserted: that is
`make bench`'s job."""

from __future__ import annotations

import numpy as np

from bench import native as bench_native


def test_quick_run_on_tiny_blocks_yields_every_figure():
    result = bench_native.run(
        sizes={"small": 30, "large": 2_000},
        rounds={"small": 2, "large": 1},
        runs=1,
        encode_reps={"small": 3, "large": 2},
    )
    for key in bench_native.FIGURES:
        assert result[key] > 0, key
    assert result["insert_small_block_rows"] == 30
    assert result["insert_large_block_rows"] == 2_000
    (small, large) = result["insert_runs"]
    for run in (small, large):
        assert set(run["ms_per_insert"]) == set(run["dedup_ok"]) == set(bench_native.PATHS)
        assert run["stored_ok"] and all(run["dedup_ok"].values())


def test_the_encoders_carry_the_same_rows():
    """The encode-only figures compare like with like: the collector's block and the columns
    clickhouse-connect's insert serialises hold the same values."""
    (frame,) = bench_native.frames(500, 1)
    table = bench_native.arrow_block(frame)
    series_id, names, ts, value = bench_native.library_columns(frame)
    assert table.column("series_id").to_numpy().tolist() == series_id.tolist()
    assert table.column("name").to_pylist() == names.tolist()
    assert table.column("ts").cast("int64").to_pylist() == ts
    assert np.array_equal(table.column("value").to_numpy(), value)
    assert bench_native.library_block(frame)  # the library serialises them without an error
