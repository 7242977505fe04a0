"""The engine's own insert rate for the columns Ferry ingests: blocks of `samples` rows
(series_id, name, ts, value; `ferry.collector.storage.blocks`, built before the clock starts),
the frame's size each, inserted back to back by `Store.insert` (Arrow) into a fresh embedded
store with Ferry's schema, each carrying its frame's identity columns as the collector's do.

This is the ceiling for `ingest_points_per_s`: what ClickHouse itself takes with no gRPC,
decode, validation or dedup in front. It is measured twice: as the collector writes a group
(each block into `samples` and into both rollups' feeds, whose views aggregate it) and into
`samples` alone (what raw storage costs).
Runs in its own process (`python -m bench.rawinsert`): chDB hosts one store path per process.

It also measures the fixed cost of one insert: 300-row blocks (a host agent's frame at a 10 s
interval) on the temp directory's disk, with and without the views, and the same on /dev/shm
(tmpfs) when there is one — tmpfs is no place for a store; it shows how much of the fixed cost
is the filesystem (each insert writes a new part, a directory of ~10 files, per table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from ferry.collector.rows import Identity
from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary
from ferry.collector.storage.rollups import RESOLUTIONS
from ferry.collector.storage.store import Store


def _blocks(rows: int, block_rows: int, series: int = 1000) -> list[pa.Table]:
    """The columns bench.ingest's frames turn into: `series` DELTA series, a point per series
    per second, ones as values."""
    t0 = int(time.time() * 1000) - rows // series * 1000
    out = []
    for start in range(0, rows, block_rows):
        i = np.arange(start, min(start + block_rows, rows), dtype=np.int64)
        n = i.shape[0]
        out.append(
            blocks.block(
                tables.SAMPLES,
                n,
                {
                    "series_id": (i % series).astype(np.uint64) * 2654435761,
                    "name": Dictionary(["bench.points"], np.zeros(n, dtype=np.uint32)),
                    "ts": t0 + (i // series) * 1000,
                    "value": np.ones(n),
                    **Identity("bench", 1, start // block_rows + 1).columns(n),
                },
            )
        )
    return out


def measure(rows: int, block_rows: int, views: bool, where: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(dir=where, ignore_cleanup_errors=True) as tmp:
        store = Store.open(f"chdb://{tmp}/store", database="ferry")
        store.ensure_schema()
        made = _blocks(rows, block_rows)
        feeds = [tables.FEEDS[r.table].name for r in RESOLUTIONS] if views else []
        started = time.perf_counter()
        for block in made:
            for table in ("samples", *feeds):
                store.insert(table, block)
        seconds = time.perf_counter() - started
        stored = store.query("SELECT count() FROM ferry.samples")[0][0]
        store.close()
    inserts = len(made)
    return {
        "rows": rows,
        "block_rows": block_rows,
        "stored": stored,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "ms_per_insert": seconds / inserts * 1000,
        "dir": where or tempfile.gettempdir(),
    }


def run(rows: int = 2_000_000, block_rows: int = 50_000, runs: int = 3) -> dict:
    """Medians over `runs` of each variant, each run in a fresh process."""
    out: dict = {}
    for views in (True, False):
        results = [measure_isolated(rows, block_rows, views) for _ in range(runs)]
        key = "raw_insert" if views else "raw_insert_no_views"
        out[f"{key}_rows_per_s"] = float(np.median([r["rows_per_s"] for r in results]))
        out[f"{key}_runs"] = results
    out.update(insert_cost(runs=runs))
    return out


def insert_cost(block_rows: int = 300, inserts: int = 200, runs: int = 3) -> dict:
    """Median ms per insert of `block_rows`-row blocks: with and without the views on the temp
    directory's disk, and with the views on /dev/shm when it exists."""
    rows = block_rows * inserts
    variants = {"insert_ms_small": (True, None), "insert_ms_small_no_views": (False, None)}
    if os.path.isdir("/dev/shm"):
        variants["insert_ms_small_tmpfs"] = (True, "/dev/shm")
    out: dict = {}
    for key, (views, where) in variants.items():
        results = [measure_isolated(rows, block_rows, views, where) for _ in range(runs)]
        out[key] = float(np.median([r["ms_per_insert"] for r in results]))
    out["insert_ms_small_block_rows"] = block_rows
    return out


def measure_isolated(rows: int, block_rows: int, views: bool, where: str | None = None) -> dict:
    """`measure` in a fresh process (chDB takes one store path per process)."""
    argv = [sys.executable, "-m", "bench.rawinsert", "--rows", str(rows), "--block-rows", str(block_rows)]
    if not views:
        argv.append("--no-views")
    if where:
        argv += ["--dir", where]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--block-rows", type=int, default=50_000)
    p.add_argument("--no-views", action="store_true")
    p.add_argument("--dir", default=None, help="make the store under this directory (default: temp)")
    a = p.parse_args()
    print(json.dumps(measure(a.rows, a.block_rows, not a.no_views, a.dir)))


if __name__ == "__main__":
    main()
