"""Events and logs in the collector: validation in the pipeline, the rows it writes, the search SQL
builder and the SearchEvents / SearchLogs servicer, on the real embedded store."""

from __future__ import annotations

import time

import grpc
import grpc_testing
import pytest

from ferry.collector.pipeline import FramePipeline, PipelineConfig
from ferry.collector.query import search
from ferry.collector.query.service import QueryService
from ferry.collector.query.sql import QueryError
from ferry.collector.storage.store import Store, ThreadStores
from ferry.collector.writer import Writer
from ferry.limits import RecordLimits
from ferry.v1 import ingest_pb2, query_pb2
from tests import framegen

QUERY = query_pb2.DESCRIPTOR.services_by_name["Query"]
NOW_NS = 1_800_000_000 * 10**9


def count(store: Store, table: str) -> int:
    return store.query(f"SELECT count() FROM {store.db}.{table}")[0][0]


@pytest.fixture
def stores(store, store_dsn):
    ts = ThreadStores(lambda: Store.open(store_dsn, database=store.db))
    yield ts
    ts.close_all()


@pytest.fixture
def pipeline(stores):
    return FramePipeline.writing(Writer(stores))


@pytest.fixture
def query(stores):
    server = grpc_testing.server_from_dictionary(
        {QUERY: QueryService(stores)}, grpc_testing.strict_real_time()
    )

    def call(method: str, request):
        rpc = server.invoke_unary_unary(QUERY.methods_by_name[method], (), request, 10)
        response, _metadata, code, details = rpc.termination()
        return response, code, details

    return call


# ---- validation in the pipeline ------------------------------------------------------------------

BAD_EVENTS = {
    "empty type": (framegen.event(""), "type is empty"),
    "NaN value": (framegen.event(value=float("nan")), "value nan is not finite"),
    "long label": (framegen.event(label="l" * 300), "label is 300 bytes > 256 allowed"),
    "bad property key": (framegen.event(properties={"a b": "x"}), "properties key 'a b' must match"),
    "too old": (framegen.event(t_ns=1), "time 1 ns is outside the accepted window"),
}
BAD_LOGS = {
    "empty level": (framegen.log_record("m", level=""), "level is empty"),
    "long message": (framegen.log_record("m" * 70_000), "message is 70000 bytes > 65536 allowed"),
    "long trace_id": (framegen.log_record("m", trace_id="t" * 65), "trace_id is 65 chars > 64 allowed"),
    "too many attributes": (
        framegen.log_record("m", attributes={f"k{i}": "v" for i in range(65)}),
        "65 attributes > 64 allowed",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS))
def test_bad_event_rejects_the_frame_naming_its_index(pipeline, store, case):
    bad, fragment = BAD_EVENTS[case]
    events = [framegen.event() for _ in range(12)] + [bad]
    ack = pipeline.handle(
        framegen.records_frame(1, events, [framegen.log_record("ok")], batch=framegen.gauge_batch())
    )
    assert (ack.status, ack.code) == (ingest_pb2.REJECTED, grpc.StatusCode.INVALID_ARGUMENT.value[0])
    assert ack.message.startswith("event 12: ")
    assert fragment in ack.message
    assert [count(store, t) for t in ("samples", "events", "logs")] == [0, 0, 0]


@pytest.mark.parametrize("case", list(BAD_LOGS))
def test_bad_log_rejects_the_frame_naming_its_index(pipeline, store, case):
    bad, fragment = BAD_LOGS[case]
    ack = pipeline.handle(framegen.records_frame(1, [framegen.event()], [framegen.log_record("ok"), bad]))
    assert ack.status == ingest_pb2.REJECTED
    assert ack.message.startswith("log 1: ")
    assert fragment in ack.message
    assert [count(store, t) for t in ("events", "logs")] == [0, 0]


def test_record_limits_come_from_the_pipeline_config(stores, store):
    pipeline = FramePipeline.writing(
        Writer(stores), PipelineConfig(record_limits=RecordLimits(max_field_bytes=8))
    )
    ack = pipeline.handle(framegen.records_frame(1, [framegen.event("purchase.done")]))
    assert ack.message == "event 0: type is 13 bytes > 8 allowed"
    assert pipeline.handle(framegen.records_frame(2, [framegen.event("purchase")])).status == ingest_pb2.OK


def test_frame_with_only_events_and_logs(pipeline, store):
    frame = framegen.records_frame(1, [framegen.event(), framegen.event("view")], [framegen.log_record("x")])
    assert frame.point_count == 0
    assert pipeline.handle(frame).status == ingest_pb2.OK
    assert [count(store, t) for t in ("samples", "series", "events", "logs")] == [0, 0, 2, 1]


def test_frame_with_metrics_events_and_logs_stores_all(pipeline, store):
    frame = framegen.records_frame(
        1,
        [framegen.event()],
        [framegen.log_record("a"), framegen.log_record("b")],
        batch=framegen.gauge_batch(),
    )
    assert frame.point_count == 15
    assert pipeline.handle(frame).status == ingest_pb2.OK
    assert [count(store, t) for t in ("samples", "events", "logs")] == [15, 1, 2]
    # the metric point count is still checked when records ride along
    frame = framegen.records_frame(2, [framegen.event()], batch=framegen.gauge_batch())
    frame.point_count = 16
    ack = pipeline.handle(frame)
    assert ack.status == ingest_pb2.REJECTED
    assert "point_count 16 != 15 points" in ack.message


def test_rows_as_stored(pipeline, store):
    t = time.time_ns() - 5 * 10**9
    events = [
        framegen.event(
            "click",
            t,
            category="ui",
            action="buy",
            label="L",
            value=-0.0,
            user_id="u1",
            session_id="s1",
            service="shop",
            properties={"b": "2", "a": "1"},
        ),
        framegen.event("view", t + 1),
    ]
    logs = [
        framegen.log_record(
            "boom\nline 2",
            "error",
            t + 2,
            service="api",
            attributes={"k": "v"},
            trace_id="ab" * 16,
            span_id="cd" * 8,
        )
    ]
    assert (
        pipeline.handle(framegen.records_frame(1, events, logs, host="h1", agent_id="a1")).status
        == ingest_pb2.OK
    )
    assert store.query(
        f"SELECT toUnixTimestamp64Nano(ts), host, agent_id, service, type, category, action, label, value, "
        f"user_id, session_id, properties FROM {store.db}.events ORDER BY ts"
    ) == [
        (t, "h1", "a1", "shop", "click", "ui", "buy", "L", -0.0, "u1", "s1", {"a": "1", "b": "2"}),
        (t + 1, "h1", "a1", "", "view", "", "", "", None, "", "", {}),
    ]
    assert store.query(
        f"SELECT toUnixTimestamp64Nano(ts), host, agent_id, service, level, message, attributes, trace_id, "
        f"span_id FROM {store.db}.logs"
    ) == [(t + 2, "h1", "a1", "api", "error", "boom\nline 2", {"k": "v"}, "ab" * 16, "cd" * 8)]


# ---- the SQL builder ------------------------------------------------------------------------------


def _where(table, **fields):
    params: dict = {}
    request = (query_pb2.SearchEventsRequest if table is search.EVENTS else query_pb2.SearchLogsRequest)(
        **fields
    )
    return search.where_sql(table, request, NOW_NS, params), params


def test_time_range_defaults_and_errors():
    hour = 3600 * 10**9
    assert search.time_range(0, 0, NOW_NS) == (NOW_NS - hour, NOW_NS)
    assert search.time_range(5, 0, NOW_NS) == (5, NOW_NS)
    assert search.time_range(0, 2 * hour, NOW_NS) == (hour, 2 * hour)
    with pytest.raises(QueryError, match="end 10 ns must be after start 10 ns"):
        search.time_range(10, 10, NOW_NS)
    with pytest.raises(QueryError, match="must be >= 0"):
        search.time_range(-5, 0, NOW_NS)


def test_where_binds_every_value():
    where, params = _where(
        search.EVENTS,
        equals={"type": "x' OR '1'='1", "properties.page": "{v0:String}", "host": "h"},
        contains="%'); DROP TABLE events; --",
    )
    assert "host = {v0:String}" in where
    assert "properties[{k1:String}] = {v1:String}" in where
    assert "type = {v2:String}" in where
    assert params["k1"] == "page"
    for value in ("x' OR '1'='1", "DROP TABLE", "page"):
        assert value not in where
    assert params["contains"] == "%'); DROP TABLE events; --"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (search.EVENTS, "type = '' OR 1=1 --"),
        (search.EVENTS, "level"),
        (search.EVENTS, "attributes.k"),
        (search.EVENTS, "properties."),
        (search.EVENTS, "properties.a'] = '' OR properties['a"),
        (search.EVENTS, "ts"),
        (search.LOGS, "message"),
        (search.LOGS, "properties.k"),
        (search.LOGS, "Level"),
    ],
)
def test_where_refuses_keys_outside_the_whitelist(table, key):
    with pytest.raises(QueryError) as err:
        _where(table, equals={key: "v"})
    text = str(err.value)
    assert repr(key[:80]) in text
    assert ", ".join(table.columns) in text
    assert f"{table.map_column}.KEY" in text


# ---- the servicer ---------------------------------------------------------------------------------


@pytest.fixture
def loaded(pipeline):
    """40 events (types a/b alternating, newest = i 39) and 30 logs (levels info/warn/error)."""
    t0 = time.time_ns() - 60 * 10**9
    events = [
        framegen.event(
            "ab"[i % 2],
            t0 + i * 10**9,
            action=f"act{i % 4}",
            label=f"Label-{i}",
            user_id=f"u{i % 5}",
            properties={"page": f"/p{i % 3}", "note": "Has Needle" if i == 7 else "hay"},
            **({"value": float(i)} if i % 10 == 0 else {}),
        )
        for i in range(40)
    ]
    logs = [
        framegen.log_record(
            f"request {i} {'FAILED' if i % 6 == 0 else 'ok'}",
            ("info", "warn", "error")[i % 3],
            t0 + i * 10**9,
            service=("api", "db")[i % 2],
            attributes={"route": f"/r{i % 2}"},
            trace_id=f"trace{i}",
        )
        for i in range(30)
    ]
    assert pipeline.handle(framegen.records_frame(1, events[:25], logs[:10])).status == ingest_pb2.OK
    assert (
        pipeline.handle(framegen.records_frame(2, events[25:], logs[10:], host="other")).status
        == ingest_pb2.OK
    )
    return t0


def test_search_events_newest_first_with_exact_total(query, loaded):
    resp, code, details = query("SearchEvents", query_pb2.SearchEventsRequest(limit=5))
    assert code == grpc.StatusCode.OK, details
    assert [e.event.label for e in resp.events] == [f"Label-{i}" for i in (39, 38, 37, 36, 35)]
    assert (resp.truncated, resp.total) == (True, 40)
    assert resp.events[0].host == "other" and resp.events[0].agent_id == "agent-test"
    resp, _, _ = query("SearchEvents", query_pb2.SearchEventsRequest())
    assert (len(resp.events), resp.truncated, resp.total) == (40, False, 40)
    assert [e.event.time_unix_ns - loaded for e in resp.events] == [i * 10**9 for i in range(39, -1, -1)]
    valued = {e.event.label: e.event.value for e in resp.events if e.event.has_value}
    assert valued == {"Label-0": 0.0, "Label-10": 10.0, "Label-20": 20.0, "Label-30": 30.0}


def test_search_events_filters(query, loaded):
    def total(**fields) -> int:
        resp, code, details = query("SearchEvents", query_pb2.SearchEventsRequest(count_only=True, **fields))
        assert code == grpc.StatusCode.OK, details
        assert not resp.events
        return resp.total

    assert total() == 40
    assert total(equals={"type": "a"}) == 20
    assert total(equals={"type": "a", "action": "act2"}) == 10
    assert total(equals={"properties.page": "/p0"}) == 14
    assert total(equals={"properties.missing": ""}) == 40
    assert total(equals={"host": "other"}) == 15
    assert total(equals={"user_id": "u3", "agent_id": "agent-test"}) == 8
    assert total(contains="needle") == 1  # a property value
    assert total(contains="label-3") == 11  # label: 3, 30..39
    assert total(contains="ACT1") == 10  # action
    assert total(start_unix_ns=loaded + 10 * 10**9, end_unix_ns=loaded + 20 * 10**9) == 10


def test_search_logs(query, loaded):
    req = query_pb2.SearchLogsRequest(equals={"level": "error", "service": "api"}, contains="failed")
    resp, code, details = query("SearchLogs", req)
    assert code == grpc.StatusCode.OK, details
    # i % 3 == 2 (error) and i % 2 == 0 (api) and i % 6 == 0 (FAILED) never hold together
    assert (len(resp.logs), resp.total) == (0, 0)
    req = query_pb2.SearchLogsRequest(contains="failed", limit=2)
    resp, _, _ = query("SearchLogs", req)
    assert [r.log.message for r in resp.logs] == ["request 24 FAILED", "request 18 FAILED"]
    assert (resp.truncated, resp.total) == (True, 5)
    assert resp.logs[0].log.attributes == {"route": "/r0"} and resp.logs[0].log.trace_id == "trace24"
    resp, _, _ = query("SearchLogs", query_pb2.SearchLogsRequest(equals={"trace_id": "trace3"}))
    assert [(r.log.level, r.log.service, r.host) for r in resp.logs] == [("info", "db", "host-test")]
    resp, _, _ = query("SearchLogs", query_pb2.SearchLogsRequest(equals={"attributes.route": "/r1"}))
    assert resp.total == 15


@pytest.mark.parametrize(
    ("method", "request_", "code", "fragment"),
    [
        (
            "SearchEvents",
            query_pb2.SearchEventsRequest(limit=10_001),
            "RESOURCE_EXHAUSTED",
            "limit 10001 > 10000",
        ),
        (
            "SearchLogs",
            query_pb2.SearchLogsRequest(limit=50_000),
            "RESOURCE_EXHAUSTED",
            "limit 50000 > 10000",
        ),
        (
            "SearchEvents",
            query_pb2.SearchEventsRequest(equals={"nope": "x"}),
            "INVALID_ARGUMENT",
            "'nope' is not",
        ),
        (
            "SearchLogs",
            query_pb2.SearchLogsRequest(equals={"1=1 OR level": ""}),
            "INVALID_ARGUMENT",
            "is not one",
        ),
        (
            "SearchLogs",
            query_pb2.SearchLogsRequest(start_unix_ns=5, end_unix_ns=4),
            "INVALID_ARGUMENT",
            "end 4",
        ),
    ],
)
def test_bad_search_requests(query, loaded, method, request_, code, fragment):
    _, got, details = query(method, request_)
    assert got == getattr(grpc.StatusCode, code)
    assert fragment in details


@pytest.mark.parametrize(
    "value",
    [
        "' OR 1=1 --",
        "a'; DROP TABLE events; --",
        "\\' OR '1'='1",
        "{contains:String}",
        "%",
        "') OR 1 --\n",
    ],
)
def test_injection_through_values_is_data(query, loaded, store, value):
    for req in (
        query_pb2.SearchEventsRequest(equals={"type": value}),
        query_pb2.SearchEventsRequest(equals={"properties.page": value}),
        query_pb2.SearchEventsRequest(contains=value),
        query_pb2.SearchLogsRequest(equals={"level": value}, contains=value),
    ):
        method = "SearchEvents" if isinstance(req, query_pb2.SearchEventsRequest) else "SearchLogs"
        resp, code, details = query(method, req)
        assert code == grpc.StatusCode.OK, details
        assert resp.total == 0, (req, value)
    resp, _, _ = query("SearchEvents", query_pb2.SearchEventsRequest(count_only=True))
    assert resp.total == 40
    assert count(store, "events") == 40 and count(store, "logs") == 30


def test_pages_cover_every_match_once_even_within_one_instant(query, pipeline):
    """12 events of which 5 share one nanosecond: pages of 4 give each exactly once, newest first."""
    t0 = time.time_ns() - 60 * 10**9
    times = [t0 + i * 10**9 for i in range(7)] + [t0 + 3 * 10**9] * 5  # five more at the 4th instant
    events = [framegen.event("paged", t, label=f"e{i}") for i, t in enumerate(times)]
    assert pipeline.handle(framegen.records_frame(1, events, [])).status == ingest_pb2.OK
    seen, token, pages = [], "", 0
    while pages < 10:  # bounded: a token that does not advance must fail, not hang
        req = query_pb2.SearchEventsRequest(limit=4, equals={"type": "paged"}, page_token=token)
        resp, code, details = query("SearchEvents", req)
        assert code == grpc.StatusCode.OK, details
        assert resp.total == 12
        seen += [(s.event.time_unix_ns, s.event.label) for s in resp.events]
        pages += 1
        if not resp.truncated:
            assert resp.next_page_token == ""
            break
        token = resp.next_page_token
    assert pages == 3
    assert sorted(label for _, label in seen) == sorted(f"e{i}" for i in range(12))  # each once
    assert [t for t, _ in seen] == sorted(times, reverse=True)  # newest first across pages


@pytest.mark.parametrize("token", ["x", "12", "1:-1", "a:b", "1:2:3"])
def test_a_bad_page_token_is_refused(query, token):
    _resp, code, details = query("SearchLogs", query_pb2.SearchLogsRequest(page_token=token))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "is not one this server gave" in details
