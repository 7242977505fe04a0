"""`ferry`: ask the collector's Query service from the shell, or send a record to a local agent.

`query` and `series` live here; one command per record kind (`events`, `logs`) in
`ferry.collector.cli.records`; `agents`, `top` and `series --label` in
`ferry.collector.cli.listing`, `send` in `ferry.collector.cli.send`, `alerts` and `silence` (the
Alerts service) in `ferry.collector.cli.alerts`.

Exit status: 0 ok, 1 server or data error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import grpc

from ferry import transport
from ferry.collector.cli import UsageError, alerts, connection, listing, output, records, send
from ferry.collector.cli.expr import ExprError, parse
from ferry.collector.cli.timeparse import auto_step_ms, duration_ms, instant_ms
from ferry.collector.query import arith
from ferry.collector.query.exprparse import MAX_K
from ferry.collector.query.resolution import NAMES as RESOLUTION_NAMES
from ferry.collector.query.sql import AGGREGATIONS, CLIENT_MAX_RECEIVE_BYTES, QueryError
from ferry.v1 import query_pb2, query_pb2_grpc

DEFAULT_ADDR = os.environ.get("FERRY_ADDR", "127.0.0.1:4770")
FORMATS = ("table", "json", "csv")
AGGS = AGGREGATIONS  # the Query service's own list, so the two cannot disagree
# an expression's start: `rate(`, `sum by (` (PromQL's order, which the parser explains), `topk(`
_CALL = re.compile(rf"\s*(?:{'|'.join(AGGS)}|topk|bottomk)\s*(?:\(|by\s*\()")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ferry", description="Query Ferry's collector.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--addr",
            default=DEFAULT_ADDR,
            metavar="HOST:PORT",
            help=f"collector address (default {DEFAULT_ADDR}; env FERRY_ADDR)",
        )
        connection.add_arguments(sp)
        sp.add_argument("--format", choices=FORMATS, default="table")
        sp.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer")

    q = sub.add_parser(
        "query",
        help="points of the series matching EXPR, or of an expression of aggregated queries, over a range",
    )
    q.add_argument(
        "expr",
        metavar="EXPR",
        help='a selector name{label="v",l2=~"re",l3!="x"}, or an expression of AGG(SELECTOR) by (L1, L2) '
        "operands and numbers with + - * / and parentheses, e.g. "
        "'rate(http.errors) by (service) / rate(http.requests) by (service) * 100'",
    )
    q.add_argument("--since", default="1h", metavar="DUR", help="range start, this long before --until")
    q.add_argument(
        "--until", default=None, metavar="TIME", help="range end: now, unix time, RFC 3339 or DUR ago"
    )
    q.add_argument("--step", default=None, metavar="DUR", help="bucket width (default: about 240 buckets)")
    q.add_argument(
        "--agg",
        default=None,
        choices=AGGS,
        help="aggregation within each bucket (default avg; not with an expression)",
    )
    q.add_argument(
        "--by", default=None, metavar="L1,L2", help="group series by these labels (not with an expression)"
    )
    q.add_argument("--topk", type=int, default=None, metavar="N", help="per step, only the N highest groups")
    q.add_argument(
        "--bottomk", type=int, default=None, metavar="N", help="per step, only the N lowest groups"
    )
    q.add_argument(
        "--resolution",
        default="auto",
        choices=("auto", *RESOLUTION_NAMES),
        help="raw samples or a rollup (auto: the coarsest rollup that fits the step)",
    )
    common(q)

    s = sub.add_parser("series", help="series matching EXPR (default: all)")
    s.add_argument("expr", metavar="EXPR", nargs="?", default="")
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--label", default="", metavar="L", help="list the values label L takes instead")
    common(s)
    records.add_parsers(sub, common)
    listing.add_parsers(sub, common)
    alerts.add_parsers(sub, common)
    send.add_parser(sub)
    return p


def run_query(args, stub) -> str:
    sel, expr = _query_form(args.expr)
    try:
        end = instant_ms(args.until)
        start = end - duration_ms(args.since, "--since")
        step = duration_ms(args.step, "--step") if args.step else auto_step_ms(end - start)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # whole buckets at both ends (buckets are multiples of the step since the epoch), which also
    # lets a rollup answer when the step is a multiple of its resolution
    start, end = start // step * step, -(-end // step) * step
    for flag, k in (("--topk", args.topk), ("--bottomk", args.bottomk)):
        if k is not None and not 1 <= k <= MAX_K:
            raise UsageError(f"{flag} {k} must be between 1 and {MAX_K}")
    if args.topk is not None and args.bottomk is not None:
        raise UsageError("--topk and --bottomk: give one of them")
    req = query_pb2.QueryRangeRequest(
        start_ms=start,
        end_ms=end,
        step_ms=step,
        resolution="" if args.resolution == "auto" else args.resolution,
        topk=args.topk or 0,
        bottomk=args.bottomk or 0,
    )
    if expr is not None:
        given = [f for f, v in (("--agg", args.agg), ("--by", args.by)) if v is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} apply to a selector, not to an expression: "
                "write AGG(SELECTOR) by (L1, L2) in it"
            )
        if expr.top is not None and (args.topk or args.bottomk):
            raise UsageError(
                f"{'--topk' if args.topk else '--bottomk'} and {expr.which}k(...) in the expression: give one"
            )
        req.expr = args.expr
    else:
        req.metric = sel.metric
        req.matchers.extend(sel.matchers)
        req.agg = args.agg or "avg"
        req.group_by.extend(b.strip() for b in (args.by or "").split(",") if b.strip())
    return output.range_result(stub.QueryRange(req, timeout=args.timeout), args.format)


def _query_form(text: str):
    """(selector, None) for a selector, (None, Expr) for an expression; UsageError pointing at
    the column when it is neither. Text that parses as a selector is one (a metric name may
    hold . - :). Otherwise the expression parser's error is shown when the text is meant as an
    expression: that parser got further, or the selector stopped (at its start, or after a
    name) at an operator, a parenthesis or a number (`1 + 2`, `(rate(x))`, `up / 2`), or the
    text starts as an aggregation's call."""
    try:
        return parse(text, require_name=True), None
    except ExprError as exc:
        sel_err = exc
    try:
        return None, arith.parse(text)
    except QueryError as exc:
        expr_err = exc
    at = sel_err.column
    stopped = at == 0 or str(sel_err).startswith("unexpected")
    meant = (stopped and text[at : at + 1] in tuple("+-*/().0123456789")) or bool(_CALL.match(text))
    if isinstance(expr_err, arith.ExprSyntaxError):
        if meant or expr_err.column - 1 > at:
            pointer = f"  {text}\n  {' ' * (expr_err.column - 1)}^ {expr_err.reason}"
            raise UsageError(f"bad expression at column {expr_err.column}:\n{pointer}")
    elif meant:  # over a bound, or no query in it
        raise UsageError(str(expr_err))
    raise UsageError(f"bad expression at column {at + 1}:\n{sel_err.pointer()}")


def run_series(args, stub) -> str:
    sel = _selector(args.expr, require_name=False) if args.expr else None
    if args.label:
        return listing.run_label_values(args, stub, sel.metric if sel else "", sel.matchers if sel else [])
    req = query_pb2.ListSeriesRequest(
        metric=sel.metric if sel else "", matchers=sel.matchers if sel else [], limit=args.limit
    )
    resp = stub.ListSeries(req, timeout=args.timeout)
    text = output.series_list(resp, args.format)
    if resp.truncated:
        print(f"ferry: showing the first {args.limit} series; raise --limit for more", file=sys.stderr)
    return text


def _selector(text: str, require_name: bool):
    try:
        return parse(text, require_name=require_name)
    except ExprError as exc:
        raise UsageError(f"bad expression at column {exc.column + 1}:\n{exc.pointer()}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "query": run_query,
        "series": run_series,
        **dict.fromkeys(records.KINDS, records.run),  # `ferry events`, `ferry logs`
        "agents": listing.run_agents,
        "top": listing.run_top,
        "alerts": alerts.run_alerts,
        "silence": alerts.run_silence,
    }
    try:
        if args.command == "send":
            text = send.run_send(args)
        else:
            endpoint = connection.endpoint(args, max_receive_bytes=CLIENT_MAX_RECEIVE_BYTES)
            with transport.channel(endpoint) as channel:
                stub = alerts.stub if args.command in alerts.COMMANDS else query_pb2_grpc.QueryStub
                text = commands[args.command](args, stub(channel))
    except (UsageError, send.LabelError) as exc:
        print(f"ferry {args.command}: {exc}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"ferry {args.command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
