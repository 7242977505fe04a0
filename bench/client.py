"""ferry.client: what a recording call costs the app, and how many records one client pushes
through a real agent into a real collector.

    python -m bench.client [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.procs import collector_process
from ferry import transport
from ferry.client import Telemetry
from ferry.collector.devrun import agent_command, free_port, stop
from ferry.collector.query.client import total
from ferry.v1 import query_pb2, query_pb2_grpc

CALLS = {
    "counter": lambda t, i: t.counter("app.requests"),
    "counter_labels": lambda t, i: t.counter("app.requests", labels={"route": "/pay", "code": "200"}),
    "gauge": lambda t, i: t.gauge("app.queue", i, labels={"queue": "a"}),
    "histogram": lambda t, i: t.histogram("app.latency", 0.042, labels={"route": "/pay"}),
    "event": lambda t, i: t.event("purchase", "shop", "pay", value=9.5, user_id="u1"),
    "log": lambda t, i: t.log("info", "order done", order="o-17"),
}


def overhead_ns(calls: int = 100_000, runs: int = 7) -> dict[str, float]:
    """Median ns per call, in the app's thread, for each kind of call. The client points at a
    closed port and never flushes during the run: the cost measured is the call alone; delivery
    (building requests, gRPC) is in `throughput`."""
    out = {}
    for kind, call in CALLS.items():
        samples = []
        for _ in range(runs):
            t = Telemetry("127.0.0.1:1", flush_interval=3600, max_queue=calls + 1, batch_size=calls + 1)
            started = time.perf_counter_ns()
            for i in range(calls):
                call(t, i)
            samples.append((time.perf_counter_ns() - started) / calls)
            assert t.stats().dropped == 0, t.stats()
            t._buffer.drain()  # nothing to deliver: do not wait on the closed port at close
            t.close(timeout=0.1)
        out[kind] = statistics.median(samples)
    return out


def throughput(records: int = 200_000, kind: str = "gauge") -> dict:
    """One client sends `records` gauges (or logs) as fast as it can through a real agent's unix
    socket into a real collector. Rates: records the agent accepted per second (first call to
    flush() returning), and records counted in the store per second (first call to the last
    one stored)."""
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp, collector_process(Path(tmp)) as addr:
        sock = f"{tmp}/agent.sock"
        agent = subprocess.Popen(
            agent_command(
                addr,
                f"127.0.0.1:{free_port()}",
                "--collectors",
                "",
                "--local-socket",
                sock,
                "--spool",
                f"{tmp}/spool",
                "--batch-max-age",
                "1s",
                "--log-level",
                "warning",
            ),
            start_new_session=True,
        )
        try:
            _wait_for_socket(Path(sock))
            t = Telemetry(f"unix:{sock}", max_queue=records + 1)
            started = time.perf_counter()
            for i in range(records):
                if kind == "gauge":
                    t.gauge("bench.client", i, labels={"series": str(i % 10)})
                else:
                    t.log("info", f"request {i} done", series=i % 10)
            flushed = t.flush(timeout=300)
            accepted_s = time.perf_counter() - started
            stats = t.stats()
            t.close()
            stored_n, stored_s = _stored(addr, kind, records, started)
        finally:
            stop(agent)
    return {
        "kind": kind,
        "records": records,
        "flushed": flushed,
        "dropped": stats.dropped,
        "agent_accepted_per_s": records / accepted_s,
        "stored": stored_n,
        "stored_per_s": stored_n / stored_s,
    }


def _wait_for_socket(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"agent socket {path} did not appear")
        time.sleep(0.05)


def _stored(addr: str, kind: str, want: int, started: float) -> tuple[int, float]:
    deadline = time.monotonic() + 300
    n = 0
    while time.monotonic() < deadline:
        n = int(total(addr, "bench.client", "count")) if kind == "gauge" else _count_logs(addr)
        if n >= want:
            break
        time.sleep(0.1)
    return n, time.perf_counter() - started


def _count_logs(addr: str) -> int:
    with transport.channel(addr) as channel:
        req = query_pb2.SearchLogsRequest(count_only=True, contains="done")
        return query_pb2_grpc.QueryStub(channel).SearchLogs(req, timeout=30).total


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    quick = p.parse_args().quick
    print(overhead_ns(20_000 if quick else 100_000, 3 if quick else 7))
    print(throughput(50_000 if quick else 200_000))
    print(throughput(50_000 if quick else 200_000, kind="log"))


if __name__ == "__main__":
    main()
