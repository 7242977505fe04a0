"""The agent connects late, survives a collector SIGKILL + restart, and nothing is lost or doubled."""

from __future__ import annotations

import signal
import time

from ferry import transport
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.conftest import free_port
from tests.integration.procs import start_agent, start_collector, wait_for


def _counts(addr: str, start_ms: int, end_ms: int) -> dict[str, list[tuple[int, float]]]:
    with transport.channel(addr) as ch:
        resp = query_pb2_grpc.QueryStub(ch).QueryRange(
            query_pb2.QueryRangeRequest(
                metric="system.memory.usage", start_ms=start_ms, end_ms=end_ms, step_ms=1000, agg="count"
            ),
            timeout=10,
        )
    return {s.labels["state"]: list(zip(s.time_ms, s.value, strict=True)) for s in resp.series}


def test_agent_rides_out_collector_crash(tmp_path):
    port = free_port()
    agent = start_agent(tmp_path, f"127.0.0.1:{port}", "--interval", "1s", "--batch-max-age", "1s")
    try:
        # the agent collects with no collector: frames wait in the spool
        wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] >= 2, what="frames spooled, no collector")
        first = start_collector(tmp_path, port=port)
        wait_for(lambda: agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0) >= 3, what="acks")
        first.stop(signal.SIGKILL)
        queued = agent.scrape()["ferry_agent_frames_queued_total"]
        wait_for(  # more cycles while the collector is down
            lambda: agent.scrape()["ferry_agent_frames_queued_total"] >= queued + 2,
            what="frames spooled while the collector is down",
        )
        second = start_collector(tmp_path, port=port, store=tmp_path / "store")
        try:
            acked = agent.scrape()['ferry_agent_acks_total{status="OK"}']
            wait_for(lambda: agent.scrape()['ferry_agent_acks_total{status="OK"}'] >= acked + 3, what="acks")
            agent.stop()  # graceful: delivers what it still holds
            now = int(time.time() * 1000)
            counts = _counts(second.addr, now - 120_000, now + 1000)
        finally:
            second.stop()
    finally:
        agent.stop()
    assert set(counts) == {"used", "free", "buffered", "cached", "slab_reclaimable", "slab_unreclaimable"}
    for state, points in counts.items():
        times = [t for t, _ in points]
        assert all(c == 1.0 for _, c in points), f"{state}: a second stored more than once: {points}"
        # one sample every second from the first cycle to the last: nothing lost while the collector was away
        assert times == list(range(times[0], times[-1] + 1000, 1000)), f"{state}: gap in {times}"
        assert len(times) >= 8
