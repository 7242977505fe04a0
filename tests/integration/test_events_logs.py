"""Events and logs end to end: frames pushed to a real collector process, searched over gRPC and with
the `ferry events` / `ferry logs` CLI; stored once across a collector restart; a bad record
rejects its frame and the next good frame is stored."""

from __future__ import annotations

import csv
import io
import json
import time

import grpc
import pytest

from ferry import transport
from ferry.v1 import ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from tests import framegen
from tests.integration.procs import diagnose, ferry_cli, start_collector


def _push(addr: str, frame: ingest_pb2.Frame) -> ingest_pb2.Ack:
    with transport.channel(addr) as ch:
        return ingest_pb2_grpc.IngestStub(ch).Push(frame, timeout=30)


def _stream(addr: str, frames: list[ingest_pb2.Frame]) -> list[ingest_pb2.Ack]:
    with transport.channel(addr) as ch:
        return list(ingest_pb2_grpc.IngestStub(ch).Stream(iter(frames), timeout=60))


def _total(addr: str, method: str, **fields) -> int:
    request = (query_pb2.SearchEventsRequest if method == "SearchEvents" else query_pb2.SearchLogsRequest)(
        count_only=True, **fields
    )
    with transport.channel(addr) as ch:
        return getattr(query_pb2_grpc.QueryStub(ch), method)(request, timeout=30).total


def _events(t0: int) -> list:
    """10 signups (service web) then 20 purchases (service shop, value i, every third from user u1)."""
    out = [framegen.event("signup", t0 + i * 1000, service="web", user_id=f"u{i}") for i in range(10)]
    out += [
        framegen.event(
            "purchase",
            t0 + (10 + i) * 1000,
            service="shop",
            action="buy",
            label=f"order-{i}",
            value=float(i),
            user_id="u1" if i % 3 == 0 else "u2",
            properties={"sku": f"sku-{i % 4}", "coupon": "SPRING" if i == 5 else ""},
        )
        for i in range(20)
    ]
    return out


def _logs(t0: int) -> list:
    levels = ("info", "warn", "error")
    return [
        framegen.log_record(
            f"job {i} {'timed out' if i % 4 == 0 else 'done'}",
            levels[i % 3],
            t0 + i * 1000,
            service="worker",
            attributes={"queue": f"q{i % 2}"},
            trace_id=f"{i:032x}",
        )
        for i in range(12)
    ]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A collector holding 30 events and 12 logs from 3 frames (one also carries metric points)."""
    collector = start_collector(tmp_path_factory.mktemp("records"))
    t0 = time.time_ns() - 120 * 10**9
    events, logs = _events(t0), _logs(t0)
    frames = [
        framegen.records_frame(1, events[:10], agent_id="rec", host="web-1"),
        framegen.records_frame(2, events[10:], logs[:6], batch=framegen.gauge_batch("rec.m"), agent_id="rec"),
        framegen.records_frame(3, [], logs[6:], agent_id="rec"),
    ]
    with diagnose(collector):
        for frame in frames:
            assert _push(collector.addr, frame).status == ingest_pb2.OK
    yield collector, t0
    collector.stop()


def test_search_counts_over_grpc(loaded):
    collector, t0 = loaded
    addr = collector.addr
    assert _total(addr, "SearchEvents") == 30
    assert _total(addr, "SearchEvents", equals={"type": "purchase"}) == 20
    assert _total(addr, "SearchEvents", equals={"type": "purchase", "user_id": "u1"}) == 7
    assert _total(addr, "SearchEvents", equals={"host": "web-1"}) == 10
    assert _total(addr, "SearchEvents", equals={"properties.sku": "sku-1"}) == 5
    assert _total(addr, "SearchEvents", contains="spring") == 1
    assert _total(addr, "SearchEvents", start_unix_ns=t0 + 5000, end_unix_ns=t0 + 15000) == 10
    assert _total(addr, "SearchLogs") == 12
    assert _total(addr, "SearchLogs", equals={"level": "error"}) == 4
    assert _total(addr, "SearchLogs", contains="TIMED OUT") == 3
    assert _total(addr, "SearchLogs", equals={"attributes.queue": "q1", "service": "worker"}) == 6
    scraped = collector.scrape()
    assert scraped["ferry_collector_events_total"] == 30
    assert scraped["ferry_collector_logs_total"] == 12
    assert scraped["ferry_collector_points_total"] == 15


def test_cli_json(loaded):
    collector, t0 = loaded
    run = ferry_cli(
        "events", "--addr", collector.addr, "--type", "purchase", "--format", "json", "--limit", "5"
    )
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["label"] for r in rows] == [f"order-{i}" for i in (19, 18, 17, 16, 15)]
    assert rows[0] == {
        "time_unix_ns": t0 + 29_000,
        "time": rows[0]["time"],
        "host": "host-test",
        "agent_id": "rec",
        "service": "shop",
        "type": "purchase",
        "category": "",
        "action": "buy",
        "label": "order-19",
        "value": 19.0,
        "user_id": "u2",
        "session_id": "",
        "properties": {"coupon": "", "sku": "sku-3"},
    }
    assert "showing 5 of 20 matching events; the next (older) page: --page-token " in run.stderr
    token = run.stderr.rsplit("--page-token ", 1)[1].strip()
    older = ferry_cli(
        "events",
        "--addr",
        collector.addr,
        "--type",
        "purchase",
        "--format",
        "json",
        "--limit",
        "5",
        "--page-token",
        token,
    )
    assert [json.loads(line)["label"] for line in older.stdout.splitlines()] == [
        f"order-{i}" for i in (14, 13, 12, 11, 10)
    ]
    run = ferry_cli("events", "--addr", collector.addr, "--where", "type=signup", "--format", "json")
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(rows) == 10 and {r["value"] for r in rows} == {None}
    assert run.stderr == ""


def test_cli_csv(loaded):
    collector, _ = loaded
    run = ferry_cli("logs", "--addr", collector.addr, "--level", "error", "--format", "csv")
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert [r["message"] for r in rows] == ["job 11 done", "job 8 timed out", "job 5 done", "job 2 done"]
    assert rows[0]["trace_id"] == f"{11:032x}"
    assert json.loads(rows[0]["attributes"]) == {"queue": "q1"}
    run = ferry_cli("events", "--addr", collector.addr, "--contains", "ORDER-1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert len(rows) == 11  # order-1, order-10 .. order-19
    assert {r["value"] for r in rows} == {repr(float(i)) for i in (1, *range(10, 20))}


def test_cli_table_and_count(loaded):
    collector, _ = loaded
    run = ferry_cli("logs", "--addr", collector.addr, "--contains", "timed out", "--trace", f"{8:032x}")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["TIME", "HOST", "SERVICE", "LEVEL", "MESSAGE", "ATTRIBUTES"]
    assert len(lines) == 2
    assert lines[1].split()[1:] == ["host-test", "worker", "error", "job", "8", "timed", "out", "queue=q0"]
    for fmt, expected in (("table", "20\n"), ("json", '{"count":20}\n'), ("csv", "count\n20\n")):
        run = ferry_cli("events", "--addr", collector.addr, "--type", "purchase", "--count", "--format", fmt)
        assert (run.returncode, run.stdout) == (0, expected), run.stderr


def test_cli_errors(loaded):
    collector, _ = loaded
    run = ferry_cli("events", "--addr", collector.addr, "--where", "nope=1")
    assert run.returncode == 1
    assert "INVALID_ARGUMENT" in run.stderr and "'nope' is not one of type, category" in run.stderr
    run = ferry_cli("logs", "--addr", collector.addr, "--limit", "20000")
    assert run.returncode == 1
    assert "RESOURCE_EXHAUSTED" in run.stderr and "limit 20000 > 10000 allowed" in run.stderr
    for args in (["--where", "novalue"], ["--since", "soon"], ["--limit", "0"], ["--bogus"]):
        run = ferry_cli("events", "--addr", collector.addr, *args)
        assert run.returncode == 2, (args, run.stderr)
        assert run.stdout == ""
    run = ferry_cli("events", "--addr", collector.addr, "--type", "a", "--where", "type=b")
    assert run.returncode == 2 and "type is given twice" in run.stderr


def test_cli_injection_is_data(loaded):
    collector, _ = loaded
    for args in (
        ["--where", "type=purchase' OR '1'='1"],
        ["--where", "properties.sku=x') OR 1=1 --"],
        ["--contains", "%' OR 1=1; DROP TABLE ferry.events; --"],
    ):
        run = ferry_cli("events", "--addr", collector.addr, "--count", *args)
        assert (run.returncode, run.stdout) == (0, "0\n"), (args, run.stderr)
    run = ferry_cli("events", "--addr", collector.addr, "--where", "type=1 OR 1=1", "--count")
    assert run.stdout == "0\n"
    run = ferry_cli("events", "--addr", collector.addr, "--where", "type) OR (1=1", "--count")
    assert run.returncode == 1 and "is not one of" in run.stderr
    assert _total(collector.addr, "SearchEvents") == 30


def test_resent_frame_after_restart_is_stored_once(tmp_path):
    t0 = time.time_ns() - 60 * 10**9
    frames = [
        framegen.records_frame(1, _events(t0)[:15], _logs(t0)[:4], agent_id="resend", epoch=7),
        framegen.records_frame(2, _events(t0)[15:], _logs(t0)[4:], agent_id="resend", epoch=7),
    ]
    first = start_collector(tmp_path)
    with diagnose(first):
        assert [a.status for a in _stream(first.addr, frames)] == [ingest_pb2.OK] * 2
        assert (_total(first.addr, "SearchEvents"), _total(first.addr, "SearchLogs")) == (30, 12)
    first.stop()
    second = start_collector(tmp_path, store=tmp_path / "store")
    try:
        with diagnose(second):
            # the marks rebuilt from the events' and logs' ledgers know both frames
            assert [a.status for a in _stream(second.addr, frames)] == [ingest_pb2.DUPLICATE] * 2
            assert (_total(second.addr, "SearchEvents"), _total(second.addr, "SearchLogs")) == (30, 12)
            assert [a.status for a in _stream(second.addr, frames)] == [ingest_pb2.DUPLICATE] * 2
            run = ferry_cli("logs", "--addr", second.addr, "--count", "--format", "json")
            assert run.stdout == '{"count":12}\n'
    finally:
        second.stop()


def test_bad_event_rejects_its_frame_and_the_next_frame_is_stored(tmp_path):
    collector = start_collector(tmp_path)
    try:
        with diagnose(collector):
            good_events = [framegen.event("ok", value=1.0) for _ in range(3)]
            bad = framegen.records_frame(
                1, [*good_events, framegen.event("x" * 300)], [framegen.log_record("held back")], agent_id="b"
            )
            good = framegen.records_frame(2, good_events, [framegen.log_record("stored")], agent_id="b")
            acks = _stream(collector.addr, [bad, good])
            assert [a.status for a in acks] == [ingest_pb2.REJECTED, ingest_pb2.OK]
            assert acks[0].code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert acks[0].message == "event 3: type is 300 bytes > 256 allowed"
            bad_log = framegen.records_frame(3, [], [framegen.log_record("m", level="")], agent_id="b")
            with pytest.raises(grpc.RpcError) as err:
                _push(collector.addr, bad_log)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details() == "log 0: level is empty"
            assert (
                _push(collector.addr, framegen.records_frame(4, good_events, agent_id="b")).status
                == ingest_pb2.OK
            )
            assert _total(collector.addr, "SearchEvents") == 6
            assert _total(collector.addr, "SearchLogs", contains="stored") == 1
            assert _total(collector.addr, "SearchLogs") == 1
    finally:
        collector.stop()
