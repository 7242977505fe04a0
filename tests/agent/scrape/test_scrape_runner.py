"""The scraper's HTTP side and its schedule against real servers on loopback: a prometheus_client
exporter, plain HTTP servers that fail in chosen ways, and a closed port."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from ferry.agent.intake import Intake
from ferry.agent.scrape.config import ScrapeTarget
from ferry.agent.scrape.fetch import ScrapeError, fetch
from ferry.agent.scrape.mapping import Mapped, TargetState
from ferry.agent.scrape.parse import is_openmetrics
from ferry.agent.scrape.runner import ScrapeRunner, intakes, stop_task
from tests.conftest import free_port


@contextlib.contextmanager
def exporter(registry: CollectorRegistry) -> Iterator[str]:
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def http_server(status: int = 200, body: bytes = b"", content_type: str = "text/plain") -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_asks_for_openmetrics_and_gets_it():
    registry = CollectorRegistry()
    Counter("hits", "Hits", registry=registry).inc(3)
    with exporter(registry) as url:
        body, content_type = fetch(url, timeout=5)
    assert is_openmetrics(content_type)
    assert b"hits_total 3.0" in body and body.endswith(b"# EOF\n")


def test_fetch_failures_say_why():
    with (
        http_server(500, b"boom") as url,
        pytest.raises(ScrapeError, match=r"^HTTP 500 Internal Server Error$"),
    ):
        fetch(url, timeout=5)
    with http_server(body=b"x 1\n" * 1000) as url:
        with pytest.raises(ScrapeError, match=r"^body over 3999 bytes \(the limit\); not parsed$"):
            fetch(url, timeout=5, max_bytes=3999)
        assert len(fetch(url, timeout=5, max_bytes=4000)[0]) == 4000
    with pytest.raises(ScrapeError, match=r"^connection refused$"):
        fetch(f"http://127.0.0.1:{free_port()}/metrics", timeout=5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        port = silent.getsockname()[1]
        with pytest.raises(ScrapeError, match=r"^timed out after 0\.2s$"):
            fetch(f"http://127.0.0.1:{port}/metrics", timeout=0.2)


def test_intakes_are_cut_in_chunks():
    health = [("up", 1, 1.0)]
    assert [len(i) for i in intakes(health, None)] == [1]
    mapped = Mapped(points=[("p", 1, 1.0)] * 5, histograms=[("h", 1, 0.0, (1,))] * 3)
    assert [(len(i.points), len(i.histograms)) for i in intakes(health, mapped, chunk=2)] == [
        (2, 0),
        (2, 0),
        (2, 0),
        (0, 2),
        (0, 1),
    ]


async def _run_until(runner: ScrapeRunner, got: list[Intake], done, timeout: float = 30.0) -> None:
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(timeout):
            while not done(got):
                await asyncio.sleep(0.05)
    finally:
        await stop_task(task)


def by_name(got: list[Intake], name: str) -> list:
    return [p for i in got for p in i.points if p[0].name == name]


def test_runner_scrapes_each_target_and_reports_health():
    registry = CollectorRegistry()
    Counter("jobs", "Jobs", registry=registry).inc(7)
    latency = Histogram("wait_seconds", "Wait", buckets=(1.0,), registry=registry)
    latency.observe(0.5)
    latency.observe(2.0)
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    states: dict = {("gone", "http://x/", ()): TargetState()}
    got: list[Intake] = []
    with exporter(registry) as url:
        targets = [ScrapeTarget("app", url, 0.2, 0.2), ScrapeTarget("down", closed, 0.2, 0.2)]
        runner = ScrapeRunner(targets, got.append, states)
        assert set(states) == set()  # a target no longer configured loses its state

        def scraped_thrice(got):
            ups = by_name(got, "scrape.up")
            return all(sum(dict(s.labels)["job"] == job for s, *_ in ups) >= 3 for job in ("app", "down"))

        asyncio.run(_run_until(runner, got, scraped_thrice))
    up = {(dict(s.labels)["job"], dict(s.labels)["instance"], v) for s, _t, v in by_name(got, "scrape.up")}
    assert up == {("app", url.split("/")[2], 1.0), ("down", closed.split("/")[2], 0.0)}
    assert len(by_name(got, "scrape.duration")) == len(by_name(got, "scrape.up"))
    assert {v for _s, _t, v in by_name(got, "jobs_total")} == {7.0}
    hist = [h for i in got for h in i.histograms]
    assert len(hist) >= 3 and hist[0][0].bounds == (1.0,)
    assert [sum(c) for c in zip(*(counts for *_, counts in hist), strict=True)] == [1, 1]
    assert sum(total for _s, _t, total, _c in hist) == 2.5
    assert set(states) == {("app", url, ())}  # kept for the next runner (a reload)
