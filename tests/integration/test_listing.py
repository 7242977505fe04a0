"""ListLabelValues, ListAgents and TopProcesses against a real collector process: known series give
exactly the expected label values, a real agent shows up with its version and a small lag, process
metrics from two hosts give exactly the expected top N; injection attempts through every field
return an error or no data; and `ferry agents` / `ferry top` / `ferry series --label` print all
three formats."""

from __future__ import annotations

import csv
import io
import json
import time

import grpc
import numpy as np
import pytest

from ferry import transport
from ferry.agent import __version__ as AGENT_VERSION
from ferry.collector.cli import main as cli
from ferry.v1 import ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from ferry.wire.columns import GAUGE, MetricBatch, SeriesDef
from tests import framegen
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for

# (host, name, pid, group, [older value, latest value]) of process.cpu.utilization (unit 1); memory
# (By) is value * 1e9
PROCESSES = [
    ("top-a", "postgres", "101", "db", [0.2, 0.5]),
    ("top-a", "nginx", "102", "web", [0.9, 0.1]),
    ("top-a", "java", "103", "app", [0.3, 0.9]),
    ("top-b", "python", "201", "app", [0.6, 0.7]),
    ("top-b", "cron", "202", "", [0.0, 0.05]),
]
STALE = ("top-b", "stale", "299", "app", 5.0)  # ten minutes old: outside the default 5 min window
TOP_HOSTS = query_pb2.Matcher(label="host", op=query_pb2.RE, value="top-.*")


def _process_batch(host: str, metric: str, scale: float, now_ms: int) -> MetricBatch:
    rows = [p for p in PROCESSES if p[0] == host]
    unit = "1" if metric == "process.cpu.utilization" else "By"
    series = [
        SeriesDef(metric, GAUGE, unit, (("group", g), ("name", n), ("pid", pid))) for _, n, pid, g, _ in rows
    ]
    refs, times, values = [], [], []
    for i, (*_, vals) in enumerate(rows):
        for j, v in enumerate(vals):
            refs.append(i)
            times.append(now_ms - 20_000 + j * 10_000)
            values.append(v * scale)
    if host == STALE[0]:
        _, n, pid, g, v = STALE
        series.append(SeriesDef(metric, GAUGE, unit, (("group", g), ("name", n), ("pid", pid))))
        refs.append(len(series) - 1)
        times.append(now_ms - 600_000)
        values.append(v * scale)
    return MetricBatch(
        series=series,
        series_ref=np.array(refs, dtype=np.uint32),
        time_ms=np.array(times, dtype=np.int64),
        value=np.array(values, dtype=np.float64),
    )


def _push(addr: str, frame: ingest_pb2.Frame) -> ingest_pb2.Ack:
    with transport.channel(addr) as ch:
        return ingest_pb2_grpc.IngestStub(ch).Push(frame, timeout=30)


def _call(addr: str, method: str, request):
    with transport.channel(addr) as ch:
        return getattr(query_pb2_grpc.QueryStub(ch), method)(request, timeout=30)


def _error(addr: str, method: str, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        _call(addr, method, request)
    return info.value.code(), info.value.details()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """A collector holding lv.gauge{idx=0..4} from host lv-1, lv.other{idx=9} from lv-2, and
    process cpu and memory series of top-a and top-b; and a real agent streaming to it."""
    workdir = tmp_path_factory.mktemp("listing")
    collector = start_collector(workdir)
    now = int(time.time() * 1000)
    frames = [
        framegen.frame(
            framegen.gauge_batch("lv.gauge", n_series=5, labels={"env": "prod"}), 1, "lv", host="lv-1"
        ),
        framegen.frame(
            framegen.gauge_batch("lv.other", n_series=1, labels={"idx2": "x"}), 2, "lv", host="lv-2"
        ),
    ]
    seq = 3
    for host in ("top-a", "top-b"):
        for metric, scale in (("process.cpu.utilization", 1.0), ("process.memory.usage", 1e9)):
            frames.append(
                framegen.frame(_process_batch(host, metric, scale, now), seq, "p-" + host, host=host)
            )
            seq += 1
    agent = None
    with diagnose(collector):
        for frame in frames:
            assert _push(collector.addr, frame).status == ingest_pb2.OK
        agent = start_agent(
            workdir, collector.addr, "--interval", "1s", "--batch-max-age", "1s", agent_id="real-agent"
        )
    yield collector, agent
    agent.stop()
    collector.stop()


def _values(addr: str, label: str, metric: str = "", matchers=(), limit: int = 0) -> tuple[list[str], bool]:
    resp = _call(
        addr,
        "ListLabelValues",
        query_pb2.ListLabelValuesRequest(metric=metric, label=label, matchers=list(matchers), limit=limit),
    )
    return list(resp.values), resp.truncated


def test_label_values_of_known_series(loaded):
    addr = loaded[0].addr
    assert _values(addr, "idx", "lv.gauge") == (["0", "1", "2", "3", "4"], False)
    assert _values(addr, "idx", "lv.gauge", limit=3) == (["0", "1", "2"], True)
    assert _values(addr, "idx", "lv.gauge", limit=5) == (["0", "1", "2", "3", "4"], False)
    re13 = query_pb2.Matcher(label="idx", op=query_pb2.RE, value="[13]")
    assert _values(addr, "idx", "lv.gauge", [re13]) == (["1", "3"], False)
    not_lv1 = query_pb2.Matcher(label="host", op=query_pb2.NEQ, value="lv-1")
    assert _values(addr, "idx", "", [not_lv1, query_pb2.Matcher(label="host", value="lv-2")]) == (
        ["0"],
        False,
    )
    # host is a label; a label no matched series has gives no values
    assert _values(addr, "host", "lv.gauge") == (["lv-1"], False)
    assert _values(
        addr, "host", "", [query_pb2.Matcher(label="host", op=query_pb2.RE, value="(lv|top)-.*")]
    ) == (
        ["lv-1", "lv-2", "top-a", "top-b"],
        False,
    )
    assert _values(addr, "idx2", "lv.gauge") == ([], False)
    assert _values(addr, "env", "") == (["prod"], False)


def test_label_values_time_bounds(loaded):
    addr = loaded[0].addr
    future = int(time.time() * 1000) + 3_600_000
    req = query_pb2.ListLabelValuesRequest(metric="lv.gauge", label="idx", start_ms=future)
    assert list(_call(addr, "ListLabelValues", req).values) == []
    req = query_pb2.ListLabelValuesRequest(metric="lv.gauge", label="idx", start_ms=1, end_ms=future)
    assert list(_call(addr, "ListLabelValues", req).values) == ["0", "1", "2", "3", "4"]


def test_top_processes_latest_value_top_n_in_order(loaded):
    addr = loaded[0].addr
    resp = _call(addr, "TopProcesses", query_pb2.TopProcessesRequest(limit=3, matchers=[TOP_HOSTS]))
    got = [(p.host, p.name, p.pid, p.group, p.value, p.unit) for p in resp.processes]
    assert got == [
        ("top-a", "java", "103", "app", 0.9, "1"),
        ("top-b", "python", "201", "app", 0.7, "1"),
        ("top-a", "postgres", "101", "db", 0.5, "1"),
    ]
    # every process, the latest value each (nginx's older 0.9 does not count); stale is out of the window
    resp = _call(addr, "TopProcesses", query_pb2.TopProcessesRequest(matchers=[TOP_HOSTS]))
    assert [(p.name, p.value) for p in resp.processes] == [
        ("java", 0.9),
        ("python", 0.7),
        ("postgres", 0.5),
        ("nginx", 0.1),
        ("cron", 0.05),
    ]
    assert all(p.time_ms > int(time.time() * 1000) - 60_000 for p in resp.processes)
    # a wider window takes the stale process in; memory and a host matcher
    wide = query_pb2.TopProcessesRequest(limit=1, window_ms=3_600_000, matchers=[TOP_HOSTS])
    assert [p.name for p in _call(addr, "TopProcesses", wide).processes] == ["stale"]
    mem = query_pb2.TopProcessesRequest(
        metric="process.memory.usage", limit=2, matchers=[query_pb2.Matcher(label="host", value="top-a")]
    )
    assert [(p.name, p.value, p.unit) for p in _call(addr, "TopProcesses", mem).processes] == [
        ("java", 0.9e9, "By"),
        ("postgres", 0.5e9, "By"),
    ]


def test_list_agents_shows_real_agent_with_version_and_small_lag(loaded):
    addr = loaded[0].addr

    def real_agent():
        agents = {a.agent_id: a for a in _call(addr, "ListAgents", query_pb2.ListAgentsRequest()).agents}
        return agents.get("real-agent")

    agent = wait_for(real_agent, timeout=30, what="real-agent in ListAgents")
    assert agent.version == AGENT_VERSION
    assert agent.host
    assert agent.address.startswith("127.0.0.1:")
    assert 0 <= agent.lag_ms < 15_000  # rows are refreshed at most every 10 s per agent
    assert abs(agent.last_seen_ms + agent.lag_ms - time.time() * 1000) < 5_000
    # agents that only pushed frames are there too, by agent_id
    ids = [a.agent_id for a in _call(addr, "ListAgents", query_pb2.ListAgentsRequest()).agents]
    assert ids == sorted(ids)
    assert {"lv", "p-top-a", "p-top-b", "real-agent"} <= set(ids)


INJECTIONS = [
    "x' OR '1'='1",
    "x}') OR 1=1 --",
    "idx] OR 1=1 --",
    "'; DROP TABLE series; --",
    "{label:String}",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injections_give_error_or_no_data(loaded, text):
    addr = loaded[0].addr
    bad = grpc.StatusCode.INVALID_ARGUMENT
    assert _error(addr, "ListLabelValues", query_pb2.ListLabelValuesRequest(label=text))[0] == bad
    assert (
        _error(addr, "ListLabelValues", query_pb2.ListLabelValuesRequest(metric=text, label="idx"))[0] == bad
    )
    bad_key = query_pb2.Matcher(label=text, value="x")
    assert (
        _error(addr, "ListLabelValues", query_pb2.ListLabelValuesRequest(label="idx", matchers=[bad_key]))[0]
        == bad
    )
    assert _error(addr, "TopProcesses", query_pb2.TopProcessesRequest(metric=text))[0] == bad
    assert _error(addr, "TopProcesses", query_pb2.TopProcessesRequest(matchers=[bad_key]))[0] == bad
    for op in (query_pb2.EQ, query_pb2.RE):
        value = query_pb2.Matcher(label="host", op=op, value=text)
        requests = [
            (
                "ListLabelValues",
                query_pb2.ListLabelValuesRequest(metric="lv.gauge", label="idx", matchers=[value]),
            ),
            ("TopProcesses", query_pb2.TopProcessesRequest(matchers=[value], window_ms=3_600_000)),
        ]
        for method, request in requests:
            try:
                resp = _call(addr, method, request)
            except grpc.RpcError as exc:  # a regex that does not compile
                assert (op, exc.code()) == (query_pb2.RE, bad)
            else:
                assert resp.ByteSize() == 0, resp
    # still serving, the data intact
    assert _values(addr, "idx", "lv.gauge") == (["0", "1", "2", "3", "4"], False)


def test_limits_answer_resource_exhausted_naming_the_limit(loaded):
    addr = loaded[0].addr
    code, details = _error(
        addr, "ListLabelValues", query_pb2.ListLabelValuesRequest(label="idx", limit=100_001)
    )
    assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "limit 100001 > 100000 allowed")
    code, details = _error(addr, "TopProcesses", query_pb2.TopProcessesRequest(limit=1001))
    assert (code, details) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "limit 1001 > 1000 allowed")
    code, details = _error(addr, "TopProcesses", query_pb2.TopProcessesRequest(window_ms=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "window -1 ms" in details


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_agents_all_formats(loaded, capsys):
    addr = loaded[0].addr
    wait_for(lambda: _cli(capsys, "agents", "--addr", addr, "--format", "json")[1].count("real-agent"))
    status, out, _ = _cli(capsys, "agents", "--addr", addr)
    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["AGENT", "HOST", "VERSION", "ADDRESS", "LAST", "SEEN", "LAG"]
    row = next(line.split() for line in lines if line.startswith("real-agent "))
    assert row[2] == AGENT_VERSION and row[3].startswith("127.0.0.1:") and row[4].endswith("Z")
    status, out, _ = _cli(capsys, "agents", "--addr", addr, "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert list(records[0]) == ["agent_id", "host", "version", "address", "last_seen_ms", "lag_ms"]
    assert {"lv", "p-top-a", "p-top-b", "real-agent"} <= {r["agent_id"] for r in records}
    status, out, _ = _cli(capsys, "agents", "--addr", addr, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0
    assert [r["agent_id"] for r in rows] == [r["agent_id"] for r in records]
    assert next(r for r in rows if r["agent_id"] == "real-agent")["version"] == AGENT_VERSION


def test_cli_top_all_formats(loaded, capsys):
    addr = loaded[0].addr
    base = ("top", "--addr", addr, "--host", "top-a", "--host", "top-b", "--limit", "2")
    status, out, _ = _cli(capsys, *base)
    assert status == 0
    assert [line.split()[:5] for line in out.splitlines()] == [
        ["HOST", "NAME", "PID", "GROUP", "CPU"],
        ["top-a", "java", "103", "app", "90%"],
        ["top-b", "python", "201", "app", "70%"],
    ]
    status, out, _ = _cli(capsys, *base, "--by", "memory", "--format", "json")
    records = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [(r["host"], r["name"], r["pid"], r["group"], r["value"]) for r in records] == [
        ("top-a", "java", "103", "app", 0.9e9),
        ("top-b", "python", "201", "app", 0.7e9),
    ]
    status, out, _ = _cli(capsys, *base, "--by", "memory", "--format", "csv")
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["host", "name", "pid", "group", "value", "time_ms"]
    assert [(r[1], float(r[4])) for r in rows[1:]] == [("java", 0.9e9), ("python", 0.7e9)]
    status, out, _ = _cli(capsys, "top", "--addr", addr, "--host", "top-a", "--by", "memory", "--limit", "1")
    assert out.splitlines()[1].split()[4:6] == ["858", "MiB"]  # 0.9e9 B in three significant digits
    assert _cli(capsys, "top", "--addr", addr, "--limit", "0")[0] == 2
    status, _, err = _cli(capsys, "top", "--addr", addr, "--limit", "5000")
    assert (status, err.strip()) == (1, "ferry top: RESOURCE_EXHAUSTED: limit 5000 > 1000 allowed")


def test_cli_series_label_all_formats(loaded, capsys):
    addr = loaded[0].addr
    status, out, _ = _cli(capsys, "series", 'lv.gauge{idx=~"[0-2]"}', "--label", "idx", "--addr", addr)
    assert (status, out) == (0, "IDX\n0\n1\n2\n")
    status, out, _ = _cli(capsys, "series", "--label", "host", "--addr", addr, "--format", "json")
    values = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert {"label": "host", "value": "lv-2"} in values and {"label": "host", "value": "top-b"} in values
    status, out, err = _cli(
        capsys, "series", "lv.gauge", "--label", "idx", "--limit", "2", "--addr", addr, "--format", "csv"
    )
    assert (status, out) == (0, "idx\n0\n1\n")
    assert "showing the first 2 values" in err
    status, _, err = _cli(capsys, "series", "--label", "bad label", "--addr", addr)
    assert status == 1 and "INVALID_ARGUMENT" in err
