"""ferry.collector.cli.records: rendering of searched events and logs, and the flags that build a request."""

from __future__ import annotations

import csv
import io
import json

import pytest

from ferry.collector.cli import records
from ferry.collector.cli.main import build_parser
from ferry.v1 import payload_pb2, query_pb2


def _log(message: str) -> dict:
    stored = query_pb2.StoredLog(
        log=payload_pb2.LogRecord(time_unix_ns=1_700_000_000_000_000_001, level="warn", message=message),
        host="h",
        agent_id="a",
    )
    return records.record_dict(stored)


def test_iso_ns_keeps_nanoseconds():
    assert records.iso_ns(1_700_000_000_000_000_001) == "2023-11-14T22:13:20.000000001Z"
    assert records.iso_ns(0) == "1970-01-01T00:00:00.000000000Z"


def test_table_escapes_newlines_and_keeps_one_line_per_record():
    text = records.render([_log("first\nsecond"), _log("x")], records.LOGS, "table")
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[1].endswith("warn   first\\nsecond")


def test_json_and_csv_round_trip_the_message():
    message = 'quote " comma , newline \n tab \t'
    (line,) = records.render([_log(message)], records.LOGS, "json").splitlines()
    assert json.loads(line)["message"] == message
    (row,) = csv.DictReader(io.StringIO(records.render([_log(message)], records.LOGS, "csv")))
    assert row["message"] == message and row["attributes"] == "{}"


def test_event_without_value_is_null():
    stored = query_pb2.StoredEvent(event=payload_pb2.Event(type="t", value=0.0, has_value=False))
    assert records.record_dict(stored)["value"] is None
    stored.event.has_value = True
    assert records.record_dict(stored)["value"] == 0.0


def _request(*argv: str):
    args = build_parser().parse_args(["events", *argv])
    return records._request(args, records.EVENTS)


def test_flags_build_the_request():
    req = _request("--type", "buy", "--where", "properties.sku=a=b", "--until", "1700000000", "--since", "2m")
    assert dict(req.equals) == {"type": "buy", "properties.sku": "a=b"}
    assert (req.start_unix_ns, req.end_unix_ns) == (1_699_999_880 * 10**9, 1_700_000_000 * 10**9)
    assert (req.limit, req.count_only, req.contains) == (100, False, "")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--where", "type"], "is not K=V"),
        (["--where", "=x"], "is not K=V"),
        (["--type", "a", "--where", "type=b"], "type is given twice: 'b' and 'a'"),
        (["--limit", "0"], "--limit 0 must be between 1 and"),
        (["--since", "later"], "later"),
    ],
)
def test_bad_flags_are_usage_errors(argv, fragment):
    with pytest.raises(records.UsageError, match=fragment):
        _request(*argv)
