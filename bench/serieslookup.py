"""Series lookup benchmark: how long the `series` lookup by metric and label matchers takes, and
how many rows the store reads for it, at fleet scale (issue 19).

A fresh embedded store is filled inside ClickHouse (INSERT ... SELECT FROM numbers()) with a
generated fleet: HOSTS hosts, each with the same ~500 series over ~45 metric names shaped like
the agent's catalogue (docs/METRICS.md): `system.cpu.utilization` has 16 cpus x 8 states per
host (256k series at 2,000 hosts), processes carry a per-host pid. 2,000 hosts make 1M series;
`--quick` 200 hosts, 100k series. Every candidate design gets its own database holding the same
rows (copied, then OPTIMIZE FINAL), and each lookup is timed there (median of RUNS after a
warm-up). Rows read are the store's SelectedRows counter (system.events) around the statement.

Candidates:
- today: ORDER BY (name, series_id), `labels[k]` conditions (migration 8);
- bloom: today + bloom_filter skip indexes on mapKeys(labels) and mapValues(labels);
- buckets: today with the Map column written in hash buckets (map_serialization_version =
  with_buckets: `labels[k]` reads the one bucket holding k);
- inverted: today + series_by_label (name, key, value, series_id), filled by a materialized
  view; a matcher becomes `series_id [NOT] IN (SELECT series_id FROM series_by_label ...)`;
- hostkey (migration 9, what `tables.SERIES` declares): ORDER BY (name, host, series_id),
  `host` a plain column, and `ferry.collector.query.sql.series_where` as the collector runs it:
  a matcher on the `host` label reads that column (the same value: the collector writes the host
  into the labels and the column alike), a regex on it adds its literal prefix (`startsWith`),
  so a host's series are adjacent and a host lookup reads its granule only;
- hostkey+g1024: the same with 1,024-row granules (8,192 by default).
(A Map-buckets variant of hostkey was slower than hostkey in every lookup: dropped.)

The lookups have the shape of the QueryRange series lookup without a group-by
(`ferry.collector.query.lookup.lookup_sql`: series_id, kind, labels, LIMIT 1 BY series_id, at
most query_max_groups + 1 = 10,001) and of ListLabelValues of `host` before and after
`ferry.collector.query.listing.label_values` dropped its GROUP BY series_id.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from ferry.collector.query.sql import series_where
from ferry.collector.storage import tables
from ferry.collector.storage.layout import Layout
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store
from ferry.v1 import query_pb2

HOSTS, QUICK_HOSTS = 2_000, 200
RUNS = 5
LIMIT = 10_001  # QueryLimits.max_series + 1: what QueryRange's lookup asks for
CPU = "system.cpu.utilization"
CPU_STATES = ("user", "system", "idle", "interrupt", "nice", "softirq", "steal", "wait")


def catalogue() -> list[tuple[str, str, str, dict[str, str]]]:
    """One host's series: (name, kind, unit, labels without host). `$pid` stands for a pid that
    differs from host to host."""
    out: list[tuple[str, str, str, dict[str, str]]] = []

    def add(metric, kind, unit, /, **dims):
        combos: list[dict[str, str]] = [{}]
        for k, values in dims.items():
            combos = [{**c, k: v} for c in combos for v in values]
        out.extend((metric, kind, unit, c) for c in combos)

    cpus = [str(i) for i in range(16)]
    add(CPU, "gauge", "1", cpu=cpus, state=CPU_STATES)
    add("system.cpu.time", "counter", "s", cpu=cpus, state=CPU_STATES)
    for w in ("1m", "5m", "15m"):
        add(f"system.cpu.load_average.{w}", "gauge", "{thread}")
    mem = ("used", "free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable")
    add("system.memory.usage", "gauge", "By", state=mem)
    add("system.memory.utilization", "gauge", "1", state=mem)
    disks, rw = ("sda", "sdb", "nvme0n1", "nvme1n1"), ("read", "write")
    for m in ("io", "merged", "operation_time", "operations"):
        add(f"system.disk.{m}", "counter", "By", device=disks, direction=rw)
    add("system.disk.io_time", "counter", "s", device=disks)
    add("system.disk.pending_operations", "gauge", "{operation}", device=disks)
    fs = {"device": ("sda1", "sda2", "nvme0n1p1", "tmpfs"), "mode": ("rw",), "type": ("ext4",)}
    for m in ("usage", "inodes.usage"):
        add(f"system.filesystem.{m}", "gauge", "By", **fs, state=("used", "free", "reserved"))
    add("system.filesystem.utilization", "gauge", "1", **fs)
    nics = ("eth0", "eth1", "lo")
    for m in ("dropped", "errors", "io", "packets"):
        add(f"system.network.{m}", "counter", "By", device=nics, direction=("receive", "transmit"))
    tcp = ("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE")
    add("system.network.connections", "gauge", "{connection}", protocol=("tcp",), state=tcp)
    add("system.paging.faults", "counter", "{fault}", type=("major", "minor"))
    add(
        "system.paging.operations", "counter", "{operation}", direction=("in", "out"), type=("major", "minor")
    )
    add("system.paging.usage", "gauge", "By", device=("swap",), state=("used", "free"))
    status = ("running", "sleeping", "blocked", "zombies", "stopped", "idle", "paging", "unknown")
    add("system.processes.count", "gauge", "{process}", status=status)
    add("system.processes.created", "counter", "{process}")
    add("system.uptime", "gauge", "s")
    procs = [("top", n) for n in ("postgres", "java", "nginx", "python3", "node", "sshd", "dockerd")]
    procs += [("web", "gunicorn"), ("db", "redis-server")]
    for i, (group, pname) in enumerate(procs):
        p = {"group": (group,), "name": (pname,), "pid": (f"$pid{i}",)}
        for m in ("cpu.utilization", "memory.usage", "memory.virtual", "open_file_descriptors", "threads"):
            add(f"process.{m}", "gauge", "1", **p)
        add("process.context_switches", "counter", "{count}", **p, type=("voluntary", "involuntary"))
        add("process.cpu.time", "counter", "s", **p, state=("user", "system"))
        add("process.disk.io", "counter", "By", **p, direction=("read", "write"))
    for m in ("frames.rejected", "points.rejected", "spool.dropped_frames", "spool.dropped_points"):
        add(f"ferry.agent.{m}", "counter", "{frame}")
    checks = {"check": ("api", "db"), "target": ("localhost",), "type": ("http",)}
    add("check.duration", "gauge", "ms", **checks)
    add("check.up", "gauge", "1", **checks)
    add("scrape.duration", "gauge", "ms", instance=("localhost:9100",), job=("node",))
    add("scrape.up", "gauge", "1", instance=("localhost:9100",), job=("node",))
    return out


def host_name(i: int) -> str:
    return f"h-{i:04d}"


def pid(host: int, i: int) -> str:
    return str(1000 + (host * 7919 + i * 104729) % 30000)


def generated(hosts: int) -> list[tuple[str, dict[str, str]]]:
    """The (name, labels) of every series `fill` writes, built in Python (tests compare the
    store's answers with a plain filter over these)."""
    cat = catalogue()
    out = []
    for h in range(hosts):
        for name, _, _, labels in cat:
            ls = {k: (pid(h, int(v[4:])) if v.startswith("$pid") else v) for k, v in labels.items()}
            ls["host"] = host_name(h)
            out.append((name, dict(sorted(ls.items()))))
    return out


def fill(store: Store, table: str, hosts: int) -> int:
    """Write `hosts` x catalogue() series rows into `table` (db.series or a copy of its
    columns) from inside ClickHouse. Labels are sorted by key (as the collector writes them)
    and the series id is a hash of the name and labels. Returns the rows written."""
    db = store.db
    cat = catalogue()
    store.client.command(f"DROP TABLE IF EXISTS {db}._catalogue")
    store.client.command(
        f"CREATE TABLE {db}._catalogue (i UInt32, name String, kind String, unit String, "
        "keys Array(String), vals Array(String)) ENGINE = Memory"
    )
    rows = []
    for i, (name, kind, unit, labels) in enumerate(cat):
        ls = sorted({**labels, "host": "$host"}.items())
        rows.append([i, name, kind, unit, [k for k, _ in ls], [v for _, v in ls]])
    store.client.insert(f"{db}._catalogue", rows, column_names=["i", "name", "kind", "unit", "keys", "vals"])
    # the same pid as `pid`: 1000 + (host * 7919 + i * 104729) % 30000
    value = (
        "multiIf(v = '$host', concat('h-', leftPad(toString(h.number), 4, '0')), "
        "startsWith(v, '$pid'), "
        "toString(1000 + (h.number * 7919 + toUInt64(substring(v, 5)) * 104729) % 30000), v)"
    )
    store.client.command(
        f"INSERT INTO {table} (series_id, name, kind, unit, labels, host, first_seen, last_seen) "
        "SELECT sipHash64(name, toString(labels)) AS series_id, name, kind, unit, labels, "
        "labels['host'] AS host, now64(3), now64(3) FROM ("
        f"SELECT c.name AS name, c.kind AS kind, c.unit AS unit, "
        f"mapFromArrays(c.keys, arrayMap(v -> {value}, c.vals)) AS labels "
        f"FROM numbers({int(hosts)}) AS h CROSS JOIN {db}._catalogue AS c)",
        settings={"max_insert_threads": 2},
    )
    store.client.command(f"DROP TABLE {db}._catalogue")
    return hosts * len(cat)


# -- the candidates' conditions: (metric, matchers, params) -> a WHERE condition on series ----


def _check(matchers) -> None:
    for mt in matchers:
        if mt.op not in (query_pb2.EQ, query_pb2.NEQ, query_pb2.RE, query_pb2.NRE):
            raise ValueError(f"unknown operator {mt.op}")


_LABEL_OPS = {
    query_pb2.EQ: "{x} = {{v{i}:String}}",
    query_pb2.NEQ: "{x} != {{v{i}:String}}",
    query_pb2.RE: "match({x}, concat('^(?:', {{v{i}:String}}, ')$'))",
    query_pb2.NRE: "NOT match({x}, concat('^(?:', {{v{i}:String}}, ')$'))",
}


def labels_where(metric: str, matchers, params: dict[str, Any]) -> str:
    """Migration 8's `series_where`: every matcher on `labels[k]`."""
    _check(matchers)
    where = ["name = {metric:String}"] if metric else []
    if metric:
        params["metric"] = metric
    for i, mt in enumerate(matchers):
        params[f"k{i}"], params[f"v{i}"] = mt.label, mt.value
        where.append(_LABEL_OPS[mt.op].format(x=f"labels[{{k{i}:String}}]", i=i))
    return " AND ".join(where) or "1"


def host_where(metric: str, matchers, params: dict[str, Any]) -> str:
    """Migration 9's: `ferry.collector.query.sql.series_where` as the collector runs it (a
    matcher on `host` reads the host column, in the sort key; a regex on it adds its literal
    prefix)."""
    return series_where(metric, matchers, params)


def inverted_where(db: str) -> Callable[[str, Any, dict[str, Any]], str]:
    """Each matcher as `series_id [NOT] IN` the ids of series_by_label rows: a series whose
    label k is missing or "" has no row of k with a non-empty value, so a matcher that
    matches "" (EQ "", NEQ v, RE/NRE by whether the regex matches "") is the complement of
    the series whose value fails it."""

    def where(metric: str, matchers, params: dict[str, Any]) -> str:
        _check(matchers)
        out = ["name = {metric:String}"] if metric else []
        name = "name = {metric:String} AND " if metric else ""
        if metric:
            params["metric"] = metric
        for i, mt in enumerate(matchers):
            params[f"k{i}"], params[f"v{i}"] = mt.label, mt.value
            rx = f"concat('^(?:', {{v{i}:String}}, ')$')"
            if mt.op in (query_pb2.EQ, query_pb2.NEQ):
                empty_ok = (mt.value == "") == (mt.op == query_pb2.EQ)
                fails = f"value != {{v{i}:String}}" if mt.op == query_pb2.EQ else f"value = {{v{i}:String}}"
                passes = f"value = {{v{i}:String}}" if mt.op == query_pb2.EQ else f"value != {{v{i}:String}}"
            else:
                import re

                hit = re.fullmatch(mt.value, "") is not None
                empty_ok = hit if mt.op == query_pb2.RE else not hit
                m = f"match(value, {rx})"
                passes, fails = (m, f"NOT {m}") if mt.op == query_pb2.RE else (f"NOT {m}", m)
            sub = (
                f"SELECT series_id FROM {db}.series_by_label "
                f"WHERE {name}key = {{k{i}:String}} AND value != '' AND "
            )
            if empty_ok:
                out.append(f"series_id NOT IN ({sub}{fails})")
            else:
                out.append(f"series_id IN ({sub}{passes})")
        return " AND ".join(out) or "1"

    return where


# -- the candidates' tables ------------------------------------------------------------------

SERIES_COLUMNS = """series_id UInt64, name LowCardinality(String),
    kind SimpleAggregateFunction(any, LowCardinality(String)),
    unit SimpleAggregateFunction(any, LowCardinality(String)),
    labels SimpleAggregateFunction(any, Map(String, String)),
    host {host},
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC'))"""
ANY_LC = "SimpleAggregateFunction(any, LowCardinality(String))"
BUCKETS = (
    "map_serialization_version = 'with_buckets', "
    "map_serialization_version_for_zero_level_parts = 'with_buckets'"
)


def series_ddl(
    db: str, order_by: str = "(name, series_id)", host: str = ANY_LC, extra: str = "", settings: str = ""
) -> list[str]:
    s = f"\nSETTINGS {settings}" if settings else ""
    return [
        f"DROP TABLE IF EXISTS {db}.series",
        f"CREATE TABLE {db}.series ({SERIES_COLUMNS.format(host=host)}{extra}) "
        f"ENGINE = AggregatingMergeTree ORDER BY {order_by}{s}",
    ]


def inverted_ddl(db: str) -> list[str]:
    return [
        f"CREATE TABLE {db}.series_by_label (name LowCardinality(String), key LowCardinality(String), "
        "value String, series_id UInt64) ENGINE = ReplacingMergeTree ORDER BY (name, key, value, series_id)",
        f"CREATE MATERIALIZED VIEW {db}.series_by_label_mv TO {db}.series_by_label AS "
        f"SELECT name, key, value, series_id FROM {db}.series "
        "ARRAY JOIN mapKeys(labels) AS key, mapValues(labels) AS value WHERE value != ''",
    ]


BLOOM = (
    ",\n    INDEX label_keys mapKeys(labels) TYPE bloom_filter GRANULARITY 1"
    ",\n    INDEX label_values mapValues(labels) TYPE bloom_filter GRANULARITY 1"
)


def candidates(db: str) -> dict[str, tuple[list[str], Callable]]:
    """name -> (DDL in database `db`, the condition function)."""
    return {
        "today": (series_ddl(db), labels_where),
        "bloom": (series_ddl(db, extra=BLOOM), labels_where),
        "buckets": (series_ddl(db, settings=BUCKETS), labels_where),
        "inverted": ([*series_ddl(db), *inverted_ddl(db)], inverted_where(db)),
        "hostkey": ([f"DROP TABLE IF EXISTS {db}.series", *tables.SERIES.create(Layout(db))], host_where),
        "hostkey+g1024": (
            series_ddl(
                db, "(name, host, series_id)", "LowCardinality(String)", settings="index_granularity = 1024"
            ),
            host_where,
        ),
    }


CHOSEN = "hostkey"  # migration 9


def _m(label: str, op: int, value: str) -> query_pb2.Matcher:
    return query_pb2.Matcher(label=label, op=op, value=value)


EQ, NEQ, RE, NRE = query_pb2.EQ, query_pb2.NEQ, query_pb2.RE, query_pb2.NRE
# (name, metric, matchers); a "lv:" name is ListLabelValues of host
LOOKUPS = (
    ("host=", CPU, [_m("host", EQ, "h-0017")]),
    ("host=~h-00.*", CPU, [_m("host", RE, "h-00.*")]),
    ("host=~h-19.*", CPU, [_m("host", RE, "h-19.*")]),  # the hosts last in the sort key
    ("state!=idle", CPU, [_m("state", NEQ, "idle")]),
    ("host=,cpu=", CPU, [_m("host", EQ, "h-0017"), _m("cpu", EQ, "3")]),
    ("cpu=", CPU, [_m("cpu", EQ, "3")]),
    ("absent=x", CPU, [_m("absent", EQ, "x")]),
    ("absent=''", CPU, [_m("absent", EQ, "")]),
    ("lv:host metric", CPU, []),
    ("lv:host all", "", []),
    ("lv2:host all", "", []),  # listing's statement without its GROUP BY (not what it runs today)
)
# repeated statements would otherwise skip the granules an earlier run found nothing in (the
# query condition cache): each lookup is measured as if it were the first of its kind
SETTINGS = " SETTINGS use_query_condition_cache = 0"


def lookup_sql(db: str, cond: str) -> str:
    return (
        f"SELECT series_id, kind, labels FROM {db}.series WHERE {cond} "
        f"LIMIT 1 BY series_id LIMIT {LIMIT}{SETTINGS}"
    )


def label_values_sql(db: str, cond: str) -> str:
    return (
        "SELECT DISTINCT series_labels['host'] AS v FROM ("
        f"SELECT series_id, any(labels) AS series_labels FROM {db}.series "
        f"WHERE {cond} AND mapContains(labels, 'host') GROUP BY series_id, name"
        f") ORDER BY v LIMIT 1001{SETTINGS}"
    )


def label_values_distinct_sql(db: str, cond: str) -> str:
    """label_values_sql without the GROUP BY series_id: a series' labels are a function of its
    id, so the distinct values are the same (without time bounds, which need the merge)."""
    return (
        f"SELECT DISTINCT labels['host'] AS v FROM {db}.series "
        f"WHERE {cond} AND mapContains(labels, 'host') ORDER BY v LIMIT 1001{SETTINGS}"
    )


def _selected(store: Store) -> int:
    rows = store.client.query("SELECT value FROM system.events WHERE event = 'SelectedRows'").result_rows
    return int(rows[0][0]) if rows else 0


def measure(store: Store, sql: str, params: dict, runs: int) -> tuple[float, int, int]:
    """(median ms, rows read, rows answered) of `sql`, after a warm-up."""
    base = _selected(store)
    base = _selected(store) - base  # what the counter query itself adds
    store.query(sql, params)
    times, reads = [], []
    n = 0
    for _ in range(runs):
        before = _selected(store)
        t0 = time.perf_counter()
        n = len(store.query(sql, params))
        times.append((time.perf_counter() - t0) * 1000)
        reads.append(_selected(store) - before - base)
    return statistics.median(times), int(statistics.median(reads)), n


def run(quick: bool, runs: int = RUNS, only: tuple[str, ...] = ()) -> dict:
    hosts = QUICK_HOSTS if quick else HOSTS
    with tempfile.TemporaryDirectory(prefix="ferry-bench-serieslookup-", ignore_cleanup_errors=True) as tmp:
        dsn = f"chdb://{tmp}/store"
        src = Store.open(dsn, database="lookup_src")
        src.ensure_schema(SchemaOptions(database="lookup_src"))
        t0 = time.perf_counter()
        n = fill(src, "lookup_src.series", hosts)
        fill_s = time.perf_counter() - t0
        src.client.command("OPTIMIZE TABLE lookup_src.series FINAL")
        results: dict[str, dict[str, tuple[float, int, int]]] = {}
        for i, (name, (ddl, _)) in enumerate(candidates("DB").items()):
            if only and name not in only:
                continue
            db = f"cand{i}"
            store = Store.open(dsn, database=db)
            store.client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
            for statement in ddl:
                store.client.command(statement.replace("DB.", f"{db}."))
            store.client.command(f"INSERT INTO {db}.series SELECT * FROM lookup_src.series")
            store.client.command(f"OPTIMIZE TABLE {db}.series FINAL")
            if name == "inverted":
                store.client.command(f"OPTIMIZE TABLE {db}.series_by_label FINAL")
            cond_of = candidates(db)[name][1]
            results[name] = {}
            for label, metric, matchers in LOOKUPS:
                params: dict[str, Any] = {}
                cond = cond_of(metric, matchers, params)
                if label.startswith("lv:"):
                    sql = label_values_sql(db, cond)
                elif label.startswith("lv2:"):
                    sql = label_values_distinct_sql(db, cond)
                else:
                    sql = lookup_sql(db, cond)
                results[name][label] = measure(store, sql, params, runs)
            store.client.command(f"DROP DATABASE {db}")
            store.close()
        src.close()
    names = list(results)
    out: dict[str, Any] = {"series": n, "hosts": hosts, "fill_s": round(fill_s, 2), "runs": runs}
    out["table"] = {c: {k: list(v) for k, v in r.items()} for c, r in results.items()}
    chosen = CHOSEN if CHOSEN in results else names[0]
    r = results[chosen]
    out["series_lookup_ms"] = round(r["host="][0], 2)
    out["series_lookup_rows_read"] = r["host="][1]
    out["series_lookup_re_ms"] = round(r["host=~h-00.*"][0], 2)
    out["series_label_values_ms"] = round(r["lv:host all"][0], 2)
    if "today" in results:
        out["series_lookup_today_ms"] = round(results["today"]["host="][0], 2)
    return out


def print_table(result: dict) -> None:
    table = result["table"]
    names = list(table)
    print(
        f"{result['series']:,} series, {result['hosts']} hosts (filled in {result['fill_s']} s); "
        f"median of {result['runs']} runs: ms / rows read (answer rows)"
    )
    print(f"{'lookup':16}" + "".join(f"{n:>26}" for n in names))
    for label, _, _ in LOOKUPS:
        cells = []
        for n in names:
            ms, read, rows = table[n][label]
            cells.append(f"{ms:8.1f} {read:>9,} ({rows:>6,})")
        print(f"{label:16}" + "".join(f"{c:>26}" for c in cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"{QUICK_HOSTS} hosts (100k series)")
    p.add_argument("--runs", type=int, default=RUNS)
    p.add_argument("--only", default="", help="comma-separated candidate names")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    result = run(a.quick, a.runs, tuple(x for x in a.only.split(",") if x))
    if a.json:
        json.dump(result, sys.stdout)
        return
    print_table(result)
    print(json.dumps({k: v for k, v in result.items() if k != "table"}))


if __name__ == "__main__":
    main()
