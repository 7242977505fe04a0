"""Bounded work per query, with a real collector on a store of 15 million points: a query whose
client's deadline passed, or whose client went away, stops in the store too; no query takes the
collector past its memory cap; an answer over the cap is refused before it is built.

CPU time and memory are read from /proc of the collector, with wide margins (an idle collector
uses a few hundredths of a CPU second per second). Run with -s for the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import grpc
import pytest

from ferry import transport
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.integration.procs import diagnose, ferry_cli, start_collector

SERIES, POINTS = 300, 15_000_000

# Written straight into the store (the collector stopped: one process holds an embedded store)
# over the last 24 hours: SERIES gauges `heavy.gauge{idx, host}` of POINTS points in all.
FILL = """
import sys
import clickhouse_connect
path, n_series, n_points = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = clickhouse_connect.get_client(interface="chdb", path=path)
c.command(f'''INSERT INTO ferry.series (series_id, name, kind, unit, labels, host, first_seen, last_seen)
SELECT number + 1, 'heavy.gauge', 'GAUGE', '1',
 map('idx', toString(number), 'host', concat('h', toString(number % 10))), concat('h', toString(number % 10)),
 now64(3) - INTERVAL 1 DAY, now64(3) FROM numbers({n_series})''')
step = 86_400_000 * n_series // n_points
c.command(f'''INSERT INTO ferry.samples (series_id, name, ts, value)
SELECT number % {n_series} + 1, 'heavy.gauge',
 now64(3) - toIntervalMillisecond(intDiv(number, {n_series}) * {step} + 60000),
 (number * 7919) % 100003 / 100.0
FROM numbers({n_points})''')
# merged now, so no background merge spends CPU while a test reads the collector's
for table in ("samples", "samples_1m", "samples_1h", "series"):
    c.command(f"OPTIMIZE TABLE ferry.{table} FINAL")
"""


@pytest.fixture(scope="module")
def heavy_store(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("heavy")
    store = workdir / "store"
    start_collector(workdir, store=store).stop()  # the schema
    subprocess.run(
        [sys.executable, "-c", FILL, str(store), str(SERIES), str(POINTS)], check=True, timeout=600
    )
    return store


def heavy_request(by: tuple[str, ...] = ("host",)) -> query_pb2.QueryRangeRequest:
    """p99 of every raw point, in 8 s steps: every value is held and sorted in the store."""
    end = int(time.time() * 1000) + 60_000
    start = end - 24 * 3_600_000 - 120_000
    return query_pb2.QueryRangeRequest(
        metric="heavy.gauge", start_ms=start, end_ms=end, step_ms=8_000, agg="p99", group_by=list(by)
    )


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def memory_kib(pid: int, key: str) -> int:
    """VmRSS (now) or VmHWM (the peak so far) of `pid`, KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def query_range(addr: str, req, timeout: float | None, results: list, cancel_after: float | None = None):
    endpoint = transport.Endpoint(addr, max_receive_bytes=256 << 20)
    with transport.channel(endpoint) as ch:
        call = query_pb2_grpc.QueryStub(ch).QueryRange.future(req, timeout=timeout)
        if cancel_after is not None:
            time.sleep(cancel_after)
            call.cancel()
        try:
            resp = call.result()
            results.append((grpc.StatusCode.OK, f"{sum(len(s.value) for s in resp.series)} points"))
        except grpc.FutureCancelledError:
            results.append((grpc.StatusCode.CANCELLED, "cancelled by the client"))
        except grpc.RpcError as exc:
            results.append((exc.code(), exc.details()))


def concurrently(n: int, *args, **kwargs) -> list:
    results: list = []
    threads = [threading.Thread(target=query_range, args=(*args, results), kwargs=kwargs) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def cpu_after(pid: int) -> float:
    """CPU seconds `pid` uses in the 2 s that start 1 s from now."""
    time.sleep(1.0)
    before = cpu_seconds(pid)
    time.sleep(2.0)
    return cpu_seconds(pid) - before


@pytest.mark.parametrize("how", ["deadline", "client gone"])
def test_a_query_whose_call_ended_stops_using_cpu_within_a_second(heavy_store, tmp_path, how):
    collector = start_collector(tmp_path, store=heavy_store)
    try:
        with diagnose(collector):
            pid = collector.popen.pid
            if how == "deadline":
                results = concurrently(4, collector.addr, heavy_request(), 1.0)
                expected = grpc.StatusCode.DEADLINE_EXCEEDED
            else:
                results = concurrently(4, collector.addr, heavy_request(), None, cancel_after=1.0)
                expected = grpc.StatusCode.CANCELLED
            used = cpu_after(pid)
            rss = memory_kib(pid, "VmRSS") // 1024
            print(
                f"\n4 heavy queries, {how} after 1 s: {results[0][0].name}; "
                f"then {used:.2f} CPU s in 2 s, RSS {rss} MiB"
            )
            assert [code for code, _ in results] == [expected] * 4, results
            assert used < 0.5
    finally:
        collector.stop()


def test_no_query_takes_the_collector_past_its_memory_cap(heavy_store, tmp_path):
    cap = 64 << 20
    collector = start_collector(
        tmp_path, "--query-max-memory-bytes", str(cap), "--queries", "4", store=heavy_store
    )
    try:
        with diagnose(collector):
            pid = collector.popen.pid
            rss_before = memory_kib(pid, "VmRSS") * 1024
            results = concurrently(4, collector.addr, heavy_request(), 120.0)
            growth = memory_kib(pid, "VmHWM") * 1024 - rss_before
            print(
                f"\n4 heavy queries, cap {cap >> 20} MiB: {results[0]}; "
                f"peak RSS {growth >> 20} MiB above the start"
            )
            for code, message in results:
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
                assert f"query_max_memory_bytes {cap}" in message
            # at most `queries` statements at once, each within the cap, and the Python side
            assert growth < 4 * cap + (256 << 20)
    finally:
        collector.stop()


def test_an_answer_over_the_cap_is_refused_before_it_is_built(heavy_store, tmp_path):
    collector = start_collector(tmp_path, store=heavy_store)
    try:
        with diagnose(collector):
            pid = collector.popen.pid
            rss_before = memory_kib(pid, "VmRSS") * 1024
            # one point per series and step: 300 series x 10,800 steps, about 50 MB of answer
            results = concurrently(1, collector.addr, heavy_request(by=()), 120.0)
            growth = memory_kib(pid, "VmHWM") * 1024 - rss_before
            cli = ferry_cli(
                "query",
                "heavy.gauge",
                "--since",
                "24h",
                "--step",
                "8s",
                "--agg",
                "p99",
                "--addr",
                collector.addr,
            )
            print(
                f"\nanswer over the cap: {results[0]}; peak RSS {growth >> 20} MiB above the start; "
                f"CLI: {cli.stderr}"
            )
            code, message = results[0]
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message
            # 3.24 M points: past query_max_points, whose LIMIT stops the read at 1,000,001 rows
            assert "answer of more than query_max_points 1000000 points" in message
            assert growth < 200 << 20
            assert cli.returncode == 1 and "query_max_points" in cli.stderr
    finally:
        collector.stop()


def test_the_cli_takes_any_answer_the_collector_sends(heavy_store, tmp_path):
    collector = start_collector(tmp_path, store=heavy_store)
    try:
        with diagnose(collector):
            # 300 series x 1,440 steps: about 6 MB, over gRPC's default 4 MiB, under the cap
            cli = ferry_cli(
                "query", "heavy.gauge", "--since", "24h", "--step", "1m", "--agg", "p99",
                "--format", "json", "--addr", collector.addr,
            )  # fmt: skip
            assert cli.returncode == 0, cli.stderr
            assert len(cli.stdout.splitlines()) == SERIES
    finally:
        collector.stop()
