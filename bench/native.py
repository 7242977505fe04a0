"""The collector's insert path for the samples columns, Arrow (`ferry.collector.storage.blocks`
→ `Store.insert` → clickhouse-connect's `insert_arrow`), against the library's
`insert(column_oriented=True)`, into the embedded engine.

This settled issue 14's question whether Ferry's hand-written Native encoder was worth keeping:
measured against it, `insert_arrow` was within 10% end to end at 300 and 50k rows (0.987-1.053
over 6 runs) and `insert` was not (1.15-1.21 at 50k rows on a loaded machine), so the encoder
went and the collector inserts Arrow (docs/performance.md has the figures of both rounds).

The paths start from the columns RowBuilder holds for a frame (numpy series ids, a sorted list
of metric names with a uint32 index per row, int64 ms timestamps, float64 values) and end with
the rows committed in `samples`, each insert carrying its frame's `insert_deduplication_token`:

- `arrow`: `blocks.block` (by tables.SAMPLES, as collector/rows.py builds it) → `Store.insert`
  (insert_arrow: an Arrow IPC file, FORMAT Arrow): what the collector does.
- `columns`: `client.insert(..., column_oriented=True)` with the column types given, so no
  DESCRIBE per insert. The library serialises DateTime64 only from Python ints or datetimes
  (a numpy int64 column fails: "'numpy.int64' object has no attribute 'timestamp'"), so the
  timestamps go in as `ts.tolist()`, and the names as an object array gathered by index.
- `columns_describe`: the same call without column types: the library asks the table for them
  (a DESCRIBE query) on every insert, as a plain `client.insert(table, data, column_names=...)` does.
- `arrow_prebuilt`: the insert alone of the Arrow IPC file `arrow` sends, encoded before the
  clock starts (`raw_insert`, fmt=Arrow): the engine's side of `arrow`.

`insert_ms`: ms per insert, end to end (encode + insert), into a fresh store with Ferry's
production schema (rollup views included). The paths take turns in one store, round after round
in a random order each round, so that they share the disk's and the machine's mood of the
moment, which on a shared machine moves a single insert's time more than the paths differ; each
run is its own process (chDB hosts one store path per process). Figures: the median over runs
of each path's median, and `vs_arrow_insert`, the median over runs of the median ratio of a
path's insert to arrow's in the same round. Every run checks what it stored (row count, sums of
every column, and per metric name) and that a frame sent again under the token of each path's
first frame adds no row (a different frame: the engine drops a byte-identical block by its
checksum even without a token).
`encode_us`: median µs to turn the same columns into the bytes each path inserts, with no store
(for `arrow` the block and its IPC file, for `columns` the library's own Native serialiser).
The insert itself is dominated by the part each insert writes, so `encode_us` shows the
encoders' difference that `insert_ms` buries in the disk's noise.

Runs as `python -m bench.native [--quick]`; `make bench` (bench/run.py) collects FIGURES.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.query import arrow_buffer
from clickhouse_connect.driver.transform import NativeTransform

from ferry.collector.storage import blocks, tables
from ferry.collector.storage.blocks import Dictionary
from ferry.collector.storage.store import Store

PATHS = ("arrow", "columns", "columns_describe", "arrow_prebuilt")
ENCODERS = ("arrow", "columns")  # columns_describe encodes as columns does
BASE = "arrow"  # the collector's path: every ratio is to it
COLUMNS = ("series_id", "name", "ts", "value")
TYPES = ("UInt64", "LowCardinality(String)", "DateTime64(3, 'UTC')", "Float64")
SERIES = 1000
NAMES = 50
SIZES = {"small": 300, "large": 50_000}  # a host agent's frame at 10 s; a frame of bench.ingest


def figure_keys() -> tuple[str, ...]:
    """The flat keys `run` returns (bench/run.py prints them)."""
    keys = [f"{p}_insert_ms_{s}" for s in SIZES for p in PATHS]
    keys += [f"{p}_encode_us_{s}" for s in SIZES for p in ENCODERS]
    keys += [f"{p}_vs_{BASE}_insert_{s}" for s in SIZES for p in PATHS if p != BASE]
    keys += [f"{p}_vs_{BASE}_encode_{s}" for s in SIZES for p in ENCODERS if p != BASE]
    return tuple(keys)


FIGURES = figure_keys()


@dataclass(frozen=True, slots=True)
class SampleColumns:
    """One frame's samples as RowBuilder holds them before it builds the block."""

    series_id: np.ndarray  # uint64
    names: list[str]  # sorted, distinct
    name_index: np.ndarray  # uint32, one per row, into names
    ts: np.ndarray  # int64 ms
    value: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.series_id.shape[0])


def frames(block_rows: int, count: int, seed: int = 7) -> list[SampleColumns]:
    """`count` frames of `block_rows` points: SERIES series over NAMES metric names, a point per
    series per second ending now (the tables have a TTL), values with 4 decimals."""
    rng = np.random.default_rng(seed)
    names = sorted(f"bench.metric_{k:02d}" for k in range(NAMES))
    ids = rng.integers(0, 2**64 - 1, SERIES, dtype=np.uint64, endpoint=True)
    total = block_rows * count
    t0 = int(time.time()) * 1000 - (total // SERIES + 1) * 1000
    out = []
    for start in range(0, total, block_rows):
        i = np.arange(start, start + block_rows, dtype=np.int64)
        series = i % SERIES
        out.append(
            SampleColumns(
                series_id=ids[series],
                names=names,
                name_index=(series % NAMES).astype(np.uint32),
                ts=t0 + (i // SERIES) * 1000,
                value=np.round(rng.random(block_rows) * 100, 4),
            )
        )
    return out


# ---- the encoders: columns → what each path hands the store ----------------------------------------


def arrow_block(c: SampleColumns) -> pa.Table:
    """The samples block as collector/rows.py builds it (`blocks.block`, by tables.SAMPLES)."""
    return blocks.block(
        tables.SAMPLES,
        len(c),
        {"series_id": c.series_id, "name": Dictionary(c.names, c.name_index), "ts": c.ts, "value": c.value},
    )


def arrow_bytes(c: SampleColumns) -> bytes:
    """The Arrow IPC file `insert_arrow` sends for the columns."""
    return bytes(arrow_buffer(arrow_block(c))[1])


def library_columns(c: SampleColumns) -> list:
    """The columns in the shapes clickhouse-connect's insert serialises (see the module docstring)."""
    return [c.series_id, np.asarray(c.names, dtype=object)[c.name_index], c.ts.tolist(), c.value]


def library_block(c: SampleColumns) -> bytes:
    """clickhouse-connect's own Native serialisation of the columns (what `insert` sends)."""
    context = InsertContext(
        "ferry.samples",
        list(COLUMNS),
        [get_from_name(t) for t in TYPES],
        library_columns(c),
        column_oriented=True,
    )
    body = b"".join(NativeTransform.build_insert(context))
    return body[body.index(b"\n") + 1 :]  # the INSERT statement it prefixes for HTTP; chDB drops it too


ENCODE: dict[str, Callable[[SampleColumns], bytes]] = {"arrow": arrow_bytes, "columns": library_block}


# ---- the insert paths ------------------------------------------------------------------------------


PREBUILT = {"arrow_prebuilt": arrow_bytes}  # encoded before the clock


def inserter(store: Store, path: str) -> Callable[[Any, str], None]:
    """A function inserting one frame into samples by `path`, with its dedup token: the frame's
    columns, or for a PREBUILT path the bytes its encoder made of them."""
    table = f"{store.db}.samples"

    def settings(token: str) -> dict:
        return {"insert_deduplication_token": token}

    if path == "arrow":
        return lambda c, token: store.insert("samples", arrow_block(c), token)
    if path == "columns":
        return lambda c, token: store.client.insert(
            table,
            library_columns(c),
            column_names=list(COLUMNS),
            column_type_names=list(TYPES),
            column_oriented=True,
            settings=settings(token),
        )
    if path == "columns_describe":
        return lambda c, token: store.client.insert(
            table,
            library_columns(c),
            column_names=list(COLUMNS),
            column_oriented=True,
            settings=settings(token),
        )
    if path == "arrow_prebuilt":  # the insert alone: `c` is already the Arrow IPC file
        return lambda c, token: store.client.raw_insert(
            table, COLUMNS, c, settings=settings(token), fmt="Arrow"
        )
    raise ValueError(f"path {path!r}: one of {', '.join(PATHS)}")


def expected(blocks: list[SampleColumns]) -> dict:
    """What the store must hold after `blocks`, in the shape `stored` reads it: the sums of every
    column, and per metric name its rows and their sums of ts and series_id (which also shows
    each row kept its own name)."""
    by_name: dict[str, list[int]] = {}
    for b in blocks:
        for k, name in enumerate(b.names):
            rows = b.name_index == k
            if rows.any():
                acc = by_name.setdefault(name, [0, 0, 0])
                acc[0] += int(rows.sum())
                acc[1] += int(b.ts[rows].sum())
                acc[2] = (acc[2] + int(b.series_id[rows].sum(dtype=np.uint64))) % 2**64
    return {
        "rows": sum(len(b) for b in blocks),
        "sum_series_id": int(sum(int(b.series_id.sum(dtype=np.uint64)) for b in blocks) % 2**64),
        "sum_ts": int(sum(int(b.ts.sum()) for b in blocks)),
        "sum_value": float(sum(float(b.value.sum()) for b in blocks)),
        "by_name": sorted((name, *acc) for name, acc in by_name.items()),
    }


def stored(store: Store) -> dict:
    ms = "toInt128(toUnixTimestamp64Milli(ts))"  # millions of ms timestamps overflow an Int64 sum
    rows, sid, ts, value = store.query(
        f"SELECT count(), sum(series_id), sum({ms}), sum(value) FROM {store.db}.samples"
    )[0]
    by_name = store.query(
        f"SELECT name, count(), sum({ms}), sum(series_id) FROM {store.db}.samples GROUP BY name ORDER BY name"
    )
    return {
        "rows": rows,
        "sum_series_id": sid,
        "sum_ts": ts,
        "sum_value": value,
        "by_name": [tuple(r) for r in by_name],
    }


def same_content(got: dict, want: dict) -> bool:
    """Equal counts and sums; the float sum to summation-order rounding."""
    return math.isclose(got.pop("sum_value"), want.pop("sum_value"), rel_tol=1e-12) and got == want


def measure(block_rows: int, rounds: int, where: str | None = None) -> dict:
    """`rounds` rounds of one insert of a fresh `block_rows`-row frame by every path, in a random
    order each round, into one fresh store (after one untimed warm-up insert per
    path): the paths share the disk's mood of the moment and the parts of the others. Per path,
    the median ms per insert and the median of its per-round ratio to BASE; whether every row
    arrived, and whether a new frame sent under the token of each path's first frame stayed out
    (a byte-identical resend would be dropped by its checksum even without a token)."""
    warm = len(PATHS)
    blocks = frames(block_rows, warm + (rounds + 1) * len(PATHS))
    # one frame per path never inserted but under a token already used: only the token keeps it out
    blocks, spares = blocks[: -len(PATHS)], dict(zip(PATHS, blocks[-len(PATHS) :], strict=True))
    # a fresh order each round: each path follows every other alike (a rotation keeps neighbours)
    rng = np.random.default_rng(block_rows)
    orders = [[PATHS[i] for i in rng.permutation(len(PATHS))] for _ in range(rounds)]
    schedule = list(enumerate([*PATHS, *(p for order in orders for p in order)]))  # (seq, path)
    payload = {seq: PREBUILT[p](blocks[seq]) if p in PREBUILT else blocks[seq] for seq, p in schedule}
    spares = {p: PREBUILT[p](c) if p in PREBUILT else c for p, c in spares.items()}
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    dedup_ok = {}
    with tempfile.TemporaryDirectory(dir=where, ignore_cleanup_errors=True) as tmp:
        store = Store.open(f"chdb://{tmp}/store", database="ferry")
        store.ensure_schema()
        inserts = {p: inserter(store, p) for p in PATHS}
        first: dict[str, int] = {}
        for seq, path in schedule:
            if seq < warm:
                inserts[path](payload[seq], f"bench:1:{seq}")
                continue
            first.setdefault(path, seq)
            started = time.perf_counter()
            inserts[path](payload[seq], f"bench:1:{seq}")
            times[path].append((time.perf_counter() - started) * 1000)
        content = stored(store)
        rows = content["rows"]
        for path, seq in first.items():
            inserts[path](spares[path], f"bench:1:{seq}")
            dedup_ok[path] = stored(store)["rows"] == rows
            rows = stored(store)["rows"]
        store.close()
    return {
        "block_rows": block_rows,
        "rounds": rounds,
        "ms_per_insert": {p: statistics.median(t) for p, t in times.items()},
        "vs_base": {
            p: statistics.median(a / b for a, b in zip(t, times[BASE], strict=True)) for p, t in times.items()
        },
        "stored_ok": same_content(dict(content), expected(blocks)),
        "dedup_ok": dedup_ok,
    }


def measure_isolated(block_rows: int, rounds: int) -> dict:
    """`measure` in a fresh process (chDB takes one store path per process)."""
    argv = [sys.executable, "-m", "bench.native", "--measure", "--block-rows", str(block_rows)]
    argv += ["--rounds", str(rounds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def encode_cost(block_rows: int, reps: int) -> dict[str, list[float]]:
    """µs per encode of one frame for each encoder, the encoders taking turns, the order rotating
    (each then finds the caches as the others leave them, as an encode in the collector would
    after a frame's decode; one encoder alone in a loop runs several times faster at 50k rows)."""
    blocks = frames(block_rows, 1)
    out: dict[str, list[float]] = {e: [] for e in ENCODERS}
    for e in ENCODERS:  # warm up: first calls import and cache types
        ENCODE[e](blocks[0])
    for r in range(reps):
        for e in ENCODERS[r % len(ENCODERS) :] + ENCODERS[: r % len(ENCODERS)]:
            started = time.perf_counter()
            ENCODE[e](blocks[0])
            out[e].append((time.perf_counter() - started) * 1e6)
    return out


def settings(quick: bool) -> dict:
    """`run`'s arguments for a full or a QUICK run (QUICK: one run, fewer rounds)."""
    if quick:
        return {"rounds": {"small": 25, "large": 3}, "runs": 1, "encode_reps": {"small": 50, "large": 5}}
    return {"rounds": {"small": 100, "large": 30}, "runs": 5, "encode_reps": {"small": 300, "large": 30}}


def run(
    sizes: dict[str, int] | None = None,
    rounds: dict[str, int] | None = None,
    runs: int = 5,
    encode_reps: dict[str, int] | None = None,
) -> dict:
    """Per size, `runs` isolated `measure` runs: the median over runs of each path's median ms
    per insert (and the range of those), and of its paired ratio to BASE; then the encode
    medians over `encode_reps`. The flat FIGURES, plus every run under `insert_runs`."""
    sizes = sizes or SIZES
    rounds = rounds or settings(False)["rounds"]
    encode_reps = encode_reps or settings(False)["encode_reps"]
    out: dict = {"insert_runs": []}
    for size, rows in sizes.items():
        out[f"insert_{size}_block_rows"] = rows
        results = []
        for _ in range(runs):
            result = measure_isolated(rows, rounds[size])
            if not (result["stored_ok"] and all(result["dedup_ok"].values())):
                raise RuntimeError(f"{rows}-row blocks: stored rows or a token wrong: {result}")
            results.append(result)
        out["insert_runs"] += results
        for path in PATHS:
            ms = [r["ms_per_insert"][path] for r in results]
            out[f"{path}_insert_ms_{size}"] = statistics.median(ms)
            out[f"{path}_insert_ms_{size}_range"] = [min(ms), max(ms)]
            if path != BASE:
                ratios = [r["vs_base"][path] for r in results]
                out[f"{path}_vs_{BASE}_insert_{size}"] = statistics.median(ratios)
                out[f"{path}_vs_{BASE}_insert_{size}_range"] = [min(ratios), max(ratios)]
        encoded = encode_cost(rows, encode_reps[size])
        for e, samples in encoded.items():
            out[f"{e}_encode_us_{size}"] = statistics.median(samples)
            out[f"{e}_encode_us_{size}_range"] = [min(samples), max(samples)]
        for e in ENCODERS:
            if e != BASE:
                out[f"{e}_vs_{BASE}_encode_{size}"] = (
                    out[f"{e}_encode_us_{size}"] / out[f"{BASE}_encode_us_{size}"]
                )
    out["insert_runs_per_size"] = runs
    out["insert_rounds_per_run"] = rounds
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="one run per size, fewer rounds")
    p.add_argument("--runs", type=int, default=0, help="runs per size (default: 5, QUICK 1)")
    p.add_argument("--measure", action="store_true", help="(internal) one isolated measurement, as JSON")
    p.add_argument("--block-rows", type=int, default=300)
    p.add_argument("--rounds", type=int, default=100)
    a = p.parse_args()
    if a.measure:
        print(json.dumps(measure(a.block_rows, a.rounds)))
        return
    result = run(**{**settings(a.quick), **({"runs": a.runs} if a.runs else {})})
    print(json.dumps({k: v for k, v in result.items() if k != "insert_runs"}, indent=2))
    for key in FIGURES:
        print(f"{key:40} {result[key]:>14,.3f}")


if __name__ == "__main__":
    main()
