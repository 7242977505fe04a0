"""Findings of the adversarial run (tests/integration/test_adversarial.py), one by one in-process:
a page token of non-ASCII digits, and status messages that echo a request's value whole."""

from __future__ import annotations

import time

import pytest

from ferry.collector.query.search import parse_page_token
from ferry.collector.query.service import MAX_DETAILS_CHARS, details
from ferry.collector.query.sql import QueryError, QueryLimits, check_range
from ferry.v1 import query_pb2


@pytest.mark.parametrize("token", ["¹²³:0", "٣:٣", "1:²", "Ⅻ:1"])
def test_a_page_token_of_non_ascii_digits_is_invalid(token):
    # str.isdigit takes these and int() does not: it was answered UNKNOWN (a ValueError)
    with pytest.raises(QueryError, match="page_token"):
        parse_page_token(token)


def test_a_page_token_of_ascii_digits_parses():
    assert parse_page_token("1700000000000000000:3") == (1700000000000000000, 3)


def _range(**kw) -> query_pb2.QueryRangeRequest:
    end = int(time.time() * 1000)
    args = {"metric": "m", "start_ms": end - 60_000, "end_ms": end, "step_ms": 1000}
    args.update(kw)
    return query_pb2.QueryRangeRequest(**args)


@pytest.mark.parametrize(
    "req",
    [
        _range(agg="x" * 10_000),
        _range(group_by=["-" * 10_000]),
    ],
    ids=["aggregation", "group-by label"],
)
def test_a_long_bad_value_is_cut_in_the_message(req):
    # a 10 KB value echoed whole made a status header gRPC clients refuse (over 8 KiB)
    with pytest.raises(QueryError) as err:
        check_range(req, QueryLimits())
    assert len(str(err.value)) < 400


def test_status_details_are_bounded():
    assert details("short") == "short"
    long = details("e" * 100_000)
    assert len(long) < MAX_DETAILS_CHARS + 40 and long.endswith("(100000 chars)")
