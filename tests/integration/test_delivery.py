"""The delivery promise with real processes: exactly once through crashes, restarts and outages.

Each scenario prints its figures (run with -s to see them).
"""

from __future__ import annotations

import inspect
import math
import shutil
import signal
import time

import psutil

from ferry.agent.sender import Sender
from tests.conftest import free_port
from tests.integration.procs import diagnose, start_agent, start_collector, synthetic_stored, wait_for


def acks(agent, status: str) -> float:
    return agent.scrape().get(f'ferry_agent_acks_total{{status="{status}"}}', 0.0)


def settled(addr: str, total: int, timeout: float = 90.0) -> float:
    """Wait until the store holds `total` synthetic points; return the seconds it took."""
    started = time.monotonic()
    wait_for(
        lambda: synthetic_stored(addr)[0] >= total,
        timeout=timeout,
        interval=0.5,
        what=f"{total} synthetic points stored",
    )
    return time.monotonic() - started


def drained(agent) -> None:
    """Wait until the agent holds no unacked frame: nothing is in flight that could still land
    (a point stored twice would show in the count read after this)."""
    wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, timeout=60, what="spool empty")


def test_collector_sigkilled_three_times_mid_stream(tmp_path):
    total = 200_000
    port = free_port()
    collector = start_collector(tmp_path, port=port)
    # 16 s of points: three kills and restarts (each restart 1.5-3 s, more on a loaded machine)
    # come before the last frame is acked (at 8 s a loaded run's third kill found nothing left to
    # ack and timed out waiting for acks)
    agent = start_agent(tmp_path, collector.addr, "--synthetic", f"12500:{total}", "--batch-max-age", "200ms")
    try:
        for _ in range(3):
            # mid-stream: this collector has acked two frames (of the 80 the agent cuts in 16 s)
            acked = acks(agent, "OK")
            wait_for(lambda a=acked: acks(agent, "OK") >= a + 2, what="acks before the kill")
            reconnects = agent.scrape()["ferry_agent_reconnects_total"]
            collector.stop(signal.SIGKILL)
            wait_for(
                lambda r=reconnects: agent.scrape()["ferry_agent_reconnects_total"] > r,
                what="the agent to see the collector gone",
            )
            collector = start_collector(tmp_path, port=port, store=tmp_path / "store")
        took = settled(collector.addr, total)
        drained(agent)
        count, value_sum = synthetic_stored(collector.addr)
        print(
            f"\n3 collector SIGKILLs: stored {count:.0f} points (sum {value_sum:.0f}), "
            f"settled {took:.1f}s after the last restart, agent reconnects "
            f"{agent.scrape()['ferry_agent_reconnects_total']:.0f}"
        )
        assert (count, value_sum) == (total, total)
    finally:
        agent.stop()
        collector.stop()


def test_agent_sigkilled_mid_stream_and_restarted_on_its_spool(tmp_path):
    total = 150_000
    collector = start_collector(tmp_path)
    args = ("--synthetic", f"30000:{total}", "--batch-max-age", "200ms")
    agent = start_agent(tmp_path, collector.addr, *args)
    try:
        wait_for(
            lambda: agent.scrape().get("ferry_agent_synthetic_points_total", 0) >= 50_000,
            what="progress",
        )
        agent.stop(signal.SIGKILL)
        before = synthetic_stored(collector.addr)[0]
        agent = start_agent(tmp_path, collector.addr, *args)
        took = settled(collector.addr, total)
        second_run = agent.scrape()["ferry_agent_synthetic_points_total"]
        drained(agent)
        count, value_sum = synthetic_stored(collector.addr)
        print(
            f"\nagent SIGKILL: {before:.0f} stored at the kill, the restarted agent produced the other "
            f"{second_run:.0f}; {count:.0f} stored in the end, {took:.1f}s after the restart"
        )
        assert (count, value_sum) == (total, total)
        assert second_run < total  # it resumed from the spool's progress, not from 0
    finally:
        agent.stop()
        collector.stop()


def capped_after() -> int:
    """Failed connects after which the sender's backoff is at its cap: its delay before attempt
    n is drawn from [0, min(cap, base * 2**n)] (ferry.agent.sender.Sender's defaults)."""
    defaults = inspect.signature(Sender.__init__).parameters
    base, cap = defaults["backoff_base_s"].default, defaults["backoff_cap_s"].default
    return math.ceil(math.log2(cap / base)) + 1


def test_collector_down_until_the_backoff_is_capped_then_the_backlog_drains(tmp_path):
    total = 300_000
    port = free_port()
    agent = start_agent(tmp_path, f"127.0.0.1:{port}", "--synthetic", f"0:{total}")
    collector = None
    try:
        wait_for(lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total, what="all spooled")
        backlog = agent.scrape()["ferry_agent_spool_frames"]
        # a long outage as the agent sees one: every reconnect since it started has failed, and
        # its delays have grown to the cap (one more delay drawn from it); waiting longer would
        # only repeat capped attempts. About 15 s with the defaults (0.2 s doubling, 10 s cap).
        down = time.monotonic()
        wait_for(
            lambda: agent.scrape()["ferry_agent_reconnects_total"] >= capped_after() + 1,
            timeout=90,
            interval=0.5,
            what="the agent's reconnect backoff at its cap",
        )
        down_s = time.monotonic() - down
        collector = start_collector(tmp_path, port=port)
        took = settled(collector.addr, total)
        wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, what="spool empty")
        count, value_sum = synthetic_stored(collector.addr)
        print(
            f"\ncollector down {down_s:.0f}s after all was spooled ({capped_after() + 1} failed "
            f"reconnects): backlog {backlog:.0f} frames, drained in {took:.1f}s, stored {count:.0f}"
        )
        assert (count, value_sum) == (total, total)
    finally:
        agent.stop()
        if collector is not None:
            collector.stop()


def test_tiny_spool_drops_the_oldest_and_counts_them(tmp_path):
    total = 2_000_000
    port = free_port()
    agent = start_agent(
        tmp_path, f"127.0.0.1:{port}", "--synthetic", f"0:{total}", "--spool-max-bytes", "65536"
    )
    collector = None
    try:
        with diagnose(agent):
            wait_for(
                lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total,
                timeout=90,
                what="all produced",
            )
        dropped = agent.scrape()["ferry_agent_spool_dropped_points_total"]
        assert dropped > 0
        collector = start_collector(tmp_path, port=port)
        with diagnose(agent, collector):
            wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, timeout=90, what="spool empty")
        count, value_sum = synthetic_stored(collector.addr)
        print(f"\ntiny spool: stored {count:.0f} + dropped {dropped:.0f} = {count + dropped:.0f} of {total}")
        assert count + dropped == total
        assert value_sum == count
    finally:
        agent.stop()
        if collector is not None:
            collector.stop()


def test_frames_replayed_after_their_ack_are_stored_once(tmp_path):
    total = 60_000
    port = free_port()
    spool = tmp_path / "spool-it-agent"
    args = ("--synthetic", f"0:{total}", "--batch-max-points", "5000")
    agent = start_agent(tmp_path, f"127.0.0.1:{port}", *args)
    wait_for(lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total, what="all spooled")
    agent.stop()
    shutil.copytree(spool, tmp_path / "spool-copy")
    collector = start_collector(tmp_path, port=port)
    try:
        agent = start_agent(tmp_path, collector.addr, *args)
        settled(collector.addr, total)
        wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, what="all acked")
        agent.stop()
        for restart_collector in (False, True):
            if restart_collector:  # the high-water marks are gone: ClickHouse's insert tokens dedup
                collector.stop()
                collector = start_collector(tmp_path, port=port, store=tmp_path / "store")
            shutil.rmtree(spool)
            shutil.copytree(tmp_path / "spool-copy", spool)
            agent = start_agent(tmp_path, collector.addr, *args)
            wait_for(lambda a=agent: a.scrape()["ferry_agent_spool_frames"] == 0, what="replay acked")
            replay = {s: acks(agent, s) for s in ("OK", "DUPLICATE")}
            agent.stop()
            count, value_sum = synthetic_stored(collector.addr)
            print(f"\nreplay (collector restarted: {restart_collector}): acks {replay}, stored {count:.0f}")
            assert (count, value_sum) == (total, total)
            if not restart_collector:
                assert replay == {"OK": 0.0, "DUPLICATE": total / 5000}
    finally:
        collector.stop()


def test_flood_beyond_the_write_rate_is_refused_and_memory_stays_bounded(tmp_path):
    """8 agents push as fast as they can into one writer thread. What the collector holds for
    them (pending bytes) never passes its bound; the rest is refused with RESOURCE_EXHAUSTED and
    retried; RSS stays within the engine's insert working set plus the bound; every point is
    stored exactly once."""
    bound = 16 * 1024 * 1024
    # RSS growth over the collector's own at start, whatever the bound: 184-191 MB with Native
    # blocks (0239fe7), 229-275 MB with Arrow inserts, by load (the peak itself fell, 639 -> 553-570
    # MB, as the process starts smaller); the flood's 12 M points would be ~190 MB raw if held
    engine_allowance = 320 * 1024 * 1024
    collector = start_collector(tmp_path, "--max-pending-bytes", str(bound), "--writers", "1")
    proc = psutil.Process(collector.popen.pid)
    baseline = proc.memory_info().rss
    total, agents_n = 1_500_000, 8
    # 100k-point frames cost ~10 MB each against the budget: one fits, two do not
    agents = [
        start_agent(
            tmp_path,
            collector.addr,
            "--synthetic",
            f"0:{total}",
            "--batch-max-points",
            "100000",
            agent_id=f"flood-{i}",
        )
        for i in range(agents_n)
    ]
    peak = baseline
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            peak = max(peak, proc.memory_info().rss)
            if synthetic_stored(collector.addr)[0] >= agents_n * total:
                break
            time.sleep(0.1)
        refused = sum(a.scrape()["ferry_agent_backpressure_total"] for a in agents)
        pending_max = collector.scrape()["ferry_collector_pending_bytes_max"]
        count, value_sum = synthetic_stored(collector.addr)
        print(
            f"\nflood: {agents_n} agents x {total}; pending max {pending_max / 2**20:.1f} MB of a "
            f"{bound / 2**20:.0f} MB bound; {refused:.0f} RESOURCE_EXHAUSTED; "
            f"RSS {baseline / 2**20:.0f} MB at start, peak {peak / 2**20:.0f} MB; stored {count:.0f}"
        )
        assert (count, value_sum) == (agents_n * total, agents_n * total)
        assert refused > 0
        assert 0 < pending_max <= bound
        assert peak - baseline < engine_allowance + bound
    finally:
        for a in agents:
            a.stop()
        collector.stop()


def test_collector_sigterm_drains_and_nothing_is_lost(tmp_path):
    total = 120_000
    port = free_port()
    collector = start_collector(tmp_path, port=port)
    agent = start_agent(tmp_path, collector.addr, "--synthetic", f"30000:{total}", "--batch-max-age", "200ms")
    try:
        wait_for(lambda: acks(agent, "OK") >= 3, what="acks")
        started = time.monotonic()
        assert collector.stop(signal.SIGTERM) == 0
        stop_s = time.monotonic() - started
        assert "stopping: answering the" in collector.output() and '"stopped"' in collector.output()
        collector = start_collector(tmp_path, port=port, store=tmp_path / "store")
        took = settled(collector.addr, total)
        drained(agent)
        count, value_sum = synthetic_stored(collector.addr)
        print(
            f"\ncollector SIGTERM: stopped cleanly in {stop_s:.1f}s; stored {count:.0f} "
            f"{took:.1f}s after the restart"
        )
        assert (count, value_sum) == (total, total)
    finally:
        agent.stop()
        collector.stop()


def test_failover_to_the_next_collector_address(tmp_path):
    total = 50_000
    dead = f"127.0.0.1:{free_port()}"
    collector = start_collector(tmp_path)
    agent = start_agent(tmp_path, f"{dead},{collector.addr}", "--synthetic", f"0:{total}")
    try:
        took = settled(collector.addr, total, timeout=60)
        assert synthetic_stored(collector.addr) == (total, total)
        assert "stream to " + dead + " failed" in agent.output()
        print(f"\nfailover: {dead} refused, all {total} stored via {collector.addr} within {took:.1f}s")
    finally:
        agent.stop()
        collector.stop()
