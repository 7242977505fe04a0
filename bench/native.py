"""Ferry's hand-written Native blocks against clickhouse-connect's own insert paths, for the
samples columns, into the embedded engine: is `ferry.collector.storage.native` worth keeping?

The paths start from the columns RowBuilder holds for a frame (numpy series ids, a sorted list
of metric names with a uint32 index per row, int64 ms timestamps, float64 values) and end with
the rows committed in `samples`, each insert carrying its frame's `insert_deduplication_token`:

- `native`: `native.block` → `Store.insert_native` (raw_insert, fmt=Native): what the collector does.
- `columns`: `client.insert(..., column_oriented=True)` with the column types given, so no
  DESCRIBE per insert. The library serialises DateTime64 only from Python ints or datetimes
  (a numpy int64 column fails: "'numpy.int64' object has no attribute 'timestamp'"), so the
  timestamps go in as `ts.tolist()`, and the names as an object array gathered by index.
- `columns_describe`: the same call without column types: the library asks the table for them
  (a DESCRIBE query) on every insert, as a plain `client.insert(table, data, column_names=...)` does.
- `arrow`: a pyarrow Table (names as a DictionaryArray over the sorted names, ts as
  timestamp[ms, UTC]) → `client.insert_arrow` (Arrow IPC file, fmt=Arrow).

`insert_ms`: median ms per insert, end to end (encode + insert), `inserts` blocks back to back in
a fresh store with Ferry's production schema (rollup views included), one process per path and
size (chDB hosts one store path per process), the paths interleaved and their order rotated from
run to run. Every run checks what it stored: row count and sums of every column, and that the
first block inserted again with its token adds no row. `encode_us`: median µs to turn the same
columns into the bytes each path inserts, with no store (for `columns`, the library's own Native
serialiser). The insert itself is dominated by the part each insert writes, so `encode_us` shows
the encoders' difference where `insert_ms` can bury it in the disk's noise.

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

import numpy as np
import pyarrow as pa
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.query import arrow_buffer
from clickhouse_connect.driver.transform import NativeTransform

from ferry.collector.storage import native
from ferry.collector.storage.store import Store

PATHS = ("native", "columns", "columns_describe", "arrow")
ENCODERS = ("native", "columns", "arrow")  # columns_describe encodes as columns does
COLUMNS = ("series_id", "name", "ts", "value")
TYPES = ("UInt64", "LowCardinality(String)", "DateTime64(3, 'UTC')", "Float64")
SERIES = 1000
NAMES = 50
SIZES = {"small": 300, "large": 50_000}  # a host agent's frame at 10 s; a frame of bench.ingest


def figure_keys() -> tuple[str, ...]:
    """The flat keys `run` returns (bench/run.py prints them)."""
    keys = [f"{p}_insert_ms_{s}" for s in SIZES for p in PATHS]
    keys += [f"{p}_encode_us_{s}" for s in SIZES for p in ENCODERS]
    keys += [f"{p}_vs_native_insert_{s}" for s in SIZES for p in PATHS if p != "native"]
    keys += [f"{p}_vs_native_encode_{s}" for s in SIZES for p in ENCODERS if p != "native"]
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


def native_block(c: SampleColumns) -> bytes:
    """The samples block exactly as collector/rows.py builds it."""
    return native.block(
        [
            native.fixed("series_id", "UInt64", c.series_id, "<u8"),
            native.low_cardinality("name", c.names, c.name_index),
            native.fixed("ts", "DateTime64(3, 'UTC')", c.ts, "<i8"),
            native.fixed("value", "Float64", c.value, "<f8"),
        ],
        len(c),
    )


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


def arrow_table(c: SampleColumns) -> pa.Table:
    return pa.table(
        {
            "series_id": pa.array(c.series_id),
            "name": pa.DictionaryArray.from_arrays(pa.array(c.name_index), pa.array(c.names)),
            "ts": pa.array(c.ts, type=pa.timestamp("ms", tz="UTC")),
            "value": pa.array(c.value),
        }
    )


def arrow_bytes(c: SampleColumns) -> bytes:
    """The Arrow IPC file `insert_arrow` sends for the columns."""
    return bytes(arrow_buffer(arrow_table(c))[1])


ENCODE: dict[str, Callable[[SampleColumns], bytes]] = {
    "native": native_block,
    "columns": library_block,
    "arrow": arrow_bytes,
}


# ---- the insert paths ------------------------------------------------------------------------------


def inserter(store: Store, path: str) -> Callable[[SampleColumns, str], None]:
    """A function inserting one frame's columns into samples by `path`, with its dedup token."""
    table = f"{store.db}.samples"

    def settings(token: str) -> dict:
        return {"insert_deduplication_token": token}

    if path == "native":
        return lambda c, token: store.insert_native("samples", native_block(c), token)
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
    if path == "arrow":
        return lambda c, token: store.client.insert_arrow(table, arrow_table(c), settings=settings(token))
    raise ValueError(f"path {path!r}: one of {', '.join(PATHS)}")


def expected(blocks: list[SampleColumns]) -> dict:
    """What the store must hold after `blocks`, in the shape `stored` reads it."""
    return {
        "rows": sum(len(b) for b in blocks),
        "sum_series_id": int(sum(int(b.series_id.sum(dtype=np.uint64)) for b in blocks) % 2**64),
        "sum_ts": int(sum(int(b.ts.sum()) for b in blocks)),
        "sum_value": float(sum(float(b.value.sum()) for b in blocks)),
        "names": len({b.names[i] for b in blocks for i in np.unique(b.name_index).tolist()}),
    }


def stored(store: Store) -> dict:
    rows, sid, ts, value, names = store.query(
        f"SELECT count(), sum(series_id), sum(toUnixTimestamp64Milli(ts)), sum(value), uniqExact(name) "
        f"FROM {store.db}.samples"
    )[0]
    return {"rows": rows, "sum_series_id": sid, "sum_ts": ts, "sum_value": value, "names": names}


def same_content(got: dict, want: dict) -> bool:
    """Equal counts and sums; the float sum to summation-order rounding."""
    return math.isclose(got.pop("sum_value"), want.pop("sum_value"), rel_tol=1e-12) and got == want


def measure(path: str, block_rows: int, inserts: int, where: str | None = None) -> dict:
    """Insert `inserts` frames of `block_rows` rows by `path` into a fresh store (after one
    untimed warm-up insert); per-insert times, and whether every row and the token held."""
    blocks = frames(block_rows, inserts + 1)
    with tempfile.TemporaryDirectory(dir=where, ignore_cleanup_errors=True) as tmp:
        store = Store.open(f"chdb://{tmp}/store", database="ferry")
        store.ensure_schema()
        insert = inserter(store, path)
        insert(blocks[0], "bench:1:0")
        times = []
        for seq, block in enumerate(blocks[1:], start=1):
            started = time.perf_counter()
            insert(block, f"bench:1:{seq}")
            times.append(time.perf_counter() - started)
        content = stored(store)
        insert(blocks[1], "bench:1:1")  # a resend: the token must keep it out
        dedup_ok = stored(store)["rows"] == content["rows"]
        store.close()
    return {
        "path": path,
        "block_rows": block_rows,
        "inserts": inserts,
        "ms_per_insert": statistics.median(times) * 1000,
        "ms_per_insert_mean": sum(times) / len(times) * 1000,
        "stored_ok": same_content(dict(content), expected(blocks)),
        "dedup_ok": dedup_ok,
    }


def measure_isolated(path: str, block_rows: int, inserts: int) -> dict:
    """`measure` in a fresh process (chDB takes one store path per process)."""
    argv = [sys.executable, "-m", "bench.native", "--measure", path, "--block-rows", str(block_rows)]
    argv += ["--inserts", str(inserts)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def encode_cost(block_rows: int, reps: int) -> dict[str, list[float]]:
    """µs per encode of one frame for each encoder, the encoders interleaved rep by rep."""
    blocks = frames(block_rows, 1)
    out: dict[str, list[float]] = {e: [] for e in ENCODERS}
    for e in ENCODERS:  # warm up: first calls import and cache types
        ENCODE[e](blocks[0])
    for _ in range(reps):
        for e in ENCODERS:
            started = time.perf_counter()
            ENCODE[e](blocks[0])
            out[e].append((time.perf_counter() - started) * 1e6)
    return out


def settings(quick: bool) -> dict:
    """`run`'s arguments for a full or a QUICK run (QUICK: one run per path, fewer inserts)."""
    if quick:
        return {"inserts": {"small": 50, "large": 4}, "runs": 1, "encode_reps": {"small": 50, "large": 5}}
    return {"inserts": {"small": 200, "large": 20}, "runs": 5, "encode_reps": {"small": 300, "large": 30}}


def run(
    sizes: dict[str, int] | None = None,
    inserts: dict[str, int] | None = None,
    runs: int = 5,
    encode_reps: dict[str, int] | None = None,
) -> dict:
    """Medians over `runs` isolated runs per path and size, and encode medians over
    `encode_reps`; the flat FIGURES plus every run under `native_runs`."""
    sizes = sizes or SIZES
    inserts = inserts or settings(False)["inserts"]
    encode_reps = encode_reps or settings(False)["encode_reps"]
    out: dict = {"native_runs": []}
    for size, rows in sizes.items():
        out[f"native_{size}_block_rows"] = rows
        per_path: dict[str, list[dict]] = {p: [] for p in PATHS}
        for r in range(runs):
            for path in PATHS[r % len(PATHS) :] + PATHS[: r % len(PATHS)]:
                result = measure_isolated(path, rows, inserts[size])
                if not (result["stored_ok"] and result["dedup_ok"]):
                    raise RuntimeError(f"{path}, {rows}-row blocks: stored rows or token wrong: {result}")
                per_path[path].append(result)
                out["native_runs"].append(result)
        for path, results in per_path.items():
            out[f"{path}_insert_ms_{size}"] = statistics.median(x["ms_per_insert"] for x in results)
            out[f"{path}_insert_ms_{size}_range"] = [
                min(x["ms_per_insert"] for x in results),
                max(x["ms_per_insert"] for x in results),
            ]
        encoded = encode_cost(rows, encode_reps[size])
        for e, samples in encoded.items():
            out[f"{e}_encode_us_{size}"] = statistics.median(samples)
            out[f"{e}_encode_us_{size}_range"] = [min(samples), max(samples)]
        native_ms, native_us = out[f"native_insert_ms_{size}"], out[f"native_encode_us_{size}"]
        for path in PATHS[1:]:
            out[f"{path}_vs_native_insert_{size}"] = out[f"{path}_insert_ms_{size}"] / native_ms
        for e in ENCODERS[1:]:
            out[f"{e}_vs_native_encode_{size}"] = out[f"{e}_encode_us_{size}"] / native_us
    out["native_runs_per_path"] = runs
    out["native_inserts_per_run"] = inserts
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="one run per path, fewer inserts")
    p.add_argument("--runs", type=int, default=0, help="runs per path and size (default: 5, QUICK 1)")
    p.add_argument("--measure", choices=PATHS, help="(internal) one isolated measurement, as JSON")
    p.add_argument("--block-rows", type=int, default=300)
    p.add_argument("--inserts", type=int, default=200)
    a = p.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.block_rows, a.inserts)))
        return
    result = run(**{**settings(a.quick), **({"runs": a.runs} if a.runs else {})})
    print(json.dumps({k: v for k, v in result.items() if k != "native_runs"}, indent=2))
    for key in FIGURES:
        print(f"{key:40} {result[key]:>14,.3f}")


if __name__ == "__main__":
    main()
