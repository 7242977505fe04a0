"""A real collector and agent on loopback: host metrics arrive and match the host exactly, and
the `ferry` CLI's tables show them in human units."""

from __future__ import annotations

import csv
import io
import re
import time

import orjson
import psutil
import pytest

from ferry import transport
from ferry.collector.cli.output import selector
from ferry.collector.cli.units import human
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.integration.procs import collector_and_agent, ferry_cli, start_agent, wait_for


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    with collector_and_agent(
        tmp_path_factory.mktemp("e2e"), "--interval", "1s", "--batch-max-age", "1s"
    ) as pair:
        yield pair


def _ok(done):
    assert done.returncode == 0, done.stderr
    return done


def _query(addr: str, metric: str, agg: str = "last", by=(), since_ms: int = 60_000, step_ms: int = 1000):
    end = int(time.time() * 1000) + 1000
    with transport.channel(addr) as ch:
        return query_pb2_grpc.QueryStub(ch).QueryRange(
            query_pb2.QueryRangeRequest(
                metric=metric,
                start_ms=end - since_ms,
                end_ms=end,
                step_ms=step_ms,
                agg=agg,
                group_by=list(by),
            ),
            timeout=10,
        )


def test_memory_total_matches_host_exactly(running):
    collector, _ = running
    resp = wait_for(
        lambda: _query(collector.addr, "system.memory.usage", agg="sum", by=["host"]).series,
        what="system.memory.usage in the store",
    )
    assert len(resp) == 1
    points = list(zip(resp[0].time_ms, resp[0].value, strict=True))
    assert points
    total = psutil.virtual_memory().total
    # every 1 s bucket holds one sample of each state, and the states sum to MemTotal
    assert {v for _, v in points} == {float(total)}


def test_cpu_time_and_utilization_arrive(running):
    collector, _ = running
    cpus = psutil.cpu_count()
    series = wait_for(
        lambda: _query(collector.addr, "system.cpu.utilization").series, what="system.cpu.utilization"
    )
    assert {s.labels["cpu"] for s in series} == {f"cpu{i}" for i in range(cpus)}
    assert all(0.0 <= v <= 1.0 for s in series for v in s.value)
    # per cpu, the states' utilizations sum to 1 in every bucket, within their rounding (8 states
    # of 4 decimals)
    by_cpu = _query(collector.addr, "system.cpu.utilization", agg="sum", by=["cpu"], step_ms=1000)
    for s in by_cpu.series:
        assert all(abs(v - 1.0) <= 8 * 5e-5 + 1e-9 for v in s.value), (s.labels, list(s.value))
    times = _query(collector.addr, "system.cpu.time").series
    assert len(times) == cpus * 8


def test_agent_self_metrics_count_acks(running):
    collector, agent = running
    wait_for(lambda: agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0) >= 2, what="two acks")
    a, c = agent.scrape(), collector.scrape()
    assert a["ferry_agent_frames_rejected_total"] == 0
    assert c['ferry_collector_frames_total{status="OK"}'] >= 2
    assert c["ferry_collector_points_total"] > 0


def test_cli_query_and_series_json(running):
    collector, _ = running
    wait_for(lambda: _query(collector.addr, "system.memory.usage").series, what="memory series")
    out = _ok(
        ferry_cli(
            "query", "system.memory.usage", "--since", "1m", "--format", "json", "--addr", collector.addr
        )
    ).stdout
    docs = [orjson.loads(line) for line in out.splitlines()]
    assert {d["labels"]["state"] for d in docs} == {
        "used",
        "free",
        "buffered",
        "cached",
        "slab_reclaimable",
        "slab_unreclaimable",
    }
    assert all(d["metric"] == "system.memory.usage" and d["points"] for d in docs)
    assert all(isinstance(t, int) and isinstance(v, float) for d in docs for t, v in d["points"])
    out = _ok(
        ferry_cli(
            "series", 'system.network.io{direction="receive"}', "--format", "json", "--addr", collector.addr
        )
    ).stdout
    docs = [orjson.loads(line) for line in out.splitlines()]
    assert docs and all(set(d) == {"metric", "labels"} for d in docs)
    assert {d["labels"]["device"] for d in docs} == set(psutil.net_io_counters(pernic=True))


def test_cli_exit_codes(running):
    collector, _ = running
    bad = ferry_cli("query", 'x{a="', "--addr", collector.addr)
    assert bad.returncode == 2 and "unterminated string" in bad.stderr
    server = ferry_cli("query", 'system.cpu.time{state=~"("}', "--addr", collector.addr)
    assert server.returncode == 1 and "INVALID_ARGUMENT" in server.stderr and "re2" in server.stderr
    down = ferry_cli("series", "--addr", "127.0.0.1:1", "--timeout", "2")
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr


def test_reflection_lists_the_services(running):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    collector, _ = running
    with transport.channel(collector.addr) as ch:
        services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
    assert {"ferry.v1.Ingest", "ferry.v1.Query", "grpc.health.v1.Health"} <= services


def test_agent_drops_and_counts_frames_the_collector_rejects(running, tmp_path):
    collector, good = running
    bad = start_agent(
        tmp_path,
        collector.addr,
        "--interval",
        "1s",
        "--batch-max-age",
        "1s",
        "--host",
        "h" * 300,
        agent_id="rejected-agent",
    )
    try:
        wait_for(lambda: bad.scrape().get("ferry_agent_frames_rejected_total", 0) >= 2, what="rejections")
        metrics = bad.scrape()
        assert metrics['ferry_agent_acks_total{status="REJECTED"}'] >= 2
        assert metrics["ferry_agent_points_rejected_total"] > 0
        assert metrics["ferry_agent_spool_frames"] <= 1
        assert "label value 300 bytes > 256 allowed for 'host'" in bad.output()
        before = good.scrape()['ferry_agent_acks_total{status="OK"}']
        wait_for(
            lambda: good.scrape()['ferry_agent_acks_total{status="OK"}'] > before, what="good agent acks"
        )
    finally:
        bad.stop()


def _json_points(addr: str, *query: str) -> dict[str, list[tuple[int, float]]]:
    out = _ok(ferry_cli("query", *query, "--format", "json", "--addr", addr)).stdout
    docs = [orjson.loads(line) for line in out.splitlines()]
    return {selector(d["metric"], d["labels"]): [(t, v) for t, v in d["points"]] for d in docs}


def _table_points(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each series' head line (the selector, the sparkline and min … max) and its points'
    (time, value) cells, from `ferry query`'s table."""
    table: dict[str, list[tuple[str, str]]] = {}
    head = ""
    for line in text.splitlines():
        if line.startswith("  "):
            when, value = line.strip().split("  ", 1)
            table[head].append((when, value.strip()))
        else:
            head = line.split("  ")[0]
            table[head] = [("head", line.split("  ", 2)[2])]
    return table


BYTES_CELL = re.compile(r"(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)")


def test_cli_tables_show_human_units(running):
    """`ferry query system.memory.usage` shows B/KiB/MiB/GiB, each the json's raw value
    converted; json and csv stay raw; `ferry top` and `ferry series` show units too."""
    collector, _ = running
    addr = collector.addr

    def answered():
        until = str(int(time.time()) - 3)  # whole 1 s buckets, all their points stored by now
        query = ("system.memory.usage", "--since", "10s", "--until", until, "--step", "1s")
        raw = _json_points(addr, *query)
        if not raw:
            return None
        table = _table_points(_ok(ferry_cli("query", *query, "--addr", addr)).stdout)
        # the same answer before and after the table: no point arrived between
        return (query, raw, table) if _json_points(addr, *query) == raw else None

    query, raw, table = wait_for(answered, what="memory points older than 3 s, stable")
    assert raw and set(table) == set(raw)
    units = set()
    for name, points in raw.items():
        values = [v for _, v in points]
        cells = table[name]
        assert cells[0][1] == f"{human(min(values), 'By')} … {human(max(values), 'By')}"
        assert [c for _, c in cells[1:]] == [human(v, "By") for v in values]
        for (_, cell), v in zip(cells[1:], values, strict=True):
            number, unit = BYTES_CELL.fullmatch(cell).groups()
            units.add(unit)
            scale = 1024 ** ("B", "KiB", "MiB", "GiB", "TiB").index(unit)
            # three significant digits of the raw value, in the unit's 1024 steps
            assert abs(float(number) * scale - v) <= max(0.005 * v, 0.5 * scale), (cell, v)
    assert units & {"MiB", "GiB"}, units
    # csv: the json's numbers, raw
    out = _ok(ferry_cli("query", *query, "--format", "csv", "--addr", addr)).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["series", "time_ms", "value"]
    assert sorted((r[0], int(r[1]), float(r[2])) for r in rows[1:]) == sorted(
        (name, t, v) for name, points in raw.items() for t, v in points
    )
    # a rate of a bytes counter is bytes per second
    rates = _ok(
        ferry_cli("query", "system.network.io", "--agg", "rate", "--by", "direction", "--addr", addr)
    ).stdout
    cells = [line.split()[-2:] for line in rates.splitlines() if line.startswith("  ")]
    assert cells and all(re.fullmatch(r"(B|KiB|MiB|GiB)/s", unit) for _, unit in cells), cells
    # ferry top: cpu in %, memory in bytes; ferry series names the unit
    top = wait_for(
        lambda: _ok(ferry_cli("top", "--addr", addr)).stdout.splitlines()[1:], what="processes in top"
    )
    assert all(re.fullmatch(r"\d+(\.\d+)?%", line.split()[-2]) for line in top), top
    top = _ok(ferry_cli("top", "--by", "memory", "--addr", addr)).stdout.splitlines()[1:]
    assert top and all(BYTES_CELL.fullmatch(" ".join(line.split()[-3:-1])) for line in top), top
    series = _ok(ferry_cli("series", "system.memory.usage", "--addr", addr)).stdout.splitlines()
    assert series[0].split()[:3] == ["SERIES", "KIND", "UNIT"]
    assert {line.split()[1:3] == ["gauge", "bytes"] for line in series[1:]} == {True}
    out = _ok(ferry_cli("series", "system.memory.usage", "--format", "csv", "--addr", addr)).stdout
    assert {r["unit"] for r in csv.DictReader(io.StringIO(out))} == {"By"}
