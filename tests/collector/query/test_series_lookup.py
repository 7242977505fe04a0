"""The series lookup by metric and label matchers (`series_where`) is exact at fleet scale: on
the embedded store holding ~200k generated series (bench/serieslookup.py's fleet, 403 hosts x
497 series), every EQ, NEQ, RE and NRE matcher, alone and combined, on a label every series has,
some have, or none has, selects exactly the series a plain Python filter of the generated
labels selects (a missing label reads as ""), and ListLabelValues lists exactly their values.
Also `regex_prefix`, the prefix a regex on `host` adds to the condition."""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest

from bench.serieslookup import CPU, catalogue, fill, generated
from ferry.collector.query import listing
from ferry.collector.query.sql import regex_prefix, series_where
from ferry.collector.storage.schema import SchemaOptions
from ferry.collector.storage.store import Store
from ferry.v1 import query_pb2

HOSTS = 403  # 200,291 series
EQ, NEQ, RE, NRE = query_pb2.EQ, query_pb2.NEQ, query_pb2.RE, query_pb2.NRE
PROC = "process.cpu.utilization"


def m(label: str, op: int, value: str) -> query_pb2.Matcher:
    return query_pb2.Matcher(label=label, op=op, value=value)


CASES = [  # (metric, matchers)
    (CPU, [m("host", EQ, "h-0017")]),
    (CPU, [m("host", EQ, "h-9999")]),  # no such host
    (CPU, [m("host", EQ, "")]),  # every series has a host
    (CPU, [m("host", NEQ, "h-0017")]),
    (CPU, [m("host", NEQ, "")]),
    (CPU, [m("host", RE, "h-00.*")]),
    (CPU, [m("host", RE, "h-01[0-4]7")]),
    (CPU, [m("host", RE, "h-00x?17")]),  # the `x` is optional: the prefix is h-00
    (CPU, [m("host", RE, "h-0*17")]),  # the prefix is h-
    (CPU, [m("host", RE, "h-0(01|23)7")]),  # an alternative: no prefix
    (CPU, [m("host", RE, "h-0017|h-0399")]),
    (CPU, [m("host", RE, "zz)?h-0017(")]),  # ^(?:zz)?h-0017()$ matches h-0017: no prefix (review)
    (CPU, [m("host", RE, ".*")]),
    (CPU, [m("host", RE, "h-03.+")]),
    (CPU, [m("host", NRE, "h-00.*")]),
    (CPU, [m("host", NRE, ".*")]),
    (CPU, [m("state", NEQ, "idle")]),
    (CPU, [m("state", EQ, "idle")]),
    (CPU, [m("state", NRE, "idle|user")]),
    (CPU, [m("cpu", RE, "1[0-5]")]),
    (CPU, [m("absent", EQ, "x")]),  # a label no series has
    (CPU, [m("absent", EQ, "")]),
    (CPU, [m("absent", NEQ, "")]),
    (CPU, [m("absent", NEQ, "x")]),
    (CPU, [m("absent", RE, ".*")]),
    (CPU, [m("absent", RE, "x.*")]),
    (CPU, [m("absent", RE, "|x")]),  # matches "": every series
    (CPU, [m("absent", NRE, ".*")]),
    (CPU, [m("absent", NRE, "x")]),
    (CPU, [m("host", EQ, "h-0017"), m("cpu", EQ, "3")]),
    (CPU, [m("host", RE, "h-00.*"), m("state", NEQ, "idle"), m("cpu", RE, "1[0-5]")]),
    (CPU, [m("host", NEQ, "h-0017"), m("cpu", EQ, "3"), m("state", EQ, "idle")]),
    (CPU, [m("host", EQ, "h-0017"), m("absent", EQ, "")]),
    (CPU, [m("host", EQ, "h-0017"), m("absent", NEQ, "")]),
    (PROC, [m("name", EQ, "postgres"), m("host", RE, "h-01.*")]),
    (PROC, [m("pid", RE, "1[0-9]{3}")]),
    ("system.memory.usage", [m("cpu", EQ, "")]),  # a label of other metrics only
    ("system.memory.usage", [m("cpu", NEQ, "")]),
    ("system.uptime", []),
    ("", [m("host", EQ, "h-0017")]),  # every metric
    ("", [m("host", RE, "h-001.*"), m("state", EQ, "idle")]),
    ("", [m("cpu", NEQ, "")]),
    ("no.such.metric", [m("host", EQ, "h-0017")]),
]


def python_match(labels: dict[str, str], mt: query_pb2.Matcher) -> bool:
    v = labels.get(mt.label, "")
    if mt.op == EQ:
        return v == mt.value
    if mt.op == NEQ:
        return v != mt.value
    hit = re.fullmatch(f"(?:{mt.value})", v) is not None  # as the store wraps it: ^(?:v)$
    return hit if mt.op == RE else not hit


@pytest.fixture(scope="module")
def fleet(chdb_dsn):
    """A store (a database of the session's embedded engine) with HOSTS hosts' series, and every
    series' (name, labels) by id as the store holds them, checked against the generated fleet."""
    store = Store.open(chdb_dsn, database=f"t_{uuid.uuid4().hex[:12]}")
    store.ensure_schema(SchemaOptions(database=store.db))
    assert fill(store, f"{store.db}.series", HOSTS) == HOSTS * len(catalogue())
    rows = store.query(f"SELECT series_id, name, labels FROM {store.db}.series")
    by_id = {sid: (name, dict(labels)) for sid, name, labels in rows}
    assert len(by_id) == len(rows) == HOSTS * len(catalogue())
    key = lambda name, labels: (name, tuple(sorted(labels.items())))  # noqa: E731
    assert Counter(key(*v) for v in by_id.values()) == Counter(key(*g) for g in generated(HOSTS))
    yield store, by_id
    store.client.command(f"DROP DATABASE IF EXISTS {store.db}")
    store.close()


def test_every_matcher_selects_exactly_the_series_a_python_filter_does(fleet):
    store, by_id = fleet
    for metric, matchers in CASES:
        want = {
            sid
            for sid, (name, labels) in by_id.items()
            if (not metric or name == metric) and all(python_match(labels, mt) for mt in matchers)
        }
        params: dict = {}
        cond = series_where(metric, matchers, params)
        got = [r[0] for r in store.query(f"SELECT series_id FROM {store.db}.series WHERE {cond}", params)]
        assert len(got) == len(set(got)) and set(got) == want, (metric, matchers, len(got), len(want))


def test_the_lookup_reads_back_their_labels(fleet):
    """The lookup's shape (one row per series: id, kind, labels) answers each series once with
    the labels it was written with."""
    store, by_id = fleet
    for metric, matchers in CASES[:13]:
        want = {
            sid: labels
            for sid, (name, labels) in by_id.items()
            if name == metric and all(python_match(labels, mt) for mt in matchers)
        }
        params: dict = {}
        cond = series_where(metric, matchers, params)
        sql = f"SELECT series_id, kind, labels FROM {store.db}.series WHERE {cond} LIMIT 1 BY series_id"
        rows = store.query(sql, params)
        assert {sid: dict(labels) for sid, _, labels in rows} == want and len(rows) == len(want)
        assert {kind for _, kind, _ in rows} <= {"gauge"}


@pytest.mark.parametrize("metric", [CPU, ""])
def test_label_values_of_host_are_every_host(fleet, metric):
    store, _ = fleet
    req = query_pb2.ListLabelValuesRequest(label="host", metric=metric, limit=5_000)
    got = listing.label_values(store, req)
    assert list(got.values) == [f"h-{i:04d}" for i in range(HOSTS)] and not got.truncated
    req = query_pb2.ListLabelValuesRequest(
        label="host", metric=metric, matchers=[m("host", RE, "h-01.*")], limit=5_000
    )
    assert list(listing.label_values(store, req).values) == [f"h-{i:04d}" for i in range(100, 200)]
    req = query_pb2.ListLabelValuesRequest(label="absent", metric=metric, limit=5_000)
    assert list(listing.label_values(store, req).values) == []


@pytest.mark.parametrize(
    "pattern, prefix",
    [
        ("h-0017", "h-0017"),
        ("h-00.*", "h-00"),
        ("h-00x?17", "h-00"),
        ("h-0*17", "h-"),
        ("h-0{0,2}17", "h-"),
        ("h-0+17", "h-0"),
        ("h-0(01|23)7", ""),
        ("a|b", ""),
        ("(?i)h-00", ""),
        ("[h]-00", ""),
        ("\\w+", ""),
        (".*", ""),
        ("", ""),
        ("web 1:80/x", "web 1:80/x"),
        ("zz)?web(", ""),  # the `)` closes the group the store wraps it in: `zz` is optional
        ("h-1\\)x", "h-1"),  # an escaped `)` closes nothing
        ("h-1[)]x", "h-1"),  # nor one in a class
    ],
)
def test_the_prefix_of_a_host_regex_is_one_every_match_starts_with(pattern, prefix):
    assert regex_prefix(pattern) == prefix
    if prefix:
        params: dict = {}
        assert "startsWith(host, {vp0:String})" in series_where(CPU, [m("host", RE, pattern)], params)
        assert params["vp0"] == prefix
