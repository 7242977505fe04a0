"""Storage and query benchmark: compressed bytes per point on disk for a realistic day of host
metrics, and QueryRange latency over it at each resolution (raw, 1m, 1h).

`make bench` runs it in a child process (`run_isolated`: chDB opens one path per process, and the
memory goes back when it exits); `python -m bench.storage --hosts 200` runs it standalone, and
`--codecs` adds trials of other column codecs on scratch copies of `samples`.

The dataset is `bench.hostday`'s (its docstring gives every value shape). Points go in
through the collector's own RowBuilder, group commit and Writer (Arrow blocks into samples and
into the rollups' feeds, whose views fill samples_1m and samples_1h), 10 hosts per group; then
OPTIMIZE TABLE ... FINAL, and bytes come from system.parts (active parts). The samples rows
carry their frame's identity (agent_id, epoch, seq: the dedup ledger), as the collector's do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from bench.hostday import DAY_MS, STEP_MS, host_batch, host_metrics
from ferry.collector.commit import GroupCommitter, Prepared, Stream
from ferry.collector.marks import Marks
from ferry.collector.query.answer import Operand
from ferry.collector.query.lookup import lookup
from ferry.collector.query.service import QueryService
from ferry.collector.rows import Identity, RowBuilder
from ferry.collector.storage.schema import MIN_COMPRESS_BLOCK
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.v1 import payload_pb2, query_pb2

HOUR_MS = 3_600_000
CHUNK_HOSTS = 10
QUERY_METRIC = "system.cpu.utilization"
TABLES = ("samples", "samples_1m", "samples_1h", "series")
RESOLUTIONS = ("raw", "1m", "1h")
FIGURES = (
    "storage_bytes_per_point",
    "storage_identity_bytes_per_point",
    "query_ms_raw",
    "query_ms_1m",
    "query_ms_1h",
    "rollup_query_speedup",
)


def load(store_dsn: str, db: str, hosts: int, steps: int, start_ms: int, seed: int = 1) -> dict:
    """Generate and write `hosts` hosts through the collector's RowBuilder and Writer, CHUNK_HOSTS
    hosts per insert. Returns points, series and seconds spent generating and inserting."""
    stores = ThreadStores(lambda: Store.open(store_dsn, database=db))
    committer, builder = GroupCommitter(Writer(stores).write, Marks()), RowBuilder()
    rng = np.random.default_rng(seed)
    times = start_ms + np.arange(steps, dtype=np.int64) * STEP_MS
    points = series = 0
    gen_s = insert_s = 0.0
    for first in range(0, hosts, CHUNK_HOSTS):
        t0 = time.perf_counter()
        n = min(CHUNK_HOSTS, hosts - first)
        family = host_metrics(rng, n, steps)
        futures = []
        for row in range(n):
            agent = f"agent-{first + row:03d}"
            res = payload_pb2.Resource(host=f"host-{first + row:03d}", agent_id=agent)
            rows = builder.build(host_batch(family, row, times), res, Identity(agent, 1, 1))
            # as if each 10 s cycle had come in a frame of its own, seq 1, 2, ... (the agent's way)
            block = rows.samples_block
            ts = block.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
            seq = ((ts - start_ms) // STEP_MS + 1).astype(np.uint64)
            field = block.schema.field("seq")
            block = block.set_column(block.schema.get_field_index("seq"), field, pa.array(seq))
            frame = Prepared(agent, 1, 1, {"samples": block}, rows.series)
            futures.append(committer.submit(frame, Stream()))  # joins the one open group
            points += rows.samples_count
            series += len(rows.series)
        t1 = time.perf_counter()
        committer.write_open()  # the hosts' frames as one group: one insert per table
        insert_s += time.perf_counter() - t1
        gen_s += t1 - t0
        assert all(f.result() == "OK" for f in futures)
    stores.close_all()
    return {"points": points, "series": series, "generate_s": gen_s, "insert_s": insert_s}


def table_bytes(store: Store) -> dict[str, dict]:
    rows = store.query(
        "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), "
        "sum(bytes_on_disk), count() FROM system.parts WHERE database = {db:String} AND active "
        "GROUP BY table",
        {"db": store.db},
    )
    keys = ("rows", "compressed", "uncompressed", "on_disk", "parts")
    return {r[0]: dict(zip(keys, map(int, r[1:]), strict=True)) for r in rows if r[0] in TABLES}


def column_bytes(store: Store, table: str = "samples") -> dict[str, tuple[int, int]]:
    """Compressed and uncompressed bytes of each column of `table`'s active parts."""
    rows = store.query(
        "SELECT column, sum(column_data_compressed_bytes), sum(column_data_uncompressed_bytes) "
        "FROM system.parts_columns WHERE database = {db:String} AND table = {t:String} AND active "
        "GROUP BY column ORDER BY column",
        {"db": store.db, "t": table},
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


class _Context:
    def abort(self, code, details):
        raise RuntimeError(f"QueryRange {code}: {details}")


def query_range(service: QueryService, start_ms: int, end_ms: int, agg: str, resolution: str):
    req = query_pb2.QueryRangeRequest(
        metric=QUERY_METRIC,
        start_ms=start_ms,
        end_ms=end_ms,
        step_ms=HOUR_MS,
        agg=agg,
        group_by=["host"],
        resolution=resolution,
    )
    resp = service.QueryRange(req, _Context())
    if resp.resolution != resolution:
        raise RuntimeError(f"asked for resolution {resolution}, answered from {resp.resolution}")
    return {s.labels["host"]: (list(s.time_ms), np.array(s.value)) for s in resp.series}


def _same(a: dict, b: dict, rel: float) -> tuple[bool, float]:
    """Whether two answers have the same groups and times, values within `rel`; and the largest
    relative difference seen."""
    if sorted(a) != sorted(b) or any(a[k][0] != b[k][0] for k in a):
        return False, float("inf")
    worst = max(
        (float(np.max(np.abs(a[k][1] - b[k][1]) / np.maximum(np.abs(a[k][1]), 1e-300))) for k in a),
        default=0.0,
    )
    return worst <= rel, worst


def query_figures(store_dsn: str, db: str, start_ms: int, end_ms: int, runs: int) -> dict:
    stores = ThreadStores(lambda: Store.open(store_dsn, database=db))
    service = QueryService(stores)
    out: dict = {"metric": QUERY_METRIC, "agg": "avg", "by": "host", "step_ms": HOUR_MS}
    answers = {r: query_range(service, start_ms, end_ms, "avg", r) for r in RESOLUTIONS}  # warm-up
    times: dict[str, list[float]] = {r: [] for r in RESOLUTIONS}
    for _ in range(runs):  # resolutions take turns, so a busy moment of the machine hits all alike
        for resolution in RESOLUTIONS:
            t0 = time.perf_counter()
            query_range(service, start_ms, end_ms, "avg", resolution)
            times[resolution].append((time.perf_counter() - t0) * 1000)
    # the floor under every resolution: the series lookup QueryRange runs first (grouped by host)
    store, lookup_ms = stores.get(), []
    for _ in range(runs):
        t0 = time.perf_counter()
        lookup(store, Operand(QUERY_METRIC, (), "avg", ("host",)), service.limits.max_groups, "")
        lookup_ms.append((time.perf_counter() - t0) * 1000)
    out["series_lookup_ms"] = statistics.median(lookup_ms)
    for resolution, ms in times.items():
        out[f"query_ms_{resolution}"] = statistics.median(ms)
        out[f"query_ms_{resolution}_runs"] = ms
    checks = {}
    for agg, rel in (("avg", 1e-9), ("sum", 1e-9), ("count", 0.0)):
        per_agg = (
            answers if agg == "avg" else {r: query_range(service, start_ms, end_ms, agg, r) for r in answers}
        )
        for resolution in ("1m", "1h"):
            ok, worst = _same(per_agg["raw"], per_agg[resolution], rel)
            checks[f"{agg}_{resolution}"] = {"same": ok, "max_rel_diff": worst}
    out["answers_match"] = all(v["same"] for v in checks.values())
    out["answer_checks"] = checks
    out["groups"] = len(answers["raw"])
    stores.close_all()
    return out


# Codecs (series_id, ts, value), a value expression and table settings tried on scratch copies of
# `samples`: the schema before migration 5, after it, and the production one since migration 6
# (the fifth), with variations around it. The agent sends its utilizations rounded to 4 decimals
# (agent/collectors/filesystem.py `ratio`); the last trial shows what a coarser cpu utilization
# would save (3 decimals: a half-tick error at 10 s, which the agent does not make).
CPU_3 = "if(name = 'system.cpu.utilization', round(value, 3), value)"
CODEC_TRIALS = (
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Gorilla, ZSTD(1)", "value", ""),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "ZSTD(3)", "value", ""),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(3)", "value", ""),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(3)", "value", MIN_COMPRESS_BLOCK),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(5)", "value", MIN_COMPRESS_BLOCK),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(9)", "value", MIN_COMPRESS_BLOCK),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Gorilla, ZSTD(3)", "value", MIN_COMPRESS_BLOCK),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(5)", CPU_3, MIN_COMPRESS_BLOCK),
)


def codec_trial(
    store: Store, points: int, sid: str, ts: str, value: str, expr: str, settings: str = ""
) -> dict:
    """Bytes per point of each column, and of `value` per metric, for `samples` copied into a
    table with these codecs and table `settings` (partitioned by metric, wide parts: per-metric
    column sizes; a compressed block never spans two metrics, so totals differ a little from
    `samples`'s)."""
    db = store.db
    store.client.command(
        f"CREATE TABLE {db}.codec_trial (series_id UInt64 CODEC({sid}), name LowCardinality(String), "
        f"ts DateTime64(3, 'UTC') CODEC({ts}), value Float64 CODEC({value})) ENGINE = MergeTree "
        "PARTITION BY name ORDER BY (name, series_id, ts) "
        "SETTINGS min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0"
        + (f", {settings}" if settings else "")
    )
    try:
        store.client.command(
            f"INSERT INTO {db}.codec_trial SELECT series_id, name, ts, {expr} FROM {db}.samples"
        )
        store.client.command(f"OPTIMIZE TABLE {db}.codec_trial FINAL")
        rows = store.query(
            "SELECT partition, column, sum(rows), sum(column_data_compressed_bytes) "
            "FROM system.parts_columns WHERE database = {db:String} AND table = 'codec_trial' "
            "AND active GROUP BY partition, column",
            {"db": db},
        )
    finally:
        store.client.command(f"DROP TABLE {db}.codec_trial")
    columns: dict[str, float] = {}
    by_metric: dict[str, float] = {}
    for part, column, n, size in rows:
        columns[column] = columns.get(column, 0.0) + size / points
        if column == "value":
            by_metric[part.strip("'")] = size / n
    return {
        "codecs": {"series_id": sid, "ts": ts, "value": value, "value_expr": expr, "settings": settings},
        "bytes_per_point": sum(columns.values()),
        "columns": columns,
        "value_by_metric": dict(sorted(by_metric.items(), key=lambda kv: -kv[1])),
    }


def run(hosts: int = 200, runs: int = 7, steps: int = DAY_MS // STEP_MS, codecs: bool = False) -> dict:
    """Load `hosts` hosts' day into a fresh embedded store, measure bytes and query latency."""
    start_ms = (int(time.time() * 1000) // DAY_MS - 1) * DAY_MS  # yesterday, whole UTC day
    end_ms = start_ms + steps * STEP_MS
    with tempfile.TemporaryDirectory(prefix="ferry-bench-storage-", ignore_cleanup_errors=True) as tmp:
        dsn, db = f"chdb://{tmp}/store", "bench"
        store = Store.open(dsn, database=db)
        store.ensure_schema()
        loaded = load(dsn, db, hosts, steps, start_ms)
        t0 = time.perf_counter()
        for table in TABLES:
            store.client.command(f"OPTIMIZE TABLE {db}.{table} FINAL")
        optimize_s = time.perf_counter() - t0
        stored = store.query(f"SELECT count() FROM {db}.samples")[0][0]
        tables = table_bytes(store)
        points = loaded["points"]
        columns = {
            k: {"bytes_per_point": v[0] / points, "ratio": v[1] / max(v[0], 1)}
            for k, v in column_bytes(store).items()
        }
        queries = query_figures(dsn, db, start_ms, end_ms, runs)
        trials = [codec_trial(store, points, *t) for t in CODEC_TRIALS] if codecs else []
        store.close()
    best = min(queries["query_ms_1m"], queries["query_ms_1h"])
    return {
        "storage_bytes_per_point": tables["samples"]["compressed"] / points,
        # the frame's identity on every row (the dedup ledger): what it adds to the figure above
        "storage_identity_bytes_per_point": sum(
            columns[c]["bytes_per_point"] for c in ("agent_id", "epoch", "seq")
        ),
        **{f"query_ms_{r}": queries[f"query_ms_{r}"] for r in RESOLUTIONS},
        "rollup_query_speedup": queries["query_ms_raw"] / best,
        "storage": {
            "hosts": hosts,
            "series": loaded["series"],
            "series_per_host": loaded["series"] // hosts,
            "points": points,
            "stored_points": int(stored),
            "on_disk_bytes_per_point": tables["samples"]["on_disk"] / points,
            "tables": {t: {**v, "bytes_per_point": v["compressed"] / points} for t, v in tables.items()},
            "samples_columns": columns,
            "generate_s": loaded["generate_s"],
            "load_s": loaded["insert_s"],
            "load_points_per_s": points / loaded["insert_s"],
            "optimize_s": optimize_s,
            "query": queries,
            "codec_trials": trials,
        },
    }


def run_isolated(hosts: int, runs: int) -> dict:
    """`run` in a child process: its own chDB path and its memory back when it ends."""
    cmd = [sys.executable, "-m", "bench.storage", "--hosts", str(hosts), "--runs", str(runs), "--json"]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hosts", type=int, default=200)
    p.add_argument("--runs", type=int, default=7, help="timed runs per resolution (after a warm-up)")
    p.add_argument("--codecs", action="store_true", help="also try other codecs on scratch tables")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    a = p.parse_args()
    result = run(a.hosts, a.runs, codecs=a.codecs)
    if a.json:
        print(json.dumps(result))
        return
    print(json.dumps(result["storage"], indent=2))
    for key in FIGURES:
        print(f"{key:40} {result[key]:>14,.3f}")


if __name__ == "__main__":
    main()
