"""An app cannot wedge the agent or take the host metrics down with it, and a full spool disk
does not kill it (issue 15, the agent's side): real agent and collector processes on loopback.

Each scenario prints its figures (run with -s to see them).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time

import grpc
import psutil
import pytest

from ferry import transport
from ferry.agent.batcher import Batcher
from ferry.agent.intake import Intake
from ferry.agent.spool import Spool
from ferry.collector.query.client import total
from ferry.limits import Limits
from ferry.series import DELTA, GAUGE, SeriesDef
from ferry.v1 import local_pb2, local_pb2_grpc, payload_pb2
from tests.conftest import free_port
from tests.integration.procs import (
    collector_and_agent,
    diagnose,
    start_agent,
    start_collector,
    synthetic_stored,
    wait_for,
)
from tests.tinyfs import fill, free_bytes, tiny_fs

FAST = ("--interval", "1s", "--batch-max-age", "1s")


def wide(i: int) -> local_pb2.MetricRecord:
    """Inside every documented limit: 32 random label values of 256 bytes."""
    labels = {f"k{j:02d}": os.urandom(128).hex() for j in range(32)}
    return local_pb2.MetricRecord(name="app.wide", kind=GAUGE, value=float(i), labels=labels)


def dropped(agent, reason: str) -> float:
    return agent.scrape().get(f'ferry_agent_records_dropped_total{{reason="{reason}"}}', 0.0)


def all_acked(agent) -> bool:
    s = agent.scrape()
    return (
        s["ferry_agent_spool_frames"] == 0
        and s.get('ferry_agent_acks_total{status="OK"}', 0) == s["ferry_agent_frames_queued_total"]
    )


def test_wide_and_poison_app_records_leave_every_host_point_stored(tmp_path):
    tcp = f"127.0.0.1:{free_port()}"
    with (
        collector_and_agent(tmp_path, *FAST, "--local-listen", tcp) as (collector, agent),
        diagnose(agent, collector),
        transport.channel(tcp) as channel,
    ):
        stub = local_pb2_grpc.LocalStub(channel)
        wait_for(lambda: total(collector.addr, "system.cpu.time") > 0, what="host points stored")
        # the wedge: 2,640 records in 6 requests, one 22 MB frame before frames were cut by size
        for r in range(6):
            stub.Send(local_pb2.Records(metrics=[wide(r * 440 + i) for i in range(440)]), timeout=10)
        # poison the collector would refuse the whole frame for, host points included
        huge = local_pb2.MetricRecord(name="app.huge", kind=DELTA, value=1.7e308)
        assert stub.Send(local_pb2.Records(metrics=[huge, huge]), timeout=10).accepted == 2
        now_ms = int(time.time() * 1000)
        old = local_pb2.MetricRecord(
            name="app.old", kind=GAUGE, value=1, time_unix_ms=now_ms - Limits().max_past_ms + 60_000
        )
        long_unit = local_pb2.MetricRecord(name="app.unit", kind=GAUGE, value=1, unit="u" * 3_900_000)
        for bad in (old, long_unit):
            with pytest.raises(grpc.RpcError) as err:
                stub.Send(local_pb2.Records(metrics=[bad]), timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        wait_for(lambda: total(collector.addr, "app.wide") == 2640, timeout=60, what="2640 wide points")
        wait_for(lambda: total(collector.addr, "app.huge", "sum") == 1.7e308, what="the delta sum")
        host_before = total(collector.addr, "system.cpu.time")
        wait_for(lambda: total(collector.addr, "system.cpu.time") > host_before, what="host points after")
        wait_for(lambda: all_acked(agent), timeout=30, what="every frame acked OK")
        s = agent.scrape()
        assert s.get("ferry_agent_frames_rejected_total", 0) == 0
        assert s.get("ferry_agent_spool_dropped_frames_total", 0) == 0
        assert (dropped(agent, "overflow"), dropped(agent, "time"), dropped(agent, "series")) == (1, 1, 1)
        print(
            f"\nwide + poison: {s['ferry_agent_frames_queued_total']:.0f} frames queued, all acked OK; "
            "2640 wide points and the delta sum stored; dropped overflow 1, time 1, series 1"
        )


def test_an_oversized_frame_an_older_agent_spooled_is_dropped_not_resent_forever(tmp_path):
    old = Spool(tmp_path / "spool-it-old", "it-old")
    batcher = Batcher(payload_pb2.Resource(host="old", agent_id="it-old"), old.append)
    now = int(time.time() * 1000)
    batcher.take(Intake(points=[(SeriesDef("old.before", GAUGE), now, 1.0)]))
    batcher.cut()
    frame = old.append(os.urandom(22_000_000), 2640)  # one frame over the collector's receive limit
    batcher.take(Intake(points=[(SeriesDef("old.after", GAUGE), now, 1.0)]))
    batcher.cut()
    old.close()
    assert frame.ByteSize() > 17 * 1024 * 1024
    collector = start_collector(tmp_path)
    agent = None
    try:
        agent = start_agent(tmp_path, collector.addr, *FAST, agent_id="it-old")
        with diagnose(agent, collector):
            wait_for(lambda: agent.scrape().get("ferry_agent_frames_rejected_total", 0) == 1, what="dropped")
            assert agent.scrape()["ferry_agent_points_rejected_total"] == 2640
            # the frames before and after it in the spool are delivered, in order
            wait_for(lambda: total(collector.addr, "old.before") == 1, what="the frame before it")
            wait_for(lambda: total(collector.addr, "old.after") == 1, what="the frame after it")
            wait_for(lambda: total(collector.addr, "system.cpu.time") > 0, what="host points stored")
            wait_for(lambda: agent.scrape().get('ferry_agent_acks_total{status="OK"}', 0) >= 2, what="acks")
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()


def test_a_2_mib_spool_disk_keeps_the_agent_alive_drops_the_oldest_and_counts_them(tmp_path):
    total_points = 2_000_000
    port = free_port()
    with tiny_fs(tmp_path / "disk") as disk:
        # leave the spool 160 KiB of the 2 MiB, less its reserve (5%): room for about a third of
        # the 100 frames (~1.9 KB each) the synthetic source cuts
        fill(disk / "filler")
        os.truncate(disk / "filler", os.path.getsize(disk / "filler") - 160 * 1024)
        agent = start_agent(
            tmp_path,
            f"127.0.0.1:{port}",
            "--synthetic",
            f"200000:{total_points}",
            "--spool",
            str(disk / "spool"),
        )
        collector = None
        try:
            with diagnose(agent):
                wait_for(
                    lambda: agent.scrape()["ferry_agent_spool_dropped_frames_total"] > 0,
                    timeout=60,
                    what="the oldest dropped",
                )
                fill(disk / "filler2")  # and then not a byte left
                assert free_bytes(disk) == 0
                wait_for(
                    lambda: agent.scrape()["ferry_agent_synthetic_points_total"] == total_points,
                    timeout=90,
                    what="all produced",
                )
                assert agent.popen.poll() is None
                dropped_points = agent.scrape()["ferry_agent_spool_dropped_points_total"]
                assert 0 < dropped_points < total_points
            collector = start_collector(tmp_path, port=port)  # its store is not on the small disk
            with diagnose(agent, collector):
                wait_for(lambda: agent.scrape()["ferry_agent_spool_frames"] == 0, timeout=90, what="drained")
                count, value_sum = synthetic_stored(collector.addr)
                print(
                    f"\n2 MiB disk: stored {count:.0f} + dropped {dropped_points:.0f} = "
                    f"{count + dropped_points:.0f} of {total_points}"
                )
                assert count > 0 and count + dropped_points == total_points
                assert value_sum == count
                assert agent.popen.poll() is None
        finally:
            assert agent.stop() == 0
            if collector is not None:
                collector.stop()


def flood_request(r: random.Random) -> local_pb2.Records:
    """One Local request of a fuzzing app: every shape inside the limits, and some outside."""
    kind = r.randrange(6)
    if kind == 0:  # new wide series
        return local_pb2.Records(metrics=[wide(i) for i in range(400)])
    if kind == 1:  # deltas to ever new series
        labels = [{"a": os.urandom(100).hex()} for _ in range(2000)]
        return local_pb2.Records(
            metrics=[local_pb2.MetricRecord(name="f.d", kind=DELTA, value=1, labels=lb) for lb in labels]
        )
    if kind == 2:  # events with large properties
        props = {f"p{j}": os.urandom(500).hex() for j in range(30)}
        return local_pb2.Records(events=[payload_pb2.Event(type="t", properties=props) for _ in range(100)])
    if kind == 3:  # long log messages
        return local_pb2.Records(
            logs=[payload_pb2.LogRecord(level="info", message=os.urandom(30_000).hex()) for _ in range(60)]
        )
    if kind == 4:  # refused
        return local_pb2.Records(metrics=[local_pb2.MetricRecord(name="bad name", kind=GAUGE, value=1)])
    labels = [{"x": str(r.randrange(10**6))} for _ in range(5000)]
    return local_pb2.Records(
        metrics=[local_pb2.MetricRecord(name="f.g", kind=GAUGE, value=1, labels=lb) for lb in labels]
    )


def test_the_agent_memory_stays_bounded_under_a_local_flood(tmp_path):
    """Three apps flood the Local service for 20 s with every shape of request; the agent's RSS,
    read from /proc, stays bounded and falls back once they stop (measured here: from 47 MB to
    a peak of 203 MB and 155 MB 5 s after; before issue 15, a peak of 474 MB and 292 MB after,
    the stream wedged on a frame over the receive limit)."""
    tcp = f"127.0.0.1:{free_port()}"
    with (
        collector_and_agent(tmp_path, "--local-listen", tcp) as (collector, agent),
        diagnose(agent, collector),
    ):
        proc = psutil.Process(agent.popen.pid)
        start = proc.memory_info().rss
        stop = time.monotonic() + 20

        def flood(seed: int) -> None:
            r = random.Random(seed)
            with transport.channel(tcp) as channel:
                stub = local_pb2_grpc.LocalStub(channel)
                while time.monotonic() < stop:
                    with contextlib.suppress(grpc.RpcError):
                        stub.Send(flood_request(r), timeout=10)

        apps = [threading.Thread(target=flood, args=(i,)) for i in range(3)]
        for app in apps:
            app.start()
        peak = start
        while any(app.is_alive() for app in apps):
            peak = max(peak, proc.memory_info().rss)
            time.sleep(0.5)
        time.sleep(5)
        after = proc.memory_info().rss
        mb = 1024 * 1024
        print(f"\nLocal flood: RSS {start // mb} MB -> peak {peak // mb} MB, {after // mb} MB 5 s after")
        assert agent.scrape()["ferry_agent_local_records_total"] > 100_000  # the flood got in
        assert peak < 400 * mb
        assert after < 300 * mb
