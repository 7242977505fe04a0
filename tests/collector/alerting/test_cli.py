"""`ferry alerts` and `ferry silence` against the Alerts service on an in-process grpc.aio server
(an AlertBook over AlertStore on the embedded store): what each command prints in each
format, and its exit status (0 ok, 1 the collector refused, 2 a usage error)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading

import pytest

from ferry import transport
from ferry.collector.alerting import service
from ferry.collector.alerting.model import State, fingerprint
from ferry.collector.cli.main import main
from tests.collector.alerting.book import DB1, NOW, WEB1, WEB2, Book, seeded, transition


class Served:
    """The Alerts service on `book`, on a loop of its own thread (the CLI blocks the test's)."""

    def __init__(self, book):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start():
            server = transport.server()
            svc = service.add_to_server(book, server, who=lambda: "anonymous", clock=lambda: NOW)
            port = transport.bind(server, "127.0.0.1:0")
            await server.start()
            return server, svc, port

        self.server, self.svc, port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.addr = f"127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.svc.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def served(store):
    s = Served(Book(seeded(store)))
    yield s
    s.stop()


def ferry(capsys, served: Served, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([*argv, "--addr", served.addr])
    out, err = capsys.readouterr()
    return rc, out, err


def test_alerts_lists_instances_and_unhealthy_rules(served, capsys):
    rc, out, err = ferry(capsys, served, "alerts")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "RULE", "STATE", "SEVERITY", "VALUE", "SINCE", "LABELS", "ACKED", "BY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {fingerprint(WEB1), fingerprint(DB1), *rows} and len(rows) == 3
    assert rows[fingerprint(WEB1)][1:6] == [
        "HighCPU",
        "firing",
        "warning",
        "0.95",
        "2026-09-21T14:09:20.000Z",
    ]
    assert rows[fingerprint(WEB1)][6] == '{host="web-1"}'
    assert err == "ferry: rule Broken: error: query failed: no such metric\n"
    rc, out, _ = ferry(capsys, served, "alerts", "--state", "firing", "--format", "json")
    (only,) = [json.loads(line) for line in out.splitlines()]
    assert (only["id"], only["state"], only["value"], only["labels"]["host"]) == (
        fingerprint(WEB1), "firing", 0.95, "web-1",
    )  # fmt: skip
    assert only["fired_at_ms"] == NOW - 240_000 and only["acked_by"] == ""


def test_alerts_ack_then_listed_acked(served, capsys):
    rc, out, err = ferry(capsys, served, "alerts", "ack", fingerprint(WEB1), "--note", "on it, see #42")
    assert rc == 0, err
    assert out.splitlines()[1].endswith("anonymous (on it, see #42)")
    rc, out, _ = ferry(capsys, served, "alerts", "--format", "csv")
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(out))}
    acked = rows[fingerprint(WEB1)]
    assert (acked["acked_by"], acked["ack_note"], acked["acked_at_ms"]) == (
        "anonymous",
        "on it, see #42",
        str(NOW),
    )
    assert json.loads(acked["labels"])["host"] == "web-1"
    rc, _, err = ferry(capsys, served, "alerts", "ack", fingerprint(DB1))  # resolved: nothing to ack
    assert rc == 1 and err == f"ferry alerts: NOT_FOUND: no pending or firing alert '{fingerprint(DB1)}'\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("alerts", "ack"), "ack needs the ID of an alert"),
        (("alerts", "ack", "x", "--since", "2h"), "--since does not apply to ack"),
        (("alerts", "list", "x"), "unexpected 'x': only ack takes an ID"),
        (("alerts", "history", "--since", "soon"), "--since"),
        (("silence", "add", "{host=}", "--for", "1h"), "matchers '{host=}'"),
        (("silence", "add", 'HighCPU{host="a"}'), "add needs --for DUR"),
        (("silence", "add", "HighCPU", "--for", "0s"), "--for: duration '0s' must be > 0"),
        (("silence", "expire"), "expire needs the ID of a silence"),
        (("silence", "list", "--for", "1h"), "--for does not apply to list"),
        (  # more than a request's int64 holds: the limit, not protobuf's ValueError
            ("silence", "add", '{host="a"}', "--for", "999999999999d"),
            "--for 999999999999d: more than the limit of 3650d (10 years)",
        ),
        (("silence", "add", '{host="a"}', "--for", "9" * 400), "more than the limit of 3650d"),
        (
            ("alerts", "history", "--since", "999999999999d"),
            "--since 999999999999d: more than the limit of 3650d (10 years)",
        ),
        (("alerts", "--state", "inactive"), "--state inactive applies to history only"),
    ],
)
def test_usage_errors_exit_2_before_any_call(served, capsys, argv, message):
    rc, out, err = ferry(capsys, served, *argv)
    assert rc == 2 and out == "" and message in err, err


def test_history_newest_first(served, capsys):
    rc, out, err = ferry(capsys, served, "alerts", "history", "--since", "1000d", "--format", "json")
    assert rc == 0, err
    found = [json.loads(line) for line in out.splitlines()]
    assert [t["time_ms"] for t in found] == [NOW - d for d in (60_000, 100_000, 200_000, 240_000, 300_000)]
    assert (found[1]["previous"], found[1]["state"], found[1]["value"]) == ("firing", "resolved", None)
    rc, out, err = ferry(
        capsys, served, "alerts", "history", "--since", "1000d", "--state", "firing", "--limit", "1"
    )
    assert rc == 0 and "raise --limit for more" in err
    (row,) = out.splitlines()[1:]
    assert "inactive -> firing" in row and '{host="db-1"}' in row


def test_history_of_transitions_into_inactive(served, capsys):
    alerts = served.svc.book.alerts
    alerts.write([transition(NOW - 30_000, WEB2, State.INACTIVE, State.PENDING, 0.5)])
    rc, out, err = ferry(
        capsys, served, "alerts", "history", "--since", "1000d", "--state", "inactive", "--format", "json"
    )
    assert rc == 0, err
    found = [json.loads(line) for line in out.splitlines()]
    assert [(t["previous"], t["state"], t["time_ms"]) for t in found] == [
        ("pending", "inactive", NOW - 30_000)
    ]


def test_the_longest_silence_is_ten_years(served, capsys):
    rc, out, err = ferry(capsys, served, "silence", "add", '{host="a"}', "--for", "3650d", "--format", "json")
    assert rc == 0, err
    assert json.loads(out)["ends_ms"] == NOW + service.MAX_SILENCE_MS  # the CLI's limit is the service's


def test_silence_add_list_expire(served, capsys):
    matchers = '{alertname="HighCPU",host=~"web-\\\\d+"}'
    rc, out, err = ferry(
        capsys, served, "silence", "add", matchers, "--for", "2h", "--comment", "deploy", "--format", "json"
    )
    assert rc == 0, err
    (added,) = [json.loads(line) for line in out.splitlines()]
    assert (added["matchers"], added["starts_ms"], added["ends_ms"]) == (matchers, NOW, NOW + 7_200_000)
    assert (added["created_by"], added["comment"]) == ("anonymous", "deploy")
    rc, out, _ = ferry(capsys, served, "silence", "list")
    assert rc == 0 and added["id"] in out and "deploy" in out
    rc, out, _ = ferry(capsys, served, "silence", "expire", added["id"], "--format", "csv")
    (row,) = csv.DictReader(io.StringIO(out))
    assert rc == 0 and row["ends_ms"] == str(NOW)
    rc, out, _ = ferry(capsys, served, "silence")  # list is the default
    assert rc == 0 and out.splitlines()[1:] == []
    rc, out, _ = ferry(capsys, served, "silence", "list", "--all")
    assert added["id"] in out and "ended" in out
    rc, _, err = ferry(capsys, served, "silence", "expire", "nope")
    assert rc == 1 and err == "ferry silence: NOT_FOUND: no silence 'nope'\n"


def test_a_collector_without_rules_says_so(capsys):
    served = Served(None)
    try:
        rc, out, err = ferry(capsys, served, "alerts")
    finally:
        served.stop()
    assert rc == 1 and out == ""
    assert err == f"ferry alerts: FAILED_PRECONDITION: {service.NO_RULES}\n"
