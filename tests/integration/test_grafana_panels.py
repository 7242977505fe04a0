"""Every panel of the committed dashboards, run as Grafana's ClickHouse plugin would run it,
against a store a real collector and agent filled: a collector with an alert rule that fires, an
agent on a 1 s cycle, an app sending events and logs through it. Once the agent has stopped, a
few panels are cross-checked with the query service (the same range and step); then the
collector stops and every panel's SQL, expanded by tests/grafana/expand.py (macros and
variables, each as the plugin does it), runs on the store, and its result must have the shape
the panel draws: a time series `time`, its label columns and a number; a table its columns; a
stat one number. A panel over metrics the store holds must return rows."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ferry import transport
from ferry.client import Telemetry
from ferry.v1 import query_pb2, query_pb2_grpc
from grafana.dashboards import DASHBOARDS
from tests.grafana.expand import ALL, Var, expand
from tests.integration.procs import diagnose, start_agent, start_collector, wait_for
from tests.paths import ROOT

HOST = "grafana-it"
RULES = """
[[alerts]]
name = "MemoryInUse"
query = 'system.memory.usage{state="used"}'
agg = "max"
by = ["host"]
window = "2s"
condition = "> 0"
severity = "info"
"""
NUMERIC = ("Float", "Int", "UInt", "Nullable(Float", "Nullable(Int", "Nullable(UInt", "Decimal")


def _query_range(addr: str, metric: str, agg: str, start: int, end: int, step: int, by=(), **labels):
    matchers = [query_pb2.Matcher(label=k, op=query_pb2.EQ, value=v) for k, v in labels.items()]
    with transport.channel(addr) as ch:
        resp = query_pb2_grpc.QueryStub(ch).QueryRange(
            query_pb2.QueryRangeRequest(
                metric=metric,
                matchers=matchers,
                start_ms=start,
                end_ms=end,
                step_ms=step,
                agg=agg,
                group_by=list(by),
            ),
            timeout=20,
        )
    return {
        (t, *(s.labels[k] for k in by)): v
        for s in resp.series
        for t, v in zip(s.time_ms, s.value, strict=True)
    }


def _agents(addr: str) -> dict[str, str]:
    with transport.channel(addr) as ch:
        resp = query_pb2_grpc.QueryStub(ch).ListAgents(query_pb2.ListAgentsRequest(), timeout=10)
    return {a.agent_id: a.host for a in resp.agents}


def _run(store: Path, statements: dict[str, str]) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.grafana.runsql", f"chdb://{store}"],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """(store path, the range in ms, the query service's answers to compare with)."""
    workdir = tmp_path_factory.mktemp("grafana")
    rules = workdir / "rules.toml"
    rules.write_text(RULES)
    sock = workdir / "agent.sock"
    t0 = int(time.time() * 1000)
    collector = start_collector(workdir, "--rules", str(rules), "--alert-eval-interval", "500ms")
    agent = app = None
    try:
        agent = start_agent(workdir, collector.addr, "--interval", "1s", "--batch-max-age", "1s",
                            "--host", HOST, "--local-socket", str(sock))  # fmt: skip
        with diagnose(collector, agent):
            app = Telemetry(f"unix:{sock}")
            for i in range(3):
                app.event("signup", category="web", user_id=f"u{i}", service="shop")
                app.log("error" if i == 0 else "info", f"request {i}", service="shop")
            assert app.flush(10)
            # six host cycles: every counter has pairs in several 1 s buckets
            time.sleep(6.5)
            wait_for(lambda: _firing(collector.addr), timeout=20, what="MemoryInUse firing")
            app.close()
            app = None
            agent.stop()
            agent = None
            t1 = int(time.time() * 1000)
            # the range: whole seconds (Grafana's time filter is in seconds), covering every point
            # and every alert transition until the collector stops (well within 30 s)
            start, end = t0 // 1000 * 1000, (t1 // 1000 + 30) * 1000
            m_start, m_end = t0 // 60_000 * 60_000, (t1 // 60_000 + 1) * 60_000
            # the query service reads [start, end): end + 1 makes it `ts <= end`, as Grafana's filter
            expected = {
                "idle": _query_range(
                    collector.addr,
                    "system.cpu.utilization",
                    "avg",
                    start,
                    end + 1,
                    1000,
                    ("host",),
                    state="idle",
                ),
                "network": _query_range(
                    collector.addr,
                    "system.network.io",
                    "rate",
                    start,
                    end + 1,
                    1000,
                    ("device", "direction"),
                    host=HOST,
                ),
                "memory": _query_range(
                    collector.addr, "system.memory.usage", "avg", start, end + 1, 1000, ("state",), host=HOST
                ),
                "memory_1m": _query_range(
                    collector.addr,
                    "system.memory.usage",
                    "avg",
                    m_start,
                    m_end,
                    60_000,
                    ("state",),
                    host=HOST,
                ),
                "agents": _agents(collector.addr),
            }
    finally:
        if app is not None:
            app.close()
        if agent is not None:
            agent.stop()
        collector.stop()
    return workdir / "store", (start, end), (m_start, m_end), expected


def _firing(addr: str):
    from ferry.v1 import alerts_pb2, alerts_pb2_grpc

    with transport.channel(addr) as ch:
        alerts = alerts_pb2_grpc.AlertsStub(ch).ListAlerts(alerts_pb2.ListAlertsRequest(), timeout=10).alerts
    return any(a.state == "firing" for a in alerts)


def _dashboards() -> dict[str, dict]:
    return {
        d.uid: json.loads((ROOT / "grafana" / "dashboards" / f"{d.uid}.json").read_text()) for d in DASHBOARDS
    }


def _variables(board: dict, selection: str) -> dict[str, Var] | None:
    """The variables as Grafana holds them with HOST picked ("one") or All picked ("all"; None
    when the board's host variable takes one value only)."""
    out = {}
    for v in board["templating"]["list"]:
        if v["type"] == "constant":
            out[v["name"]] = Var(v["query"])
        elif v["name"] == "host":
            if not v["multi"]:
                if selection == "all":
                    return None
                out["host"] = Var(HOST, options=[HOST])
            else:  # a multi-value variable's current value is a list
                out["host"] = Var([HOST] if selection == "one" else [ALL], options=[HOST])
    return out


def _numeric(type_name: str) -> bool:
    return type_name.startswith(NUMERIC)


def _shape_errors(panel: dict, declared, result: dict) -> list[str]:
    """What is wrong with a panel's result, given the kind it is drawn as."""
    if "error" in result:
        return [result["error"][:600]]
    cols, types, rows = result["columns"], result["types"], result["rows"]
    kind = panel["type"]
    if kind == "timeseries":
        want = ["time", *declared.columns, "value"]
        errors = [] if cols == want else [f"columns {cols}, want {want}"]
        if not types[0].startswith("DateTime"):
            errors.append(f"time is {types[0]}")
        errors += [f"{c} is {t}" for c, t in zip(cols[1:-1], types[1:-1], strict=False) if "String" not in t]
        if not _numeric(types[-1]):
            errors.append(f"value is {types[-1]}")
        errors += [
            f"value {r[-1]!r} is not finite" for r in rows if r[-1] is None or not math.isfinite(r[-1])
        ]
        return errors
    if kind == "table":
        return [] if cols == list(declared.columns) else [f"columns {cols}, want {list(declared.columns)}"]
    # stat: one number
    if len(rows) != 1 or len(cols) != 1 or not _numeric(types[0]) or rows[0][0] is None:
        return [f"stat answered {cols} {types} {rows[:3]}"]
    return []


def test_every_panel_answers_in_its_shape(filled):
    store, (start, end), (m_start, m_end), expected = filled
    boards = _dashboards()
    declared = {(d.uid, p.title): p for d in DASHBOARDS for p in d.panels}
    statements: dict[str, str] = {}
    # which metrics the store holds at all: a panel reading one must return rows
    statements["held"] = "SELECT DISTINCT name FROM ferry.samples"
    for uid, board in boards.items():
        for selection in ("one", "all"):
            variables = _variables(board, selection)
            if variables is None:
                continue
            for v in board["templating"]["list"]:
                if v["type"] == "query":
                    statements[f"{uid}|${v['name']}|{selection}"] = expand(
                        v["query"]["rawSql"], variables, start, end, 1000
                    )
            for panel in board["panels"]:
                sql = panel["targets"][0]["rawSql"]
                intervals = (1000, 60_000) if panel["type"] == "timeseries" else (1000,)
                for interval in intervals:
                    a, b = (m_start, m_end) if interval == 60_000 else (start, end)
                    key = f"{uid}|{panel['title']}|{selection}|{interval}"
                    statements[key] = expand(sql, variables, a, b, interval)
    results = _run(store, statements)
    held = {r[0] for r in results.pop("held")["rows"]}

    problems = []
    checked = 0
    for key, result in results.items():
        uid, title, selection, *interval = key.split("|")
        if title.startswith("$"):
            values = [r[0] for r in result.get("rows", [])]
            if HOST not in values:
                problems.append(f"{key}: variable values {values[:5]}, no {HOST}")
            continue
        panel = next(p for p in boards[uid]["panels"] if p["title"] == title)
        decl = declared[(uid, title)]
        errors = _shape_errors(panel, decl, result)
        source_held = any(r in held for r in decl.reads) or not any("." in r for r in decl.reads)
        if source_held and "rows" in result and not result["rows"]:
            errors.append("no rows, though the store holds its data")
        problems += [f"{key}: {e}" for e in errors]
        checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 60, f"only {checked} panel runs"

    # the values, cross-checked with the query service over the same range and step
    def series(key: str, labels: int) -> dict[tuple, float]:
        return {(r[0], *r[1 : 1 + labels]): r[-1] for r in results[key]["rows"]}

    busy = series("ferry-fleet|CPU busy by host|all|1000", 1)
    assert busy and {k: 1 - v for k, v in expected["idle"].items()}.keys() == busy.keys()
    assert all(abs(busy[k] - (1 - v)) < 1e-12 for k, v in expected["idle"].items())
    _close(series("ferry-host|Network I/O|one|1000", 2), expected["network"])
    _close(series("ferry-host|Memory by state|one|1000", 1), expected["memory"])
    # whole minutes: the panel reads samples_1m, the query service picks its rollup too
    _close(series("ferry-host|Memory by state|one|60000", 1), expected["memory_1m"])
    agents = {r[0]: r[1] for r in results["ferry-fleet|Agents and their lag|all|1000"]["rows"]}
    assert agents == expected["agents"] == {"it-agent": HOST}
    # the rule fired; once the agent stopped its window held nothing, so it may have resolved
    now = {r[0]: r[2] for r in results["ferry-alerts|Alerts now|one|1000"]["rows"]}
    assert now.get("MemoryInUse") in ("firing", "resolved"), now
    changes = {(r[1], r[4]) for r in results["ferry-alerts|State changes|one|1000"]["rows"]}
    assert ("MemoryInUse", "firing") in changes, changes
    logs = results["ferry-events-logs|Logs|all|1000"]["rows"]
    assert sorted(r[4] for r in logs) == ["request 0", "request 1", "request 2"]
    levels = series("ferry-events-logs|Log records by level|one|1000", 1)
    assert sorted(v for (_, level), v in levels.items() if level == "error") == [1]


def _close(got: dict, want: dict) -> None:
    """The same buckets and groups, and the same values within float rounding (the sums are
    added in another order)."""
    assert want, "the query service answered nothing to compare with"
    assert got.keys() == want.keys(), (sorted(got)[:5], sorted(want)[:5])
    bad = {k: (got[k], v) for k, v in want.items() if not math.isclose(got[k], v, rel_tol=1e-9, abs_tol=1e-9)}
    assert not bad, bad
