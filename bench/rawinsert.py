"""The engine's own insert rate for the columns Ferry ingests: Native blocks of `samples` rows
(series_id, name, ts, value), the frame's size each, inserted back to back into a fresh
embedded store with Ferry's schema, with an insert token each as the collector does.

This is the ceiling for `ingest_points_per_s`: what ClickHouse itself takes with no gRPC,
decode, validation or dedup in front. It is measured twice: with the production schema (the
rollup views run on every insert) and with the views dropped (what raw storage costs alone).
Runs in its own process (`python -m bench.rawinsert`): chDB hosts one store path per process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np

from collector.storage import native
from collector.storage.rollups import RESOLUTIONS
from collector.storage.store import Store


def _blocks(rows: int, block_rows: int, series: int = 1000) -> list[bytes]:
    """The columns bench.ingest's frames turn into: `series` DELTA series, a point per series
    per second, ones as values."""
    t0 = int(time.time() * 1000) - rows // series * 1000
    out = []
    for start in range(0, rows, block_rows):
        i = np.arange(start, min(start + block_rows, rows), dtype=np.int64)
        n = i.shape[0]
        out.append(
            native.block(
                [
                    native.fixed("series_id", "UInt64", (i % series).astype(np.uint64) * 2654435761, "<u8"),
                    native.low_cardinality("name", ["bench.points"], np.zeros(n, dtype=np.uint32)),
                    native.fixed("ts", "DateTime64(3, 'UTC')", t0 + (i // series) * 1000, "<i8"),
                    native.fixed("value", "Float64", np.ones(n), "<f8"),
                ],
                n,
            )
        )
    return out


def measure(rows: int, block_rows: int, views: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"chdb://{tmp}/store", database="ferry")
        store.ensure_schema()
        if not views:
            for r in RESOLUTIONS:
                for table in (r.table, r.histogram_table):
                    store.client.command(f"DROP VIEW IF EXISTS ferry.{table}_mv")
        blocks = _blocks(rows, block_rows)
        started = time.perf_counter()
        for seq, block in enumerate(blocks):
            store.insert_native("samples", block, f"bench:1:{seq}")
        seconds = time.perf_counter() - started
        stored = store.query("SELECT count() FROM ferry.samples")[0][0]
        store.close()
    return {"rows": rows, "stored": stored, "seconds": seconds, "rows_per_s": rows / seconds}


def run(rows: int = 2_000_000, block_rows: int = 50_000, runs: int = 3) -> dict:
    """Medians over `runs` of each variant, each run in a fresh process."""
    out: dict = {}
    for views in (True, False):
        results = [measure_isolated(rows, block_rows, views) for _ in range(runs)]
        key = "raw_insert" if views else "raw_insert_no_views"
        out[f"{key}_rows_per_s"] = float(np.median([r["rows_per_s"] for r in results]))
        out[f"{key}_runs"] = results
    return out


def measure_isolated(rows: int, block_rows: int, views: bool) -> dict:
    """`measure` in a fresh process (chDB takes one store path per process)."""
    argv = [sys.executable, "-m", "bench.rawinsert", "--rows", str(rows), "--block-rows", str(block_rows)]
    if not views:
        argv.append("--no-views")
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--block-rows", type=int, default=50_000)
    p.add_argument("--no-views", action="store_true")
    a = p.parse_args()
    print(json.dumps(measure(a.rows, a.block_rows, not a.no_views)))


if __name__ == "__main__":
    main()
