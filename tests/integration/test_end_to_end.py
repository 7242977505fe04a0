"""A real collector and agent on loopback: host metrics arrive and match the host exactly."""

from __future__ import annotations

import time

import orjson
import psutil
import pytest

from ferry import transport
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
