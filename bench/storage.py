"""Storage and query benchmark: compressed bytes per point on disk for a realistic day of host
metrics, and QueryRange latency over it at each resolution (raw, 1m, 1h).

`make bench` runs it in a child process (`run_isolated`: chDB opens one path per process, and the
memory goes back when it exits); `python -m bench.storage --hosts 200` runs it standalone, and
`--codecs` adds trials of other column codecs on scratch copies of `samples`.

The dataset imitates what the agent's own collectors emit (agent/collectors/*.py), per host:
- timestamps: the agent stamps a cycle with its aligned tick, `int(next_at * 1000)`, which with
  the default jitter 0 is an exact multiple of 10 000 ms; so every series has 8640 points at
  exact 10 s steps over one UTC day (yesterday, inside the raw TTL);
- system.cpu.utilization, 2 cpus x 8 states: tick deltas at USER_HZ 100 (a 10 s cycle is
  999..1001 ticks), emitted as `delta / total` (no rounding, so full-precision floats); user and
  system follow the host's activity, wait and softirq are small Poisson counts, nice and
  interrupt almost always 0, steal only on half of the hosts (VMs); idle is the rest;
- system.memory.usage, 6 states: kB from /proc/meminfo times 1024 (integers), `used` the
  remainder so the states sum to MemTotal; system.memory.utilization: each / MemTotal;
- system.cpu.load_average.1m/5m/15m: exponential averages of the runnable count, 2 decimals;
  system.uptime: boot offset + elapsed + a few ms of read delay, 2 decimals;
- system.processes.created (COUNTER, integer increments) and system.processes.count for the six
  statuses the agent always counts (running follows load; zombies and stopped mostly 0);
- one disk `sda`: system.disk.io (bytes = 512-byte sectors, 4 KiB pages), .operations,
  .operation_time (ms / 1000) per direction, .io_time, .pending_operations (mostly 0);
- one NIC `eth0`: system.network.io, .packets, .errors (constant 0), .dropped (rare), both
  directions; all COUNTERs are cumulative from a large since-boot start, monotonic;
- one filesystem `/` (ext4): system.filesystem.usage used/free/reserved (4 KiB blocks, reserved
  constant) and .utilization used / (used + free).
59 series per host. Activity is a diurnal curve (a per-host phase, base and amplitude) plus
smoothed and white noise. Points go in through the collector's own RowBuilder and Writer (Native
blocks, the materialized views fill samples_1m and samples_1h at insert), 10 hosts per insert;
then OPTIMIZE TABLE ... FINAL, and bytes come from system.parts (active parts).
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

from agent import catalogue as c
from agent.collectors.processes import ALWAYS_COUNTED
from agent.collectors.system import CPU_STATES
from collector.query.service import QueryService
from collector.query.sql import series_sql
from collector.rows import RowBuilder
from collector.storage.store import Store, ThreadStores
from collector.writer import Writer
from ferry.columns import MetricBatch, SeriesDef
from ferry.v1 import payload_pb2, query_pb2

STEP_MS = 10_000
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CPUS = 2
CHUNK_HOSTS = 10
QUERY_METRIC = "system.cpu.utilization"
TABLES = ("samples", "samples_1m", "samples_1h", "series")
RESOLUTIONS = ("raw", "1m", "1h")
FIGURES = ("storage_bytes_per_point", "query_ms_raw", "query_ms_1m", "query_ms_1h", "rollup_query_speedup")

Family = list[tuple[SeriesDef, np.ndarray]]  # each series and its values, shape (hosts, steps)


def _ema(x: np.ndarray, tau: float) -> np.ndarray:
    """Exponential moving average along axis 1 (time constant `tau` steps), by FFT convolution
    with a truncated kernel; the start is padded with the first value."""
    a = 1.0 - np.exp(-1.0 / tau)
    n_k = int(tau * 12) + 1
    k = a * (1.0 - a) ** np.arange(n_k)
    k /= k.sum()
    xp = np.concatenate([np.repeat(x[:, :1], n_k, axis=1), x], axis=1)
    n = xp.shape[1] + n_k
    y = np.fft.irfft(np.fft.rfft(xp, n) * np.fft.rfft(k, n), n)
    return y[:, n_k : n_k + x.shape[1]]


def _cum(rng: np.random.Generator, low: int, high: int, inc: np.ndarray) -> np.ndarray:
    """A cumulative counter: a since-boot start in [low, high) plus the running sum of integer
    increments `inc` (hosts, steps)."""
    start = rng.integers(low, high, (inc.shape[0], 1))
    return (start + np.cumsum(inc, axis=1, dtype=np.int64)).astype(np.float64)


def activity(rng: np.random.Generator, hosts: int, steps: int) -> np.ndarray:
    """A host's busyness in [0.01, 0.95]: diurnal curve (per-host phase, base, amplitude) plus
    smoothed noise (minutes) and white noise."""
    frac = (np.arange(steps) * STEP_MS % DAY_MS) / DAY_MS
    phase = rng.uniform(0.0, 0.25, (hosts, 1))
    base, amp = rng.uniform(0.03, 0.25, (hosts, 1)), rng.uniform(0.05, 0.5, (hosts, 1))
    diurnal = 0.5 - 0.5 * np.cos(2 * np.pi * (frac[None, :] - phase - 0.1))
    drift = _ema(rng.normal(0, 0.25, (hosts, steps)), 30.0)
    return np.clip(base + amp * diurnal + drift + rng.normal(0, 0.02, (hosts, steps)), 0.01, 0.95)


def _cpu(rng: np.random.Generator, a: np.ndarray) -> Family:
    out: Family = []
    vm = rng.random((a.shape[0], 1)) < 0.5
    for cpu in range(CPUS):
        ac = np.clip(a + rng.normal(0, 0.04, a.shape), 0.0, 0.93)
        total = 1000 + rng.integers(-1, 2, a.shape)
        ticks = {
            "user": np.rint(ac * 0.65 * total),
            "nice": rng.poisson(0.01, a.shape),
            "system": np.rint(ac * 0.22 * total),
            "wait": rng.poisson(0.5 + 8 * ac),
            "interrupt": np.zeros(a.shape),
            "softirq": rng.poisson(1 + 6 * ac),
            "steal": rng.poisson(0.4, a.shape) * vm,
        }
        ticks["idle"] = np.maximum(total - sum(ticks.values()), 0)
        for state in CPU_STATES:
            out.append((c.CPU_UTILIZATION.series((f"cpu{cpu}", state)), ticks[state] / total))
    return out


def _memory(rng: np.random.Generator, a: np.ndarray) -> Family:
    hosts, steps = a.shape
    total = rng.choice([4, 8, 16, 32, 64], (hosts, 1)) * 1024**2 - rng.integers(100_000, 300_000, (hosts, 1))

    def walk(scale: float) -> np.ndarray:
        return np.cumsum(rng.integers(-int(scale), int(scale) + 1, (hosts, steps)), axis=1)

    kb = {
        "used": total * (0.2 + 0.3 * _ema(a, 20.0)) + walk(64),
        "buffered": total * 0.01 + walk(4),
        "cached": total * (0.15 + 0.1 * np.linspace(0, 1, steps)) + walk(256),
        "slab_reclaimable": total * 0.03 + walk(16),
        "slab_unreclaimable": total * 0.01 + walk(2),
    }
    kb = {k: np.maximum(np.rint(v), 1024) for k, v in kb.items()}
    kb["free"] = total - sum(kb.values())
    total_b = total * 1024.0
    out: Family = []
    for state in ("free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable", "used"):
        out.append((c.MEMORY_USAGE.series((state,)), kb[state] * 1024.0))
    for state in ("free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable", "used"):
        out.append((c.MEMORY_UTILIZATION.series((state,)), kb[state] * 1024.0 / total_b))
    return out


def _system(rng: np.random.Generator, a: np.ndarray) -> Family:
    hosts, steps = a.shape
    runnable = a * CPUS * 1.3 + rng.poisson(0.3, a.shape)
    out: Family = [
        (d.series(), np.round(_ema(runnable, tau), 2))
        for d, tau in ((c.LOAD_1M, 6.0), (c.LOAD_5M, 30.0), (c.LOAD_15M, 90.0))
    ]
    boot = rng.uniform(86_400, 200 * 86_400, (hosts, 1))
    elapsed = np.arange(steps) * STEP_MS / 1000 + rng.uniform(0.001, 0.02, a.shape)  # + read delay
    out.append((c.UPTIME.series(), np.round(boot + elapsed, 2)))
    out.append((c.PROCESSES_CREATED.series(), _cum(rng, 10**5, 10**8, rng.poisson(10 * (0.5 + 3 * a)))))
    counts = {
        "running": 1 + rng.poisson(a * CPUS),
        "sleeping": np.rint(rng.integers(120, 400, (hosts, 1)) + _ema(rng.normal(0, 20, a.shape), 60.0)),
        "blocked": rng.poisson(0.1 * a),
        "zombies": (rng.random(a.shape) < 0.001).astype(int),
        "stopped": np.zeros(a.shape),
        "idle": np.broadcast_to(rng.integers(60, 130, (hosts, 1)), a.shape),
    }
    out += [(c.PROCESSES_COUNT.series((s,)), counts[s].astype(float)) for s in ALWAYS_COUNTED]
    return out


def _disk_network_fs(rng: np.random.Generator, a: np.ndarray) -> Family:
    out: Family = []
    ops = {"read": rng.poisson(0.5 + 3 * a), "write": rng.poisson(5 + 40 * a)}
    for d in ("read", "write"):
        sectors = 8 * (ops[d] + rng.poisson(ops[d] * 2.0))  # whole 4 KiB pages
        out.append((c.DISK_IO.series(("sda", d)), 512.0 * _cum(rng, 10**7, 10**9, sectors)))
        out.append((c.DISK_OPERATIONS.series(("sda", d)), _cum(rng, 10**5, 10**7, ops[d])))
        op_ms = _cum(rng, 10**5, 10**8, rng.poisson(ops[d] * 0.8))
        out.append((c.DISK_OPERATION_TIME.series(("sda", d)), op_ms / 1000))
    busy_ms = np.minimum(rng.poisson((ops["read"] + ops["write"]) * 0.6), STEP_MS)
    out.append((c.DISK_IO_TIME.series(("sda",)), _cum(rng, 10**5, 10**8, busy_ms) / 1000))
    out.append((c.DISK_PENDING.series(("sda",)), rng.poisson(0.05 * a).astype(float)))
    for d, rate in (("receive", 3000), ("transmit", 2500)):
        pkts = rng.poisson(200 + rate * a)
        size = pkts * 60 + rng.poisson(pkts * 500)
        drops = rng.poisson(0.01 if d == "receive" else 0.0, a.shape)
        out.append((c.NETWORK_IO.series(("eth0", d)), _cum(rng, 10**9, 10**12, size)))
        out.append((c.NETWORK_PACKETS.series(("eth0", d)), _cum(rng, 10**6, 10**9, pkts)))
        out.append((c.NETWORK_ERRORS.series(("eth0", d)), np.zeros(a.shape)))
        out.append((c.NETWORK_DROPPED.series(("eth0", d)), _cum(rng, 0, 1000, drops)))
    blocks = rng.integers(5_000_000, 50_000_000, (a.shape[0], 1))  # 4 KiB blocks
    reserved = np.broadcast_to(blocks // 20, a.shape)
    used = _cum(rng, 1_000_000, 5_000_000, rng.poisson(0.3 + 2 * a))
    fs = {"used": used, "free": blocks - reserved - used, "reserved": reserved}
    for state in ("used", "free", "reserved"):
        out.append((c.FILESYSTEM_USAGE.series(("/dev/sda1", "rw", "/", state, "ext4")), fs[state] * 4096.0))
    util = used / (used + fs["free"])
    out.append((c.FILESYSTEM_UTILIZATION.series(("/dev/sda1", "rw", "/", "ext4")), util))
    return out


def host_metrics(rng: np.random.Generator, hosts: int, steps: int) -> Family:
    """Every series of `hosts` hosts over `steps` cycles from midnight; values (hosts, steps)."""
    a = activity(rng, hosts, steps)
    fam = _cpu(rng, a) + _memory(rng, a) + _system(rng, a) + _disk_network_fs(rng, a)
    return [(s, np.asarray(v, dtype=np.float64)) for s, v in fam]


def host_batch(family: Family, row: int, times: np.ndarray) -> MetricBatch:
    """Host `row`'s points as one columnar batch, as the agent would send them (series-major)."""
    n, steps = len(family), times.shape[0]
    return MetricBatch(
        series=[s for s, _ in family],
        series_ref=np.repeat(np.arange(n, dtype=np.uint32), steps),
        time_ms=np.tile(times, n),
        value=np.concatenate([v[row] for _, v in family]),
    )


def load(store_dsn: str, db: str, hosts: int, steps: int, start_ms: int, seed: int = 1) -> dict:
    """Generate and write `hosts` hosts through the collector's RowBuilder and Writer, CHUNK_HOSTS
    hosts per insert. Returns points, series and seconds spent generating and inserting."""
    stores = ThreadStores(lambda: Store.open(store_dsn, database=db))
    writer, builder = Writer(stores), RowBuilder()
    rng = np.random.default_rng(seed)
    times = start_ms + np.arange(steps, dtype=np.int64) * STEP_MS
    points = series = 0
    gen_s = insert_s = 0.0
    for first in range(0, hosts, CHUNK_HOSTS):
        t0 = time.perf_counter()
        n = min(CHUNK_HOSTS, hosts - first)
        family = host_metrics(rng, n, steps)
        frames = []
        for row in range(n):
            res = payload_pb2.Resource(host=f"host-{first + row:03d}", agent_id=f"agent-{first + row:03d}")
            frames.append(builder.build(host_batch(family, row, times), res))
        rows = frames[0]
        rows.series = [s for f in frames for s in f.series]
        rows.samples_block = b"".join(f.samples_block for f in frames)  # a Native stream of blocks
        rows.samples_count = sum(f.samples_count for f in frames)
        t1 = time.perf_counter()
        writer.write(rows, token=f"bench-storage:{first}")
        insert_s += time.perf_counter() - t1
        gen_s += t1 - t0
        points += rows.samples_count
        series += len(rows.series)
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
    # the floor under every resolution: the series lookup QueryRange runs first (labels of all series)
    store, lookup_ms = stores.get(), []
    for _ in range(runs):
        t0 = time.perf_counter()
        store.query(*series_sql(db, QUERY_METRIC, [], service.limits.max_series + 1))
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


# Codecs (series_id, ts, value) and a value expression tried on scratch copies of `samples`; the
# first is the production schema. The last two are what-ifs: `*.utilization` ratios rounded to
# 4 decimals (the agent sends them at full float64 precision).
ROUNDED = "if(endsWith(name, '.utilization'), round(value, 4), value)"
CODEC_TRIALS = (
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Gorilla, ZSTD(1)", "value"),
    ("Delta, ZSTD(1)", "Delta, ZSTD(1)", "ZSTD(1)", "value"),
    ("DoubleDelta, ZSTD(1)", "DoubleDelta", "FPC, ZSTD(1)", "value"),
    ("LZ4", "Delta, ZSTD(3)", "Delta, ZSTD(3)", "value"),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(1)", "value"),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "ZSTD(3)", "value"),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Gorilla, ZSTD(1)", ROUNDED),
    ("ZSTD(1)", "DoubleDelta, ZSTD(1)", "Delta, ZSTD(3)", ROUNDED),
)


def codec_trial(store: Store, points: int, sid: str, ts: str, value: str, expr: str) -> dict:
    """Bytes per point of each column, and of `value` per metric, for `samples` copied into a
    table with these codecs (partitioned by metric, wide parts: per-metric column sizes)."""
    db = store.db
    store.client.command(
        f"CREATE TABLE {db}.codec_trial (series_id UInt64 CODEC({sid}), name LowCardinality(String), "
        f"ts DateTime64(3, 'UTC') CODEC({ts}), value Float64 CODEC({value})) ENGINE = MergeTree "
        "PARTITION BY name ORDER BY (name, series_id, ts) "
        "SETTINGS min_bytes_for_wide_part = 0, min_rows_for_wide_part = 0"
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
        "codecs": {"series_id": sid, "ts": ts, "value": value, "value_expr": expr},
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
