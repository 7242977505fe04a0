"""An ack is a fact: a collector whose store stopped taking writes answers UNAVAILABLE and acks
nothing, and what the agent kept is stored once the collector runs on a good store again.

Real collector and agent processes on loopback: the embedded store removed under the running
collector (embedded chDB then goes on answering inserts OK into directories it recreates, while
the tables' metadata is gone); and the samples table's directory made immutable (chattr +i:
its inserts fail) and then writable again, where the collector recovers by itself. Run with -s
for the figures.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferry import transport
from ferry.v1 import ingest_pb2_grpc
from tests import framegen
from tests.conftest import free_port
from tests.integration.procs import diagnose, start_agent, start_collector, synthetic_stored, wait_for


def _health(addr: str) -> int:
    with transport.channel(addr) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5).status


def _push_code(addr: str) -> tuple[grpc.StatusCode, str]:
    frame = framegen.frame(framegen.gauge_batch("store.lost.probe"), seq=1, agent_id="pusher")
    with transport.channel(addr) as ch:
        try:
            ingest_pb2_grpc.IngestStub(ch).Push(frame, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def _refused_or_acked(metrics: dict[str, float]) -> bool:
    return (
        metrics.get("ferry_agent_reconnects_total", 0) >= 2
        or metrics.get('ferry_agent_acks_total{status="OK"}', 0) >= 5
    )


def test_removed_store_gives_unavailable_and_no_acked_point_is_lost(tmp_path):
    total = 20_000
    store, port = tmp_path / "store", free_port()
    collector = start_collector(tmp_path, port=port, store=store)
    agent = None
    try:
        with diagnose(collector):
            shutil.rmtree(store)
            agent = start_agent(
                tmp_path, collector.addr, "--synthetic", f"10000:{total}", "--batch-max-age", "200ms"
            )
            with diagnose(agent):
                # every point produced and offered to the broken collector, resent after each refusal
                wait_for(
                    lambda: agent.scrape().get("ferry_agent_synthetic_points_total", 0) >= total,
                    what="the synthetic source to finish",
                )
                wait_for(
                    lambda: _refused_or_acked(agent.scrape()),
                    what="the agent to be refused and to retry, or to be acked",
                )
                acked_while_broken = agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)
                code, message = _push_code(collector.addr)
                status = _health(collector.addr)
                metrics = collector.scrape()
                store_errors = metrics.get("ferry_collector_store_errors_total", 0.0)
                store_ok = metrics.get("ferry_collector_store_ok")
                # SIGKILL: on SIGTERM this collector does not exit (its committer keeps retrying
                # to read the dedup ledger of the removed store), so stop() would wait its 20 s
                # before killing it anyway; nothing here asserts how it stops
                collector.stop(signal.SIGKILL)
                # the same store path, now a fresh store: the agent resends what it kept
                collector = start_collector(tmp_path, port=port, store=store)
                wait_for(
                    lambda: agent.scrape()["ferry_agent_spool_frames"] == 0,
                    timeout=90,
                    what="the spool to drain",
                )
                stored, value_sum = synthetic_stored(collector.addr)
                acked = agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)
                print(
                    f"\nstore removed: frames acked while broken {acked_while_broken:.0f}, Push {code.name} "
                    f"({message[:120]}), health {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}, "
                    f"store_errors_total {store_errors:.0f}; after restart stored {stored:.0f} of {total}"
                )
                assert acked_while_broken == 0
                assert code == grpc.StatusCode.UNAVAILABLE
                assert "removed" in message, message
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
                assert store_errors > 0 and store_ok == 0
                # 0 acked-but-lost points: every point the agent had is stored, once
                assert (stored, value_sum) == (total, total)
                assert acked > 0
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()


def _samples_dir(store: Path) -> Path:
    """The samples table's parts directory, from its definition (the collector holds the store)."""
    sql = (store / "metadata" / "ferry" / "samples.sql").read_text()
    uuid = re.search(r"UUID '([0-9a-f-]{36})'", sql).group(1)
    return store / "store" / uuid[:3] / uuid


def _can_make_immutable(path: Path) -> bool:
    """Whether this process may `chattr +i` (root with CAP_LINUX_IMMUTABLE, on ext4 and the like)."""
    path.mkdir()
    try:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False
    subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    return done


def test_a_store_that_stops_taking_writes_is_refused_and_recovers(tmp_path):
    if not _can_make_immutable(tmp_path / "probe"):
        pytest.skip("chattr +i is not permitted here: no way to make the store refuse writes")
    total = 30_000
    collector = start_collector(tmp_path)
    samples = _samples_dir(tmp_path / "store")
    agent = None
    try:
        with diagnose(collector):
            subprocess.run(["chattr", "+i", str(samples)], check=True)  # no part can be made there
            agent = start_agent(
                tmp_path, collector.addr, "--synthetic", f"10000:{total}", "--batch-max-age", "200ms"
            )
            with diagnose(agent):
                wait_for(lambda: _health(collector.addr) == 2, what="health NOT_SERVING")
                wait_for(
                    lambda: agent.scrape().get("ferry_agent_synthetic_points_total", 0) >= total,
                    what="the synthetic source to finish",
                )
                refused = collector.scrape()
                acked_while_failing = agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0.0)
                subprocess.run(["chattr", "-i", str(samples)], check=True)
                wait_for(lambda: _health(collector.addr) == 1, timeout=60, what="health SERVING again")
                wait_for(
                    lambda: agent.scrape()["ferry_agent_spool_frames"] == 0,
                    timeout=90,
                    what="the spool to drain",
                )
                stored, value_sum = synthetic_stored(collector.addr)
                print(
                    f"\nsamples directory immutable: frames acked meanwhile {acked_while_failing:.0f}, "
                    f"store_errors_total {refused.get('ferry_collector_store_errors_total', 0):.0f}; "
                    f"writable again: health SERVING, stored {stored:.0f} of {total}"
                )
                assert acked_while_failing == 0
                assert refused.get("ferry_collector_store_errors_total", 0) > 0
                assert (stored, value_sum) == (total, total)
    finally:
        subprocess.run(["chattr", "-i", str(samples)], check=False)
        if agent is not None:
            agent.stop()
        collector.stop()
