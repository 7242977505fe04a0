"""`ferry agents`, `ferry top` and `ferry series --label L`: what is connected, what is busy, which
values a label takes.

They call the collector's ListAgents, TopProcesses and ListLabelValues and print a table, json
(one object per line) or csv. `ferry.collector.cli.main` adds the parsers and runs them.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections.abc import Callable, Sequence

import orjson

from ferry.collector.cli import MAX_LIMIT, UsageError
from ferry.collector.cli.output import iso_ms, table
from ferry.collector.cli.timeparse import duration_ms
from ferry.collector.cli.units import human, human_ms
from ferry.v1 import query_pb2

TOP_BY = {"cpu": "process.cpu.utilization", "memory": "process.memory.usage"}
AGENT_FIELDS = ("agent_id", "host", "version", "address", "last_seen_ms", "lag_ms")
PROCESS_FIELDS = ("host", "name", "pid", "group", "value", "time_ms")


def add_parsers(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `agents` and `top`; `common` adds --addr, --format and --timeout."""
    a = sub.add_parser("agents", help="agents that stream to the collector: version, address, lag")
    common(a)
    t = sub.add_parser("top", help="the busiest processes across hosts, by latest CPU or memory")
    t.add_argument("--by", choices=tuple(TOP_BY), default="cpu", help="rank by CPU (default) or memory")
    t.add_argument("--limit", type=int, default=10, help="how many processes (default 10)")
    t.add_argument("--host", action="append", default=[], metavar="H", help="only this host (repeatable)")
    t.add_argument("--window", default="5m", metavar="DUR", help="only values this recent (default 5m)")
    common(t)


def run_agents(args, stub) -> str:
    resp = stub.ListAgents(query_pb2.ListAgentsRequest(), timeout=args.timeout)
    rows = [[getattr(a, f) for f in AGENT_FIELDS] for a in resp.agents]
    if args.format != "table":
        return _records(AGENT_FIELDS, rows, args.format)
    header = ("AGENT", "HOST", "VERSION", "ADDRESS", "LAST SEEN", "LAG")
    return table(header, [(*r[:4], iso_ms(r[4]), human_ms(r[5])) for r in rows])


def run_top(args, stub) -> str:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit {args.limit} must be between 1 and {MAX_LIMIT}")
    try:
        window = duration_ms(args.window, "--window")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    req = query_pb2.TopProcessesRequest(metric=TOP_BY[args.by], limit=args.limit, window_ms=window)
    if len(args.host) == 1:
        req.matchers.add(label="host", op=query_pb2.EQ, value=args.host[0])
    elif args.host:
        req.matchers.add(label="host", op=query_pb2.RE, value="|".join(re.escape(h) for h in args.host))
    resp = stub.TopProcesses(req, timeout=args.timeout)
    rows = [[getattr(p, f) for f in PROCESS_FIELDS] for p in resp.processes]
    if args.format != "table":
        return _records(PROCESS_FIELDS, rows, args.format)
    header = ("HOST", "NAME", "PID", "GROUP", args.by.upper(), "TIME")
    units = [p.unit for p in resp.processes]
    return table(header, [(*r[:4], human(r[4], u), iso_ms(r[5])) for r, u in zip(rows, units, strict=True)])


def run_label_values(args, stub, metric: str, matchers) -> str:
    req = query_pb2.ListLabelValuesRequest(
        metric=metric, matchers=matchers, label=args.label, limit=args.limit
    )
    resp = stub.ListLabelValues(req, timeout=args.timeout)
    if resp.truncated:
        print(f"ferry: showing the first {args.limit} values; raise --limit for more", file=sys.stderr)
    if args.format == "json":
        return "".join(orjson.dumps({"label": args.label, "value": v}).decode() + "\n" for v in resp.values)
    if args.format == "csv":
        return _records((args.label,), [[v] for v in resp.values], "csv")
    return table((args.label.upper(),), [(v,) for v in resp.values])


def _records(fields: Sequence[str], rows: list[list], fmt: str) -> str:
    if fmt == "json":
        return "".join(orjson.dumps(dict(zip(fields, r, strict=True))).decode() + "\n" for r in rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    w.writerows([repr(c) if isinstance(c, float) else c for c in r] for r in rows)
    return buf.getvalue()
