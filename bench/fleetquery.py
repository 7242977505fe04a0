"""Fleet queries (issue 19, item 5): a generated fleet in an embedded store, Ferry's fleet-wide
questions through a real collector's QueryRange, and the same questions to Prometheus 2.x over
the same points.

The dataset. H hosts (2,000; QUICK: 100) of `PER_HOST` series each in the agent catalogue's
shapes (docs/METRICS.md): system.cpu.utilization for 16 cpus x 8 states, memory, disk,
filesystem, network and paging series with their device / mountpoint / direction labels, two
COUNTERs `http.requests` and `http.errors` (service x code) and a HISTOGRAM
`http.server.duration` per service with fixed bounds. A day [D0, D0 + 24 h): the 1h rollups hold
all of it, the raw tables and the 1m rollups its last hour, points every 10 s at :05, :15, ...
so a Ferry bucket [t, t + 60 s) holds exactly the points of a PromQL range (t, t + 60 s]
evaluated at t + 60 s. The day ends hours before now (promtool's blocks must be older than the
head's window), at an even hour so that the hour of raw points is one 2 h block.

Every value is an integer formula of (series, step) times a power of two (`SeriesParams`,
computed the same way by numpy here and by SQL in the store): every sum of them is exact in
any order, so the rollups' sums are exactly what the collector's views make of the raw points,
whatever the order they are added in, and Ferry's and Prometheus's answers are compared to
1e-9 relative (Prometheus averages incrementally). Gauges are a level per (series, hour) plus an
hourly pattern shifted per series; so a rollup hour without raw points (hours 0-22) is written
from closed forms: sum = 360 level + amplitude x the pattern's sum, and so on. Counters grow by
a steady per-series step (`r` per 10 s, different across series): PromQL's rate() over 60 s
(extrapolated to the range's edges) and Ferry's rate are both exactly r / 10 per second on every
step, and so is a ratio of two rates. The store is filled inside ClickHouse (INSERT ... SELECT
over a generator table, `fleet_gen`, with one row of parameters per series); series ids are the
collector's (ferry.collector.rows.series_id, in Python once per series), so the CLI finds the
series by name and labels.

Run: `python -m bench.fleetquery [--quick] [--json]` (the table; the whole result), `make bench` (into
bench/results/latest.json: fleet_query_*). `python -m bench.fleetquery generate --hosts N
--path DIR` fills a store only.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from bench import prometheus

HOUR_MS = 3_600_000
MINUTE_MS = 60_000
STEP_MS = 10_000
OFFSET_MS = 5_000  # points at :05, :15, ...
DAY_STEPS = 24 * 360
HOUR_STEPS = 360
BOUNDS = (5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)  # http.server.duration, ms
# per bucket (the last one +Inf): base counts, pattern weights, the value an observation adds to
# the sum (integers, so sums are exact)
H_PROFILE = (20, 60, 150, 250, 200, 150, 80, 60, 0)  # +Inf: 0-4 of ~1,000, so p99 is in (500, 1000]
H_WEIGHT = (0, 1, 2, 3, 2, 1, 1, 1, 0)
H_MID = (3, 8, 18, 38, 75, 175, 375, 750, 1500)

GAUGE, COUNTER, HISTOGRAM = 0, 1, 2
KIND = {GAUGE: "gauge", COUNTER: "counter", HISTOGRAM: "histogram"}
CPU = "system.cpu.utilization"
DURATION = "http.server.duration"
REQUESTS, ERRORS = "http.requests", "http.errors"

FIGURES = (
    "fleet_query_ms",
    "fleet_query_1h_rollup_ms",
    "fleet_query_vs_prometheus",
    "fleet_query_vs_prometheus_best_resolution",
)


# -- the catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One metric's series per host: label sets, and the integers of its value formula.

    Gauge value = scale x (b0 + (k*17) % (b0_var+1) + (k*7919 + hour*104729) % bspan
    + a x pattern((step + p) % 360)), a = (k*31) % (amp+1); counter value = scale x (c0 + r x
    step), c0 = (k*1000003) % 1e9, r = r_lo + (k*13) % r_span (k: the series' index in the fleet,
    step: 10 s steps since D0)."""

    name: str
    kind: int
    unit: str
    labels: tuple[tuple[tuple[str, str], ...], ...]
    scale: float = 1.0
    b0: int = 0
    b0_var: int = 0
    bspan: int = 1
    amp: int = 0
    r_lo: int = 1
    r_span: int = 1


def _sets(**axes: tuple[str, ...]) -> tuple[tuple[tuple[str, str], ...], ...]:
    out: list[tuple[tuple[str, str], ...]] = [()]
    for key, values in axes.items():
        out = [(*prev, (key, v)) for prev in out for v in values]
    return tuple(out)


CPUS = tuple(str(c) for c in range(16))
CPU_STATES = ("user", "system", "idle", "interrupt", "nice", "softirq", "steal", "wait")
DISKS = ("sda", "sdb", "nvme0n1", "nvme1n1")
NICS = ("eth0", "eth1", "lo", "docker0")
FS = (("/dev/sda1", "/"), ("/dev/sda2", "/var"), ("/dev/sdb1", "/home"), ("/dev/nvme0n1p1", "/data"))
SERVICES = ("api", "web", "auth")
RW = ("read", "write")
RT = ("receive", "transmit")
P14, P20 = 2.0**-14, 2.0**20


def _fs(*states: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    return tuple(
        tuple(sorted({"device": d, "mode": "rw", "mountpoint": m, "type": "ext4", **st}.items()))
        for d, m in FS
        for st in ([{"state": s} for s in states] if states else [{}])
    )


def _cpu_families() -> list[Family]:
    # one family per state, so each state has its own level (kept in state order per cpu below)
    level = {"idle": (9000, 2000, 3000, 20), "user": (1500, 400, 1500, 20), "system": (600, 300, 800, 10)}
    out = []
    for state in CPU_STATES:
        b0, var, span, amp = level.get(state, (40, 60, 120, 2))
        sets = tuple((("cpu", c), ("state", state)) for c in CPUS)
        out.append(Family(CPU, GAUGE, "1", sets, P14, b0, var, span, amp))
    return out


MEMORY_STATES = ("used", "free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable")
PROCESS_STATUS = ("running", "sleeping", "blocked", "zombies", "stopped", "idle")
TCP_STATES = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
              "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "DELETE")  # fmt: skip


def _gauge(name: str, unit: str, labels, scale: float, b0: int, var: int, span: int, amp: int) -> Family:
    return Family(name, GAUGE, unit, labels, scale, b0, var, span, amp)


def _counter(name: str, unit: str, labels, r_lo: int, r_span: int, scale: float = 1.0) -> Family:
    return Family(name, COUNTER, unit, labels, scale, r_lo=r_lo, r_span=r_span)


NONE = ((),)  # one series: no labels but host
TCP = _sets(protocol=("tcp",), state=TCP_STATES)
SWAP = _sets(device=("/swap.img",), state=("used", "free"))
PAGING = _sets(direction=("page_in", "page_out"), type=("major", "minor"))
HTTP_CODES = _sets(service=SERVICES, code=("200", "201", "301", "404", "500", "503"))
ERROR_CODES = _sets(service=SERVICES, code=("404", "429", "500", "502", "503"))
FAMILIES: tuple[Family, ...] = (
    *_cpu_families(),
    _gauge("system.memory.usage", "By", _sets(state=MEMORY_STATES), P20, 2000, 2000, 1000, 10),
    _gauge("system.memory.utilization", "1", _sets(state=MEMORY_STATES), P14, 1000, 2000, 1000, 20),
    _gauge("system.disk.pending_operations", "{operation}", _sets(device=DISKS), 1.0, 0, 3, 4, 1),
    _gauge("system.filesystem.usage", "By", _fs("used", "free", "reserved"), P20, 5000, 20000, 500, 5),
    _gauge("system.filesystem.utilization", "1", _fs(), P14, 3000, 8000, 300, 5),
    _gauge("system.filesystem.inodes.usage", "{inode}", _fs("used", "free"), 1.0, 10**5, 10**6, 5000, 50),
    _gauge("system.cpu.load_average.1m", "{thread}", NONE, 2.0**-8, 100, 900, 400, 5),
    _gauge("system.cpu.load_average.5m", "{thread}", NONE, 2.0**-8, 100, 900, 200, 2),
    _gauge("system.cpu.load_average.15m", "{thread}", NONE, 2.0**-8, 100, 900, 100, 1),
    _gauge("system.uptime", "s", NONE, 1.0, 86400, 10**7, 3600, 1),
    _gauge("system.processes.count", "{process}", _sets(status=PROCESS_STATUS), 1.0, 2, 300, 50, 1),
    _gauge("system.network.connections", "{connection}", TCP, 1.0, 0, 200, 100, 2),
    _gauge("system.paging.usage", "By", SWAP, P20, 100, 2000, 100, 1),
    _counter("system.cpu.time", "s", _sets(cpu=CPUS, state=("user", "system")), 64, 1000, 2.0**-7),
    _counter("system.disk.io", "By", _sets(device=DISKS, direction=RW), 10, 100000, 512.0),
    _counter("system.disk.operations", "{operation}", _sets(device=DISKS, direction=RW), 1, 500),
    _counter("system.disk.io_time", "s", _sets(device=DISKS), 1, 5000, 2.0**-10),
    _counter("system.network.io", "By", _sets(device=NICS, direction=RT), 1000, 10**7),
    _counter("system.network.packets", "{packet}", _sets(device=NICS, direction=RT), 10, 10000),
    _counter("system.network.errors", "{error}", _sets(device=NICS, direction=RT), 0, 3),
    _counter("system.network.dropped", "{packet}", _sets(device=NICS, direction=RT), 0, 5),
    _counter("system.paging.faults", "{fault}", _sets(type=("major", "minor")), 0, 2000),
    _counter("system.paging.operations", "{operation}", PAGING, 0, 300),
    _counter("system.processes.created", "{process}", NONE, 1, 50),
    _counter(REQUESTS, "{request}", HTTP_CODES, 50, 200),
    _counter(ERRORS, "{request}", ERROR_CODES, 1, 5),
    Family(DURATION, HISTOGRAM, "ms", _sets(service=SERVICES)),
)

PER_HOST = sum(len(f.labels) for f in FAMILIES)
CPU_PER_HOST = sum(len(f.labels) for f in FAMILIES if f.name == CPU)


def _pattern(x: np.ndarray | int):
    """The gauges' hourly pattern: an integer 0..100 of the shifted step in the hour."""
    return (x * 37) % 101


def _h_pattern(x: np.ndarray | int):
    """The histograms' hourly pattern, 0..16."""
    return (x * 53) % 17


_J = np.arange(HOUR_STEPS)
W_SUM, W_MAX = int(_pattern(_J).sum()), int(_pattern(_J).max())  # min is 0 (at 0)
U_SUM = int(_h_pattern(_J).sum())
STEP_SUM = int(_J.sum())  # 64620


def host_name(h: int) -> str:
    return f"host-{h:04d}"


@dataclass
class Fleet:
    """Every series of `hosts` hosts, in order host-major (then family, then label set), with
    the integers of its formula; `k` is the series' index (a fleet of fewer hosts is a prefix)."""

    hosts: int
    k: np.ndarray
    host: np.ndarray  # host index
    family: np.ndarray  # index into FAMILIES
    kind: np.ndarray
    b0: np.ndarray
    bspan: np.ndarray
    a: np.ndarray
    p: np.ndarray
    c0: np.ndarray
    r: np.ndarray
    scale: np.ndarray

    @classmethod
    def make(cls, hosts: int) -> Fleet:
        fam = np.array([i for i, f in enumerate(FAMILIES) for _ in f.labels], dtype=np.int64)
        family = np.tile(fam, hosts)
        host = np.repeat(np.arange(hosts, dtype=np.int64), PER_HOST)
        k = np.arange(hosts * PER_HOST, dtype=np.int64)
        col = lambda attr: np.array([getattr(FAMILIES[i], attr) for i in range(len(FAMILIES))])[family]  # noqa: E731
        return cls(
            hosts=hosts,
            k=k,
            host=host,
            family=family,
            kind=col("kind").astype(np.int64),
            b0=col("b0").astype(np.int64) + (k * 17) % (col("b0_var").astype(np.int64) + 1),
            bspan=col("bspan").astype(np.int64),
            a=(k * 31) % (col("amp").astype(np.int64) + 1),
            p=(k * 2654435761) % HOUR_STEPS,
            c0=(k * 1000003) % 1_000_000_000,
            r=col("r_lo").astype(np.int64) + (k * 13) % col("r_span").astype(np.int64),
            scale=col("scale").astype(np.float64),
        )

    def __len__(self) -> int:
        return int(self.k.shape[0])

    @functools.cached_property
    def label_sets(self) -> list[tuple[tuple[str, str], ...]]:
        """Each series' labels as the collector stores them: sorted, `host` included."""
        per_family = [[tuple(sorted(ls)) for ls in f.labels] for f in FAMILIES]
        out = []
        for h in range(self.hosts):
            name = ("host", host_name(h))
            for sets in per_family:
                out.extend(tuple(sorted((*ls, name))) for ls in sets)
        return out

    def names(self) -> list[str]:
        return [FAMILIES[i].name for i in self.family.tolist()]

    def where(self, name: str, **labels: str) -> np.ndarray:
        """Indexes of the series of metric `name` whose labels include `labels`."""
        fams = [i for i, f in enumerate(FAMILIES) if f.name == name]
        sel = np.isin(self.family, fams)
        if labels:
            sets = self.label_sets
            want = set(labels.items())
            sel &= np.array([want <= set(ls) for ls in sets])
        return np.flatnonzero(sel)

    def gauge(self, idx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Values (len(idx), len(steps)) of gauges `idx` at day steps `steps`."""
        i = np.asarray(steps, dtype=np.int64)[None, :]
        k, b0, bspan, a, p = (x[idx][:, None] for x in (self.k, self.b0, self.bspan, self.a, self.p))
        n = (
            b0
            + (k * 7919 + (i // HOUR_STEPS) * 104729) % bspan
            + a * _pattern((i % HOUR_STEPS + p) % HOUR_STEPS)
        )
        return n.astype(np.float64) * self.scale[idx][:, None]

    def counter(self, idx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        i = np.asarray(steps, dtype=np.int64)[None, :]
        n = self.c0[idx][:, None] + self.r[idx][:, None] * i
        return n.astype(np.float64) * self.scale[idx][:, None]

    def histogram(self, idx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Per-interval bucket counts (len(idx), len(steps), len(BOUNDS) + 1), the last +Inf."""
        i = np.asarray(steps, dtype=np.int64)[None, :, None]
        k, p = self.k[idx][:, None, None], self.p[idx][:, None, None]
        b = np.arange(len(H_PROFILE))[None, None, :]
        u = _h_pattern((i % HOUR_STEPS + p) % HOUR_STEPS)
        return np.asarray(H_PROFILE)[b] + (k + b) % 5 + np.asarray(H_WEIGHT)[b] * u

    def values(self, idx: np.ndarray, steps: np.ndarray) -> np.ndarray:
        kinds = set(self.kind[idx].tolist())
        if kinds == {GAUGE}:
            return self.gauge(idx, steps)
        if kinds == {COUNTER}:
            return self.counter(idx, steps)
        raise ValueError(f"values of one kind at a time, not {kinds}")


# -- the store -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """The day: D0 (ms, an hour), the raw points' first day step, the day's end."""

    d0_ms: int
    raw_steps: int = HOUR_STEPS  # raw points: the last `raw_steps` steps of the day

    @property
    def end_ms(self) -> int:
        return self.d0_ms + 24 * HOUR_MS

    @property
    def raw_first(self) -> int:
        return DAY_STEPS - self.raw_steps

    @property
    def raw_start_ms(self) -> int:
        """The start of the first minute holding raw points."""
        return self.d0_ms + self.raw_first * STEP_MS

    def ts_ms(self, steps) -> np.ndarray:
        return self.d0_ms + OFFSET_MS + STEP_MS * np.asarray(steps, dtype=np.int64)

    @classmethod
    def ending_hours_ago(cls, hours: int = 4, raw_steps: int = HOUR_STEPS) -> Span:
        """A day ending at an even hour at least `hours` h ago."""
        now = int(time.time() * 1000)
        end = (now - hours * HOUR_MS) // (2 * HOUR_MS) * (2 * HOUR_MS)
        return cls(end - 24 * HOUR_MS, raw_steps)


GEN_COLUMNS = (
    "sid",
    "name",
    "kind",
    "unit",
    "labels",
    "host",
    "hi",
    "k",
    "b0",
    "bspan",
    "a",
    "p",
    "c0",
    "r",
    "scale",
)
HOSTS_PER_CHUNK = 100


def _sql_gauge(i: str) -> str:
    return (
        f"(b0 + (k * 7919 + intDiv({i}, {HOUR_STEPS}) * 104729) % bspan "
        f"+ a * (((({i} % {HOUR_STEPS}) + p) % {HOUR_STEPS}) * 37 % 101))"
    )


def _sql_counts(i: str) -> str:
    u = f"(((({i} % {HOUR_STEPS}) + p) % {HOUR_STEPS}) * 53 % 17)"
    return (
        f"arrayMap(b -> toUInt64({list(H_PROFILE)}[b + 1] + (k + b) % 5 + {list(H_WEIGHT)}[b + 1] * {u}), "
        f"range({len(H_PROFILE)}))"
    )


def _sql_hour_counts(h: str) -> str:
    """A whole hour's bucket counts (hours without raw points)."""
    return (
        f"arrayMap(b -> toUInt64({HOUR_STEPS} * ({list(H_PROFILE)}[b + 1] + (k + b) % 5) "
        f"+ {list(H_WEIGHT)}[b + 1] * {U_SUM}), range({len(H_PROFILE)}))"
    )


def generate(dsn: str, hosts: int, span: Span) -> dict:
    """Fill the store at `dsn` (database ferry, migrated here) with the fleet; returns sizes and
    seconds. Runs in its own process (chDB: one path per process)."""
    from ferry.collector.rows import series_id
    from ferry.collector.storage.store import Store

    t_start = time.perf_counter()
    store = Store.open(dsn)
    store.ensure_schema()
    db = store.db
    fleet = Fleet.make(hosts)
    t0 = time.perf_counter()
    names = fleet.names()
    sets = fleet.label_sets
    sids = np.fromiter((series_id(n, ls) for n, ls in zip(names, sets, strict=True)), np.uint64, len(fleet))
    ids_s = time.perf_counter() - t0
    c = store.client
    c.command(f"DROP TABLE IF EXISTS {db}.fleet_gen")
    c.command(
        f"CREATE TABLE {db}.fleet_gen (sid UInt64, name LowCardinality(String), kind UInt8, "
        "unit LowCardinality(String), labels Map(String, String), host LowCardinality(String), hi UInt32, "
        "k Int64, b0 Int64, bspan Int64, a Int64, p Int64, c0 Int64, r Int64, scale Float64) "
        "ENGINE = MergeTree ORDER BY (hi, k)"
    )
    units = [FAMILIES[i].unit for i in fleet.family.tolist()]
    hosts_col = [host_name(h) for h in fleet.host.tolist()]
    for a in range(0, len(fleet), 200_000):
        b = min(len(fleet), a + 200_000)
        data = [
            sids[a:b],
            names[a:b],
            fleet.kind[a:b].astype(np.uint8),
            units[a:b],
            [dict(ls) for ls in sets[a:b]],
            hosts_col[a:b],
            fleet.host[a:b].astype(np.uint32),
            *(getattr(fleet, x)[a:b] for x in ("k", "b0", "bspan", "a", "p", "c0", "r", "scale")),
        ]
        c.insert(f"{db}.fleet_gen", data, column_names=list(GEN_COLUMNS), column_oriented=True)
    kinds = "['gauge', 'counter', 'histogram'][kind + 1]"
    c.command(
        f"INSERT INTO {db}.series (series_id, name, kind, unit, labels, host, first_seen, last_seen) "
        f"SELECT sid, name, {kinds}, unit, labels, host, "
        f"fromUnixTimestamp64Milli(toInt64({span.d0_ms}), 'UTC'), "
        f"fromUnixTimestamp64Milli(toInt64({span.end_ms - STEP_MS + OFFSET_MS}), 'UTC') FROM {db}.fleet_gen"
    )
    d0, first, hour0 = span.d0_ms, span.raw_first, span.raw_first // HOUR_STEPS
    ts = f"fromUnixTimestamp64Milli({d0 + OFFSET_MS} + {STEP_MS} * i, 'UTC')"
    plain = f"if(kind = {COUNTER}, c0 + r * i, {_sql_gauge('i')})"
    steps = f"arrayJoin(arrayMap(x -> toInt64(x), range({first}, {DAY_STEPS})))"
    timings = {"samples": 0.0, "histograms": 0.0, "rollups_raw": 0.0, "rollups_closed": 0.0}
    hour_ts = f"toDateTime(intDiv({d0}, 1000) + h * 3600, 'UTC')"
    last_step = f"(h * {HOUR_STEPS} + {HOUR_STEPS - 1})"
    last_ts = f"fromUnixTimestamp64Milli({d0 + OFFSET_MS} + {STEP_MS} * {last_step}, 'UTC')"
    for lo in range(0, hosts, HOSTS_PER_CHUNK):
        chunk = f"hi >= {lo} AND hi < {lo + HOSTS_PER_CHUNK}"
        t1 = time.perf_counter()
        points = (
            f"SELECT sid, name, {ts} AS ts, toFloat64({plain}) * scale AS value FROM "
            f"(SELECT sid, name, kind, k, b0, bspan, a, p, c0, r, scale, {steps} AS i FROM {db}.fleet_gen "
            f"WHERE kind != {HISTOGRAM} AND {chunk})"
        )
        c.command(f"INSERT INTO {db}.samples (series_id, name, ts, value) {points}")
        t2 = time.perf_counter()
        hpoints = (
            f"SELECT sid, name, {ts} AS ts, counts, toFloat64(arraySum(arrayMap((x, m) -> x * m, counts, "
            f"{list(H_MID)}))) AS sum, arraySum(counts) AS count, {list(BOUNDS)} AS bounds FROM "
            f"(SELECT sid, name, k, p, {steps} AS i, {_sql_counts('i')} AS counts FROM {db}.fleet_gen "
            f"WHERE kind = {HISTOGRAM} AND {chunk})"
        )
        c.command(f"INSERT INTO {db}.histograms (series_id, name, ts, counts, sum, count, bounds) {hpoints}")
        t3 = time.perf_counter()
        # the rollups of the raw points, as the feeds' views make them (rollups.py _feed_select)
        for bucket, table in (("toStartOfMinute", "samples_1m"), ("toStartOfHour", "samples_1h")):
            c.command(
                f"INSERT INTO {db}.{table} (series_id, name, ts, min, max, sum, count, last) "
                f"SELECT sid, name, {bucket}(p.ts) AS t, min(value), max(value), sum(value), count(), "
                f"argMaxState(value, p.ts) FROM ({points}) AS p GROUP BY sid, name, t"
            )
            c.command(
                f"INSERT INTO {db}.histograms_{table[-2:]} (series_id, name, ts, bounds, sum, count, counts) "
                f"SELECT sid, name, {bucket}(p.ts) AS t, bounds, sum(p.sum), sum(p.count), "
                f"sumForEachState(p.counts) FROM ({hpoints}) AS p GROUP BY sid, name, t, bounds"
            )
        t4 = time.perf_counter()
        # the hours before the raw points, in the 1h rollups, from closed forms
        if hour0 > 0:
            hours = f"arrayJoin(arrayMap(x -> toInt64(x), range({hour0})))"
            level = "(b0 + (k * 7919 + h * 104729) % bspan)"
            last_gauge = f"({level} + a * ((({HOUR_STEPS - 1} + p) % {HOUR_STEPS}) * 37 % 101))"
            base = f"(h * {HOUR_STEPS})"
            cols = (
                f"if(kind = {COUNTER}, c0 + r * {base}, {level}) AS mn, "
                f"if(kind = {COUNTER}, c0 + r * ({base} + {HOUR_STEPS - 1}), {level} + a * {W_MAX}) AS mx, "
                f"if(kind = {COUNTER}, {HOUR_STEPS} * c0 + r * ({HOUR_STEPS} * {base} + {STEP_SUM}), "
                f"{HOUR_STEPS} * {level} + a * {W_SUM}) AS sm, if(kind = {COUNTER}, mx, {last_gauge}) AS lv"
            )
            c.command(
                f"INSERT INTO {db}.samples_1h (series_id, name, ts, min, max, sum, count, last) "
                f"SELECT sid, name, {hour_ts} AS t, min(toFloat64(mn) * scale), max(toFloat64(mx) * scale), "
                f"sum(toFloat64(sm) * scale), sum(toUInt64({HOUR_STEPS})), "
                f"argMaxState(toFloat64(lv) * scale, {last_ts}) "
                f"FROM (SELECT sid, name, scale, {hours} AS h, {cols} FROM {db}.fleet_gen "
                f"WHERE kind != {HISTOGRAM} AND {chunk}) GROUP BY sid, name, t"
            )
            c.command(
                f"INSERT INTO {db}.histograms_1h (series_id, name, ts, bounds, sum, count, counts) "
                f"SELECT sid, name, {hour_ts} AS t, {list(BOUNDS)} AS bounds, "
                f"sum(toFloat64(arraySum(arrayMap((x, m) -> x * m, hc, {list(H_MID)})))), sum(arraySum(hc)), "
                f"sumForEachState(hc) FROM (SELECT sid, name, {hours} AS h, {_sql_hour_counts('h')} AS hc "
                f"FROM {db}.fleet_gen WHERE kind = {HISTOGRAM} AND {chunk}) GROUP BY sid, name, t, bounds"
            )
        t5 = time.perf_counter()
        timings["samples"] += t2 - t1
        timings["histograms"] += t3 - t2
        timings["rollups_raw"] += t4 - t3
        timings["rollups_closed"] += t5 - t4
    c.command(f"DROP TABLE {db}.fleet_gen")
    tables = ("series", "samples", "histograms", "samples_1m", "samples_1h", "histograms_1m", "histograms_1h")
    # merged now, as a day-old store's parts would be, not by the collector while it is timed
    t6 = time.perf_counter()
    for t in tables:
        c.command(f"OPTIMIZE TABLE {db}.{t} FINAL")
    timings["optimize"] = time.perf_counter() - t6
    counts = {t: int(store.query(f"SELECT count() FROM {db}.{t}")[0][0]) for t in tables}
    parts = store.query(
        f"SELECT table, count() FROM system.parts WHERE database = '{db}' AND active GROUP BY table"
    )
    store.close()
    return {
        "hosts": hosts,
        "series": len(fleet),
        "series_per_host": PER_HOST,
        "cpu_series": hosts * CPU_PER_HOST,
        "raw_points": counts["samples"] + counts["histograms"],
        "rows": counts,
        "d0_ms": span.d0_ms,
        "raw_steps": span.raw_steps,
        "series_id_s": ids_s,
        "generate_s": time.perf_counter() - t_start,
        "generate_parts_s": timings,
        "parts": dict(parts),
    }


def generate_isolated(path: Path, hosts: int, span: Span) -> dict:
    """`generate` in a child process: the store's path is then free for the collector."""
    cmd = [sys.executable, "-m", "bench.fleetquery", "generate", "--hosts", str(hosts), "--path", str(path),
           "--d0-ms", str(span.d0_ms), "--raw-steps", str(span.raw_steps)]  # fmt: skip
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- Prometheus: the same points as OpenMetrics, blocks by promtool, a server on them ------------


def _prom_labels(labels: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels)


def write_openmetrics(path: Path, fleet: Fleet, span: Span, steps=None, names=None) -> dict:
    """The points of `fleet` at day steps `steps` (default: the raw ones) of the metrics `names`
    (default: all) as an OpenMetrics file: names with '.' -> '_', counters as `<name>_total`, the
    histogram as a gauge family `<name>_bucket` of each point's own (per-interval) counts,
    cumulative over `le` (Ferry's histogram points are deltas)."""
    t0 = time.perf_counter()
    steps = np.arange(span.raw_first, DAY_STEPS) if steps is None else np.asarray(steps)
    ts = [str(t // 1000) for t in span.ts_ms(steps).tolist()]
    sets, lines = fleet.label_sets, 0
    with path.open("w", buffering=1 << 22) as out:
        for name in names or dict.fromkeys(f.name for f in FAMILIES):
            idx = fleet.where(name)
            kind = int(fleet.kind[idx[0]])
            base = prometheus.prom_name(name)
            if kind == HISTOGRAM:
                out.write(f"# TYPE {base}_bucket gauge\n")
                cum = np.cumsum(fleet.histogram(idx, steps), axis=2)
                les = [f"{b:g}" for b in BOUNDS] + ["+Inf"]
                for row, s in enumerate(idx.tolist()):
                    for b, le in enumerate(les):
                        prefix = f"{base}_bucket{{{_prom_labels((*sets[s], ('le', le)))}}} "
                        vals = cum[row, :, b].tolist()
                        out.write("".join(f"{prefix}{v} {t}\n" for v, t in zip(vals, ts, strict=True)))
                        lines += len(vals)
                continue
            sample = f"{base}_total" if kind == COUNTER else base
            out.write(f"# TYPE {base} {'counter' if kind == COUNTER else 'gauge'}\n")
            for a in range(0, idx.shape[0], 4096):
                part = idx[a : a + 4096]
                values = fleet.values(part, steps)
                for row, s in enumerate(part.tolist()):
                    prefix = f"{sample}{{{_prom_labels(sets[s])}}} "
                    vals = values[row].tolist()
                    out.write("".join(f"{prefix}{v!r} {t}\n" for v, t in zip(vals, ts, strict=True)))
                    lines += len(vals)
        out.write("# EOF\n")
    return {"samples": lines, "bytes": path.stat().st_size, "write_s": time.perf_counter() - t0}


@dataclass
class PromServer:
    address: str
    proc: subprocess.Popen
    version: str

    def get(self, path: str, **params: str | int) -> bytes:
        url = f"http://{self.address}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=300) as resp:
            return resp.read()


@contextlib.contextmanager
def prom_server(tsdb: Path, workdir: Path) -> Iterator[PromServer]:
    """Prometheus on the blocks in `tsdb`, no scrape jobs, a retention long enough for them."""
    from ferry.collector.devrun import free_port

    exe = prometheus.binary()
    config = workdir / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n")
    address = f"127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [exe, f"--config.file={config}", f"--storage.tsdb.path={tsdb}", f"--web.listen-address={address}",
         "--storage.tsdb.retention.time=100y", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise prometheus.Unavailable(f"prometheus exited with {proc.returncode}: {_tail(workdir)}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{address}/-/ready", timeout=2) as r,
            ):
                if r.status == 200:
                    break
            if time.monotonic() > deadline:
                raise prometheus.Unavailable(f"prometheus not ready on {address}: {_tail(workdir)}")
            time.sleep(0.1)
        yield PromServer(address, proc, prometheus.version(exe))
    finally:
        _stop(proc)
        log.close()


def _tail(workdir: Path) -> str:
    with contextlib.suppress(OSError):
        return (workdir / "prometheus.log").read_text()[-400:].strip()
    return "?"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def load_prometheus(workdir: Path, fleet: Fleet, span: Span, day_names=None) -> dict:
    """Write the raw points as OpenMetrics and make TSDB blocks of them with promtool; returns
    sizes and seconds (the files are removed after). `day_names`: instead, the whole day of these
    metrics, one file per 2 h block (promtool parses its whole input once per block it makes)."""
    exe = prometheus.binary()
    promtool = shutil.which("promtool") or str(Path(exe).with_name("promtool"))
    if not os.path.exists(promtool):
        raise prometheus.Unavailable(f"no promtool next to {exe}")
    tsdb = workdir / "tsdb"
    block = 2 * HOUR_STEPS
    # the day: every point the store stands for (the 1h rollup's closed-form hours, the raw ones)
    stored = np.concatenate(
        [np.arange(span.raw_first // HOUR_STEPS * HOUR_STEPS), np.arange(span.raw_first, DAY_STEPS)]
    )
    blocks = [stored[(stored >= b) & (stored < b + block)] for b in range(0, DAY_STEPS, block)]
    parts = [None] if day_names is None else [p for p in blocks if p.shape[0]]
    out = {"samples": 0, "bytes": 0, "write_s": 0.0, "blocks_s": 0.0}
    for steps in parts:
        text = workdir / "fleet.om.txt"
        wrote = write_openmetrics(text, fleet, span, steps, day_names)
        t0 = time.perf_counter()
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(text), str(tsdb)],
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        out["blocks_s"] += time.perf_counter() - t0
        text.unlink()
        if done.returncode != 0:
            raise prometheus.Unavailable(
                f"promtool failed ({done.returncode}): {(done.stderr or done.stdout)[-400:]}"
            )
        for key in ("samples", "bytes", "write_s"):
            out[key] += wrote[key]
    out["tsdb_bytes"] = sum(f.stat().st_size for f in tsdb.rglob("*") if f.is_file())
    return out


# -- the questions -------------------------------------------------------------------------------

Answer = dict[tuple[tuple[str, str], ...], tuple[np.ndarray, np.ndarray]]  # labels -> (t ms, v)


@dataclass
class Question:
    key: str
    what: str
    # (variant, requests): QueryRangeRequest fields, two of them a ratio computed here; every
    # variant is asked, the first that answers is the question's answer ("primary")
    ferry: list[tuple[str, list[dict]]]
    resolutions: tuple[str, ...]
    promql: str = ""  # "" : not asked of Prometheus
    prom_range: tuple[int, int, int] = (0, 0, 0)  # start, end, step (ms): evaluation times
    window_ms: int = MINUTE_MS  # Prometheus's range [w]: its evaluation time - w is Ferry's bucket
    first_step_differs: bool = False  # Ferry's rate: the first step's first point is a baseline
    day: bool = False  # asked of a Prometheus holding the whole day (of system.cpu.utilization)
    label_values: bool = False


def questions(span: Span) -> list[Question]:
    r0, r1 = span.end_ms - HOUR_MS, span.end_ms
    hour_1m = {"start_ms": r0, "end_ms": r1, "step_ms": MINUTE_MS}
    prom_1m = (r0 + MINUTE_MS, r1, MINUTE_MS)
    cpu = prometheus.prom_name(CPU)
    cpu_avg = f"avg by (host) (avg_over_time({cpu}[1m]))"
    by_host = {"metric": CPU, "agg": "avg", "group_by": ["host"]}
    errors_5xx = {"metric": ERRORS, "agg": "rate", "group_by": ["service"],
                  "matchers": [{"label": "code", "op": 2, "value": "5.."}]}  # fmt: skip
    requests = {"metric": REQUESTS, "agg": "rate", "group_by": ["service"]}
    ratio_expr = f'rate({ERRORS}{{code=~"5.."}}) by (service) / rate({REQUESTS}) by (service)'
    ratio_promql = (
        f'sum by (service) (rate({prometheus.prom_name(ERRORS)}_total{{code=~"5.."}}[1m])) / '
        f"sum by (service) (rate({prometheus.prom_name(REQUESTS)}_total[1m]))"
    )
    p99_promql = (
        f"histogram_quantile(0.99, sum by (le) (sum_over_time({prometheus.prom_name(DURATION)}_bucket[1m])))"
    )
    return [
        Question("avg_by_host", "avg by host of system.cpu.utilization, 1 h at step 1m",
                 [("", [{**by_host, **hour_1m}])], ("raw", "1m", ""), cpu_avg, prom_1m),
        Question("avg_by_host_24h", "avg by host of system.cpu.utilization, 24 h at step 1h (1h rollup)",
                 [("", [{**by_host, "start_ms": span.d0_ms, "end_ms": r1, "step_ms": HOUR_MS}])], ("1h",),
                 f"avg by (host) (avg_over_time({cpu}[1h]))", (span.d0_ms + HOUR_MS, r1, HOUR_MS), HOUR_MS,
                 day=True),
        Question("avg_by_host_step_1h", "avg by host of system.cpu.utilization, the raw hour at step 1h",
                 [("", [{**by_host, "start_ms": r0, "end_ms": r1, "step_ms": HOUR_MS}])], ("raw", "1m", "1h"),
                 f"avg by (host) (avg_over_time({cpu}[1h]))", (r1, r1, HOUR_MS), HOUR_MS),
        Question("sum_by_state", "sum by state of system.cpu.utilization over the fleet, 1 h at 1m",
                 [("", [{"metric": CPU, "agg": "sum", "group_by": ["state"], **hour_1m}])], ("raw", "1m"),
                 f"sum by (state) (sum_over_time({cpu}[1m]))", prom_1m),
        Question("p99_duration", "p99 of http.server.duration across all hosts, 1 h at 1m",
                 [("expr", [{"expr": f"p99({DURATION})", **hour_1m}]),
                  ("by __all__", [{"metric": DURATION, "agg": "p99", "group_by": ["__all__"], **hour_1m}])],
                 ("raw", "1m"), p99_promql, prom_1m),
        Question("error_ratio", ratio_expr + ", 1 h at 1m",
                 [("expr", [{"expr": ratio_expr, **hour_1m}]),
                  ("two queries", [{**errors_5xx, **hour_1m}, {**requests, **hour_1m}])],
                 ("raw",), ratio_promql, prom_1m),
        Question("rate_requests", "rate(http.requests) by (service), 1 h at 1m",
                 [("", [{**requests, **hour_1m}])], ("raw",),
                 f"sum by (service) (rate({prometheus.prom_name(REQUESTS)}_total[1m]))", prom_1m,
                 first_step_differs=True),
        Question("topk_hosts", "topk 10 hosts by avg system.cpu.utilization, 1 h at 1m",
                 [("", [{**by_host, "topk": 10, **hour_1m}])], ("raw", "1m"), f"topk(10, {cpu_avg})",
                 prom_1m),
        Question("label_values_host", "ListLabelValues host", [], ("",), "label:host", label_values=True),
    ]  # fmt: skip


def _request(fields: dict, resolution: str):
    """A QueryRangeRequest of `fields`; None when this proto has no such field (expr, topk)."""
    from ferry.v1 import query_pb2

    known = query_pb2.QueryRangeRequest.DESCRIPTOR.fields_by_name
    if any(k not in known for k in fields):
        return None
    f = {k: v for k, v in fields.items() if k != "matchers"}
    matchers = [query_pb2.Matcher(**m) for m in fields.get("matchers", [])]
    return query_pb2.QueryRangeRequest(**f, matchers=matchers, resolution=resolution)


def _ferry_answer(resp, drop: tuple[str, ...] = ("__all__",)) -> Answer:
    out: Answer = {}
    for s in resp.series:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in drop))
        out[labels] = (np.asarray(s.time_ms, dtype=np.int64), np.asarray(s.value, dtype=np.float64))
    return out


def _ratio(a: Answer, b: Answer) -> Answer:
    """a / b on matching labels and times (PromQL's one-to-one vector division)."""
    out: Answer = {}
    for labels, (ta, va) in a.items():
        if labels not in b:
            continue
        tb, vb = b[labels]
        common, ia, ib = np.intersect1d(ta, tb, return_indices=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[labels] = (common, va[ia] / vb[ib])
    return out


def _prom_answer(body: bytes, window_ms: int) -> Answer:
    data = json.loads(body)
    if data.get("status") != "success":
        raise RuntimeError(f"prometheus: {data.get('error', data)}")
    out: Answer = {}
    for s in data["data"]["result"]:
        labels = tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__"))
        t = np.array([round(float(p[0]) * 1000) - window_ms for p in s["values"]], dtype=np.int64)
        out[labels] = (t, np.array([float(p[1]) for p in s["values"]], dtype=np.float64))
    return out


def compare(a: Answer, b: Answer, rel: float = 1e-9, skip_first: bool = False) -> dict:
    """Same groups, same times, values within `rel` relative; the mismatches, precisely."""
    out = {"groups": [len(a), len(b)], "points": [sum(len(v[0]) for v in a.values()),
           sum(len(v[0]) for v in b.values())], "max_rel_diff": 0.0, "mismatches": []}  # fmt: skip
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    bad = out["mismatches"]
    for lab in only_a[:3]:
        bad.append({"labels": dict(lab), "only_in": "ferry"})
    for lab in only_b[:3]:
        bad.append({"labels": dict(lab), "only_in": "prometheus"})
    n_bad = len(only_a) + len(only_b)
    first_t = min((int(t[0]) for t, _ in a.values() if len(t)), default=None)
    for lab in sorted(set(a) & set(b)):
        (ta, va), (tb, vb) = a[lab], b[lab]
        if skip_first:
            ka, kb = ta != first_t, tb != first_t
            ta, va, tb, vb = ta[ka], va[ka], tb[kb], vb[kb]
        if not np.array_equal(ta, tb):
            n_bad += 1
            if len(bad) < 10:
                extra = sorted(set(ta.tolist()) ^ set(tb.tolist()))[:3]
                bad.append(
                    {"labels": dict(lab), "times_differ": [len(ta), len(tb)], "first_differing_ms": extra}
                )
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.abs(va - vb) / np.maximum(np.maximum(np.abs(va), np.abs(vb)), 1e-300)
        d = np.where(va == vb, 0.0, d)  # equal infinities and zeros
        if d.shape[0]:
            out["max_rel_diff"] = max(out["max_rel_diff"], float(np.nanmax(d)))
        for j in np.flatnonzero(~(d <= rel)).tolist():
            n_bad += 1
            if len(bad) < 10:
                bad.append(
                    {
                        "labels": dict(lab),
                        "t_ms": int(ta[j]),
                        "ferry": float(va[j]),
                        "prometheus": float(vb[j]),
                    }
                )
    out["mismatch_count"] = n_bad
    out["equal"] = n_bad == 0
    return out


def _median_ms(fn: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), times


def _rpc_error(exc: grpc.RpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


class FerryClient:
    def __init__(self, addr: str):
        from ferry import transport
        from ferry.collector.query.sql import CLIENT_MAX_RECEIVE_BYTES
        from ferry.v1 import query_pb2_grpc

        ep = dataclasses.replace(transport.endpoint(addr), max_receive_bytes=CLIENT_MAX_RECEIVE_BYTES)
        self.channel = transport.channel(ep)
        self.stub = query_pb2_grpc.QueryStub(self.channel)

    def close(self) -> None:
        self.channel.close()


def ferry_question(client: FerryClient, q: Question, resolution: str, runs: int) -> dict:
    """Ask each variant of `q` at `resolution` (warm-up, then `runs` timed calls): per
    "resolution[:variant]" ("auto" for automatic), the answer and the median ms, or the
    refusal text."""
    from ferry.v1 import query_pb2

    if q.label_values:
        req = query_pb2.ListLabelValuesRequest(label="host", limit=100_000)
        call = lambda: client.stub.ListLabelValues(req, timeout=300)  # noqa: E731
        try:
            resp = call()
        except grpc.RpcError as exc:
            return {"auto": {"refused": _rpc_error(exc)}}
        ms, all_ms = _median_ms(call, runs)
        return {
            "auto": {"ms": ms, "runs_ms": all_ms, "values": list(resp.values), "truncated": resp.truncated}
        }
    out: dict = {}
    known = query_pb2.QueryRangeRequest.DESCRIPTOR.fields_by_name
    name = resolution or "auto"
    for variant, plan in q.ferry:
        got: dict = {"variant": variant}
        out[f"{name}:{variant}" if variant else name] = got
        missing = sorted({k for f in plan for k in f} - set(known))
        if missing:
            got["refused"] = f"QueryRangeRequest has no field {', '.join(missing)}"
            continue
        reqs = [_request(f, resolution) for f in plan]

        def call(reqs=reqs):
            return [client.stub.QueryRange(r, timeout=300) for r in reqs]

        try:
            resps = call()
        except grpc.RpcError as exc:
            got["refused"] = _rpc_error(exc)
            continue
        ms, all_ms = _median_ms(call, runs)
        answers = [_ferry_answer(r) for r in resps]
        answer = answers[0] if len(answers) == 1 else _ratio(answers[0], answers[1])
        got.update(ms=ms, runs_ms=all_ms, answer=answer, answered_by=[r.resolution for r in resps])
        if "topk" in plan[0]:
            per_step = max((len(v) for v in _by_time(answer).values()), default=0)
            if per_step > plan[0]["topk"]:
                got["note"] = f"topk not applied: {per_step} groups a step"
    return out


def _by_time(answer: Answer) -> dict[int, list[float]]:
    steps: dict[int, list[float]] = {}
    for t, v in answer.values():
        for tt, vv in zip(t.tolist(), v.tolist(), strict=True):
            steps.setdefault(tt, []).append(vv)
    return steps


def prom_question(server: PromServer, q: Question, runs: int) -> dict:
    if q.label_values:
        body = server.get("/api/v1/label/host/values")
        ms, all_ms = _median_ms(lambda: server.get("/api/v1/label/host/values"), runs)
        return {"ms": ms, "runs_ms": all_ms, "values": json.loads(body)["data"]}
    start, end, step = q.prom_range
    params = {"query": q.promql, "start": start / 1000, "end": end / 1000, "step": step / 1000}
    body = server.get("/api/v1/query_range", **params)
    answer = _prom_answer(body, q.window_ms)
    ms, all_ms = _median_ms(lambda: server.get("/api/v1/query_range", **params), runs)
    return {"ms": ms, "runs_ms": all_ms, "answer": answer}


def expected_avg_by_host(fleet: Fleet, span: Span, step_ms: int) -> Answer:
    """The formula's avg by host of system.cpu.utilization per step (a divisor of an hour) over
    every point the store holds: the raw steps, and at step 1h also the rollup's earlier hours
    (their sums in closed form: 360 level + amplitude x the pattern's sum)."""
    idx_all = fleet.where(CPU)
    raw = np.arange(span.raw_first, DAY_STEPS)
    bucket = (span.d0_ms + raw * STEP_MS) // step_ms * step_ms
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    per_bucket = np.diff(np.append(starts, raw.shape[0]))
    hours = np.arange(span.raw_first // HOUR_STEPS) if step_ms == HOUR_MS else np.arange(0)
    out: Answer = {}
    for lo in range(0, fleet.hosts, 100):
        hi = min(fleet.hosts, lo + 100)
        idx = idx_all[lo * CPU_PER_HOST : hi * CPU_PER_HOST]
        sums = np.add.reduceat(fleet.gauge(idx, raw), starts, axis=1)  # (series, raw buckets)
        k, b0, bspan, a = (x[idx][:, None] for x in (fleet.k, fleet.b0, fleet.bspan, fleet.a))
        level = b0 + (k * 7919 + hours[None, :] * 104729) % bspan
        closed = (HOUR_STEPS * level + a * W_SUM).astype(np.float64) * fleet.scale[idx][:, None]
        total = np.concatenate([closed, sums], axis=1).reshape(hi - lo, CPU_PER_HOST, -1).sum(axis=1)
        count = CPU_PER_HOST * np.concatenate([np.full(hours.shape[0], HOUR_STEPS), per_bucket])
        t = np.concatenate([span.d0_ms + hours * HOUR_MS, bucket[starts]]).astype(np.int64)
        for row in range(hi - lo):
            out[(("host", host_name(lo + row)),)] = (t, total[row] / count)
    return out


# -- one size: a store, a collector, optionally Prometheus ---------------------------------------


@contextlib.contextmanager
def collector(store_dir: Path, workdir: Path) -> Iterator[tuple[str, float]]:
    """A real collector process on the store in `store_dir`, on loopback; (address, start s)."""
    from ferry.collector.devrun import collector_command, free_port, wait_healthy

    addr, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = (workdir / "collector.log").open("ab")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        collector_command(addr, store_dir, metrics), stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
    )  # fmt: skip
    try:
        wait_healthy(addr, timeout_s=300, proc=proc)
        yield addr, time.perf_counter() - t0
    finally:
        _stop(proc)
        log.close()


def ask_all(
    addr: str, span: Span, runs: int, server: PromServer | None, fleet: Fleet, day: bool = False
) -> dict:
    """Every question to Ferry at each of its resolutions, and (with `server`) to Prometheus;
    Ferry's and Prometheus's runs take turns question by question. `day`: only the questions
    of the whole day, the server holding the day."""
    client = FerryClient(addr)
    out: dict = {}
    try:
        for q in questions(span):
            if day and not q.day:
                continue
            entry: dict = {"what": q.what, "ferry": {}}
            for res in q.resolutions:
                entry["ferry"].update(ferry_question(client, q, res, runs))
            if q.key in ("avg_by_host", "avg_by_host_24h"):  # the formula's own answer
                want = expected_avg_by_host(fleet, span, q.ferry[0][1][0]["step_ms"])
                entry["vs_formula"] = {
                    res: compare(got["answer"], want)
                    for res, got in entry["ferry"].items()
                    if "answer" in got
                }
            if server is not None and q.promql and q.day == day:
                try:
                    entry["prometheus"] = prom_question(server, q, runs)
                except (OSError, RuntimeError) as exc:
                    entry["prometheus"] = {"refused": str(exc)}
                _compare_entry(q, entry)
            out[q.key] = entry
    finally:
        client.close()
    return out


def _compare_entry(q: Question, entry: dict) -> None:
    prom = entry["prometheus"]
    for got in entry["ferry"].values():
        if "ms" not in got or "ms" not in prom:
            continue
        got["vs_prometheus"] = got["ms"] / prom["ms"] if prom["ms"] else None
        if q.label_values:
            same = got["values"] == sorted(prom["values"])
            got["same_as_prometheus"] = {"equal": same, "values": [len(got["values"]), len(prom["values"])]}
        else:
            got["same_as_prometheus"] = compare(got["answer"], prom["answer"])
            if q.first_step_differs:  # without the first step (where Ferry's first point is a baseline)
                got["same_from_second_step"] = compare(got["answer"], prom["answer"], skip_first=True)[
                    "equal"
                ]


def _strip(result: dict) -> dict:
    """The JSON-able part: answers and value lists become their sizes."""
    out: dict = {}
    for key, val in result.items():
        if key == "answer":
            out["answer_groups"] = len(val)
        elif isinstance(val, dict):
            out[key] = _strip(val)
        elif key == "values" and isinstance(val, list) and len(val) > 20:
            out["values_count"] = len(val)
        else:
            out[key] = val
    return out


def run_size(
    hosts: int, workdir: Path, span: Span, runs: int, with_prometheus: bool, day: bool = False
) -> dict:
    """Generate `hosts` hosts, ask everything through a collector (and Prometheus). `day`: load
    Prometheus with the whole day of system.cpu.utilization and ask only the day's questions."""
    store_dir = workdir / f"store-{hosts}"
    gen = generate_isolated(store_dir, hosts, span)
    fleet = Fleet.make(hosts)
    out: dict = {"dataset": gen}
    with contextlib.ExitStack() as stack:
        server = None
        if with_prometheus:
            try:
                pdir = workdir / f"prom-{hosts}{'-day' if day else ''}"
                pdir.mkdir(exist_ok=True)
                out["prometheus_load"] = load_prometheus(pdir, fleet, span, [CPU] if day else None)
                t0 = time.perf_counter()
                server = stack.enter_context(prom_server(pdir / "tsdb", pdir))
                out["prometheus_load"]["start_s"] = time.perf_counter() - t0
                out["prometheus_version"] = server.version
            except prometheus.Unavailable as exc:
                out["prometheus_skipped"] = str(exc)
        addr, out["collector_start_s"] = stack.enter_context(collector(store_dir, workdir))
        out["loadavg_before"] = os.getloadavg()
        out["questions"] = ask_all(addr, span, runs, server, fleet, day)
        out["loadavg_after"] = os.getloadavg()
    shutil.rmtree(store_dir, ignore_errors=True)
    return out


# -- figures -------------------------------------------------------------------------------------


def _ms(result: dict, key: str, res: str) -> float | None:
    return result["questions"][key]["ferry"].get(res, {}).get("ms")


def figures(full: dict, compared: dict | None, compared_hosts: int, day: dict | None = None) -> dict:
    """The figures of the full size, the compared size (both systems) and the day (both systems,
    system.cpu.utilization over 24 h: only avg_by_host_24h is asked there)."""
    out: dict = {
        "fleet_query_hosts": full["dataset"]["hosts"],
        "fleet_query_series": full["dataset"]["series"],
        "fleet_query_cpu_series": full["dataset"]["cpu_series"],
        "fleet_query_raw_points": full["dataset"]["raw_points"],
        "fleet_query_generate_s": full["dataset"]["generate_s"],
        # avg by host, 1 h at step 1m, automatic resolution (the 1m rollup)
        "fleet_query_ms": _ms(full, "avg_by_host", "auto"),
        "fleet_query_raw_ms": _ms(full, "avg_by_host", "raw"),
        "fleet_query_1h_rollup_ms": _ms(full, "avg_by_host_24h", "1h"),
    }
    refused = {
        f"{k}@{res}": got["refused"]
        for k, q in full["questions"].items()
        for res, got in q["ferry"].items()
        if "refused" in got
    }
    out["fleet_query_refused"] = refused
    out["fleet_query_per_query_ms"] = {
        f"{k}@{res}": got.get("ms") for k, q in full["questions"].items() for res, got in q["ferry"].items()
    }
    # the full size's answers against the formulas (no Prometheus there): equal, and how close
    out["fleet_query_vs_formula"] = {
        f"{k}@{res}": {"equal": c["equal"], "max_rel_diff": c["max_rel_diff"]}
        for k in ("avg_by_host", "avg_by_host_24h")
        for res, c in full["questions"][k].get("vs_formula", {}).items()
    }
    out["fleet_query_loadavg"] = {"full": [full.get("loadavg_before"), full.get("loadavg_after")]}
    if compared is None:
        out["fleet_query_vs_prometheus"] = None
        return out
    out["fleet_query_loadavg"]["compared"] = [compared.get("loadavg_before"), compared.get("loadavg_after")]
    if "prometheus_skipped" in compared:
        out["fleet_query_prometheus_skipped"] = compared["prometheus_skipped"]
    ratios, equal, compared_ms, primary = {}, {}, {}, {}
    both = {**compared["questions"], **(day["questions"] if day else {})}
    for k, q in both.items():
        prom = q.get("prometheus", {})
        for res, got in q["ferry"].items():
            if "vs_prometheus" in got:
                compared_ms[f"{k}@{res}"] = [got["ms"], prom["ms"]]
                ratios[f"{k}@{res}"] = got["vs_prometheus"]
                equal[f"{k}@{res}"] = got["same_as_prometheus"]["equal"]
                primary.setdefault((k, res.split(":")[0]), f"{k}@{res}")  # the first variant answered
        if "ms" in prom and not any(key.startswith(f"{k}@") for key in compared_ms):
            compared_ms[f"{k}@prometheus"] = [None, prom["ms"]]
    worst = {key: ratios[key] for key in primary.values()}
    best_per_question: dict[str, float] = {}  # each question at the resolution Ferry answers it fastest
    for (k, _res), key in primary.items():
        best_per_question[k] = min(best_per_question.get(k, float("inf")), ratios[key])
    out.update(
        fleet_query_compared_hosts=compared_hosts,
        # the worst ratio over the questions' primary variants (an expr when it answers)
        fleet_query_vs_prometheus=max(worst.values()) if worst else None,
        fleet_query_vs_prometheus_worst=max(worst, key=worst.get) if worst else None,
        fleet_query_vs_prometheus_all_equal=all(equal[key] for key in worst) if worst else None,
        fleet_query_vs_prometheus_best_resolution=max(best_per_question.values()) if worst else None,
        fleet_query_best_resolution_ratios=best_per_question,
        fleet_query_ratios=ratios,
        fleet_query_answers_equal=equal,
        fleet_query_compared_ms=compared_ms,
        fleet_query_prometheus_load_s=(
            compared["prometheus_load"]["blocks_s"] + compared["prometheus_load"].get("start_s", 0.0)
            if "prometheus_load" in compared else None
        ),
        fleet_query_prometheus_samples=compared.get("prometheus_load", {}).get("samples"),
        fleet_query_compared_generate_s=compared["dataset"]["generate_s"],
        fleet_query_compared_refused={
            f"{k}@{res}": got["refused"]
            for k, q in both.items()
            for res, got in q["ferry"].items()
            if "refused" in got
        },
    )  # fmt: skip
    if day is not None:
        load = day.get("prometheus_load", {})
        out.update(
            fleet_query_day_hosts=day["dataset"]["hosts"],
            fleet_query_day_prometheus_samples=load.get("samples"),
            fleet_query_day_prometheus_load_s=load.get("blocks_s", 0.0) + load.get("start_s", 0.0)
            if load
            else None,
            fleet_query_day_prometheus_skipped=day.get("prometheus_skipped"),
        )
        out["fleet_query_loadavg"]["day"] = [day.get("loadavg_before"), day.get("loadavg_after")]
    return out


NOTES = (
    "counters grow by a steady per-series step (r per 10 s, r different across series), so Ferry's "
    "rate and PromQL's rate() (which extrapolates to the range's edges) are both exactly r / 10 per "
    "second on every step; rate_requests and error_ratio are compared on every step (rate_requests "
    "also from its second step alone, same_from_second_step: Ferry's first point in range is only "
    "a baseline)",
    "the 24 h at 1h question (Ferry: the 1h rollup) is asked of a Prometheus holding the whole day "
    "of system.cpu.utilization at 10 s (no rollups there) at fleet_query_day_hosts hosts (Ferry's "
    "store holds everything), and checked against the formulas at the full size",
    "histograms: Prometheus holds each point's per-interval counts, cumulative over le, as gauges "
    "(<name>_bucket), asked as histogram_quantile(0.99, sum by (le) (sum_over_time(...[1m])))",
    "ratio = Ferry ms / Prometheus ms on the same data (the compared size), medians of 5 after a warm-up",
)


def run(quick: bool, hosts: int = 0, compared_hosts: int = 0, day_hosts: int = 0) -> dict:
    """Full: 2,000 hosts (Ferry), 200 hosts in both Ferry and Prometheus, and 50 hosts' whole day
    of system.cpu.utilization in both; QUICK: 100, 50 and 5."""
    hosts = hosts or (100 if quick else 2000)
    compared_hosts = compared_hosts or (50 if quick else 200)
    day_hosts = day_hosts or (5 if quick else 50)
    runs = 5
    span = Span.ending_hours_ago()
    with tempfile.TemporaryDirectory(prefix="fleetquery-") as tmp:
        workdir = Path(tmp)
        compared = run_size(compared_hosts, workdir, span, runs, with_prometheus=True)
        day = run_size(day_hosts, workdir, span, runs, with_prometheus=True, day=True)
        full = run_size(hosts, workdir, span, runs, with_prometheus=False)
    out = figures(full, compared, compared_hosts, day)
    out["fleet_query_notes"] = list(NOTES)
    out["fleet_query"] = {
        "span": dataclasses.asdict(span),
        "full": _strip(full),
        "compared": _strip(compared),
        "day": _strip(day),
    }
    return out


def print_table(result: dict) -> None:
    for key in ("fleet_query_hosts", "fleet_query_series", "fleet_query_raw_points", "fleet_query_generate_s",
                *FIGURES, "fleet_query_raw_ms", "fleet_query_compared_hosts", "fleet_query_prometheus_load_s",
                "fleet_query_prometheus_samples", "fleet_query_compared_generate_s", "fleet_query_day_hosts",
                "fleet_query_day_prometheus_samples", "fleet_query_day_prometheus_load_s"):  # fmt: skip
        val = result.get(key)
        print(f"{key:40} {val:>14,.2f}" if isinstance(val, (int, float)) else f"{key:40} {val!s:>14}")
    print(f"{'per query (full size)':40} {'ms':>14}")
    for key, ms in result.get("fleet_query_per_query_ms", {}).items():
        print(f"  {key:38} {ms:>14,.2f}" if ms is not None else f"  {key:38} {'refused':>14}")
    print(f"{'compared (ferry ms, prometheus ms)':40} {'ratio':>14} equal")
    for key, (f_ms, p_ms) in result.get("fleet_query_compared_ms", {}).items():
        ratio = result.get("fleet_query_ratios", {}).get(key)
        eq = result.get("fleet_query_answers_equal", {}).get(key, "")
        fm = f"{f_ms:,.1f}" if f_ms is not None else "-"
        print(f"  {key:26} {fm:>9} {p_ms:>9,.1f} {ratio if ratio is None else round(ratio, 3)!s:>7} {eq}")
    details = result.get("fleet_query", {})
    questions_ = {
        **details.get("compared", {}).get("questions", {}),
        **details.get("day", {}).get("questions", {}),
    }
    for key, equal in result.get("fleet_query_answers_equal", {}).items():
        if not equal:
            k, res = key.split("@", 1)
            same = questions_.get(k, {}).get("ferry", {}).get(res, {}).get("same_as_prometheus", {})
            print(f"  MISMATCH {key}: {same.get('mismatch_count')} ({same.get('groups')} groups): "
                  f"{json.dumps(same.get('mismatches', [])[:3])[:300]}")  # fmt: skip
    for key, c in result.get("fleet_query_vs_formula", {}).items():
        print(f"  vs formula {key:27} equal {c['equal']!s:>5}  max rel diff {c['max_rel_diff']:.2g}")
    print(f"  load average (1, 5, 15 min) before/after: {result.get('fleet_query_loadavg')}")
    if result.get("fleet_query_prometheus_skipped"):
        print(f"  prometheus skipped: {result['fleet_query_prometheus_skipped']}")
    for note in NOTES:
        print(f"  note: {note}")
    for key, text in {
        **result.get("fleet_query_refused", {}),
        **result.get("fleet_query_compared_refused", {}),
    }.items():
        print(f"  refused {key}: {text[:200]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd")
    g = sub.add_parser("generate", help="fill a store with the fleet")
    g.add_argument("--hosts", type=int, required=True)
    g.add_argument("--path", required=True)
    g.add_argument("--d0-ms", type=int, default=0)
    g.add_argument("--raw-steps", type=int, default=HOUR_STEPS)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true", help="also print the whole result as JSON")
    p.add_argument("--hosts", type=int, default=0, help="Ferry's fleet (default 2,000; QUICK 100)")
    p.add_argument("--compared-hosts", type=int, default=0, help="both systems' (default 200; QUICK 50)")
    p.add_argument("--day-hosts", type=int, default=0, help="both systems', a day of cpu (50; QUICK 5)")
    a = p.parse_args()
    if a.cmd == "generate":
        span = Span(a.d0_ms, a.raw_steps) if a.d0_ms else Span.ending_hours_ago(raw_steps=a.raw_steps)
        print(json.dumps(generate(f"chdb://{a.path}", a.hosts, span)))
        return
    result = run(a.quick, a.hosts, a.compared_hosts, a.day_hosts)
    if a.json:
        print(json.dumps(result, indent=2, default=str))
    print_table(result)


if __name__ == "__main__":
    main()
