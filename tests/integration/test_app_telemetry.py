"""A real app (tests/apps/sample_app.py, using ferry.client) through a real agent to a real
collector: exact counter sums, histogram quantiles within their bucket, exact event and log
counts; and an agent killed under a running app."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ferry import transport
from ferry.collector.query.client import query_range
from ferry.v1 import query_pb2, query_pb2_grpc
from tests.integration.procs import collector_and_agent, start_agent, wait_for

APP = Path(__file__).parent.parent / "apps" / "sample_app.py"
BOUNDS = [0.1, 0.5, 1.0, 5.0]
OBSERVATIONS = [i / 200 for i in range(1000)]


@pytest.fixture
def socket_path():
    d = Path(tempfile.mkdtemp(prefix="ferry-app-"))  # unix socket paths must stay under 108 bytes
    yield d / "agent.sock"
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def agent_flags(socket_path: Path) -> tuple[str, ...]:
    return ("--collectors", "", "--batch-max-age", "1s", "--local-socket", str(socket_path))


def app(socket_path: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(APP), f"unix:{socket_path}", mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def next_line(proc: subprocess.Popen, timeout: float) -> str:
    """The app's next line on stdout, or "" if none comes within `timeout` seconds."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def search(addr: str, kind: str, **request) -> int:
    with transport.channel(addr) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        if kind == "events":
            resp = stub.SearchEvents(query_pb2.SearchEventsRequest(count_only=True, **request), timeout=10)
        else:
            resp = stub.SearchLogs(query_pb2.SearchLogsRequest(count_only=True, **request), timeout=10)
    return resp.total


def one_value(addr: str, metric: str, agg: str, by: tuple[str, ...] = ("__all__",)) -> dict[str, float]:
    resp = query_range(addr, metric, agg=agg, window_ms=600_000, by=list(by), timeout=10)
    return {",".join(s.labels.get(b, "") for b in by): s.value[-1] for s in resp.series if s.value}


def interpolated(q: float) -> float:
    """histogram_quantile over the app's buckets, by hand."""
    counts = [
        sum(1 for v in OBSERVATIONS if lo < v <= hi)
        for lo, hi in zip([-1.0, *BOUNDS[:-1]], BOUNDS, strict=True)
    ]
    rank, below, lower = q * len(OBSERVATIONS), 0, 0.0
    for upper, n in zip(BOUNDS, counts, strict=True):
        if below + n >= rank:
            return lower + (upper - lower) * (rank - below) / n
        below, lower = below + n, upper
    raise AssertionError("rank beyond the finite buckets")


def test_sample_app_totals_are_stored_exactly(tmp_path, socket_path):
    with collector_and_agent(tmp_path, *agent_flags(socket_path)) as (collector, _agent):
        proc = app(socket_path, "burst")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and not err, err
        stats = json.loads(out.splitlines()[-1])
        assert stats["flushed"] and stats["dropped"] == 0, stats
        addr = collector.addr

        wait_for(
            lambda: one_value(addr, "app.requests", "sum").get("") == 100_000, 60, what="100k increments"
        )
        routes = one_value(addr, "app.requests", "sum", ("route",))
        assert routes == {f"/r{i}": 10_000.0 for i in range(10)}

        wait_for(
            lambda: one_value(addr, "app.latency", "count").get("") == 1000, 60, what="1000 observations"
        )
        assert one_value(addr, "app.latency", "sum")[""] == pytest.approx(sum(OBSERVATIONS), rel=1e-12)
        for agg, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            got = one_value(addr, "app.latency", agg)[""]
            true = sorted(OBSERVATIONS)[int(q * 1000) - 1]
            assert 1.0 < got <= 5.0 and 1.0 < true <= 5.0  # the bucket holding the true quantile
            assert got == pytest.approx(interpolated(q), rel=1e-9), agg

        wait_for(lambda: search(addr, "events", equals={"type": "purchase"}) == 1000, 60, what="1000 events")
        assert search(addr, "events", equals={"user_id": "u0", "service": "sample"}) == len(range(0, 1000, 7))
        assert search(addr, "events", equals={"properties.i": "999"}) == 1
        wait_for(lambda: search(addr, "logs", equals={"service": "sample"}) == 1000, 60, what="1000 logs")
        assert search(addr, "logs", equals={"level": "error"}) == 500
        assert search(addr, "logs", contains="ORDER 17 DONE") == 1


def test_killing_the_agent_leaves_the_app_running_and_delivery_resumes(tmp_path, socket_path):
    flags = agent_flags(socket_path)
    with collector_and_agent(tmp_path, *flags) as (collector, agent):
        proc = app(socket_path, "steady")
        try:
            assert proc.stdout.readline().strip() == "ready"
            wait_for(
                lambda: search(collector.addr, "logs", equals={"service": "sample"}) > 100, 60, what="logs"
            )
            agent.stop(signal.SIGKILL)
            # the app keeps logging ~1000 records/s into a 500-record buffer until it overflows
            told = next_line(proc, timeout=30)
            assert told == "undelivered", f"the app said {told!r}, exit status {proc.poll()}"
            assert proc.poll() is None, proc.stderr.read()
            restarted = start_agent(tmp_path, collector.addr, *flags)
            try:
                before = search(collector.addr, "logs", equals={"service": "sample"})
                wait_for(
                    lambda: search(collector.addr, "logs", equals={"service": "sample"}) > before + 500,
                    60,
                    what="logs after the restart",
                )
                proc.send_signal(signal.SIGTERM)
                out, err = proc.communicate(timeout=60)
            finally:
                restarted.stop()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0 and "Traceback" not in err, err
        stats = json.loads(out.splitlines()[-1])
        assert stats["dropped"] > 0 and stats["dropped_by_reason"].get("undelivered", 0) > 0, stats
        assert stats["flushed"], stats
        last = stats["sent_calls"] - 1  # the app's last log went through the restarted agent
        wait_for(lambda: search(collector.addr, "logs", equals={"attributes.seq": str(last)}) == 1, 30)
