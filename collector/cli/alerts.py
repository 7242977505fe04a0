"""`ferry alerts` and `ferry silence`: the collector's alert instances, their acknowledgement and
history, and silences, through its Alerts service (ferry.collector.alerting.service).

    ferry alerts [--state firing|pending|resolved|all]     instances, and rules not healthy (stderr)
    ferry alerts ack ID [--note TEXT]                      acknowledge a pending or firing instance
    ferry alerts history [--since DUR] [--state S]         transitions, newest first (S: also inactive)
    ferry silence add MATCHERS --for DUR [--comment TEXT]  e.g. '{alertname="HighCPU",host=~"web-.*"}'
    ferry silence list [--all]                             active and future ones (--all: ended too)
    ferry silence expire ID

The action is a positional word (`list` when left out), so every flag belongs to `ferry alerts`
or `ferry silence` itself and may come before or after it. Output is a table, json (one object
per line) or csv; `ferry.collector.cli.main` adds the parsers and runs them.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable, Sequence

import orjson

from ferry.collector.alerting.model import parse_matchers
from ferry.collector.cli import MAX_LIMIT, UsageError
from ferry.collector.cli.output import iso_ms, selector, table
from ferry.collector.cli.timeparse import duration_ms, instant_ms
from ferry.collector.cli.units import human_ms
from ferry.v1 import alerts_pb2, alerts_pb2_grpc

COMMANDS = ("alerts", "silence")
STATES = ("all", "firing", "pending", "resolved")
HISTORY_STATES = (*STATES, "inactive")  # a transition into inactive: pending whose condition ended
DAY_MS = 86_400_000
MAX_DURATION_MS = 3650 * DAY_MS  # --for and --since: 10 years, ferry.collector.alerting.service's limit
ALERT_FIELDS = (
    "id", "rule", "state", "severity", "value", "threshold", "labels", "annotations", "active_since_ms",
    "fired_at_ms", "resolved_at_ms", "acked_by", "acked_at_ms", "ack_note",
)  # fmt: skip
TRANSITION_FIELDS = (
    "time_ms", "rule", "id", "previous", "state", "value", "threshold", "severity", "labels", "annotations",
)  # fmt: skip
SILENCE_FIELDS = ("id", "matchers", "starts_ms", "ends_ms", "created_by", "comment")
SHOWN_ELSEWHERE = ("alertname", "severity")  # labels a table has columns for


def stub(channel) -> alerts_pb2_grpc.AlertsStub:
    return alerts_pb2_grpc.AlertsStub(channel)


def add_parsers(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `alerts` and `silence`; `common` adds --addr, the TLS/token flags, --format and --timeout."""
    a = sub.add_parser(
        "alerts",
        help="alert instances; `ack ID` acknowledges one, `history` lists transitions",
        usage="ferry alerts [list | ack ID | history] [flags]",
    )
    a.add_argument("action", nargs="?", default="list", choices=("list", "ack", "history"))
    a.add_argument("id", nargs="?", default="", metavar="ID", help="the instance to acknowledge (ack)")
    a.add_argument(
        "--state",
        choices=HISTORY_STATES,
        default="all",
        help="list, history: only these (default all; inactive: history only)",
    )
    a.add_argument("--note", default="", metavar="TEXT", help="ack: why, or what is being done")
    a.add_argument("--since", default="1d", metavar="DUR", help="history: this far back (default 1d)")
    a.add_argument("--limit", type=int, default=100, help="history: at most this many (default 100)")
    common(a)
    s = sub.add_parser(
        "silence",
        help="hold back notifications of matching alerts: add, list, expire",
        usage="ferry silence [list | add MATCHERS --for DUR | expire ID] [flags]",
    )
    s.add_argument("action", nargs="?", default="list", choices=("list", "add", "expire"))
    s.add_argument("target", nargs="?", default="", metavar="MATCHERS|ID", help="add: matchers; expire: id")
    s.add_argument("--for", dest="duration", default="", metavar="DUR", help="add: how long (e.g. 2h)")
    s.add_argument("--comment", default="", metavar="TEXT", help="add: why")
    s.add_argument("--all", action="store_true", help="list: also silences that ended")
    common(s)


def _only(action: str, given: dict[str, bool]) -> None:
    """UsageError for a flag that means nothing to `action`."""
    stray = [flag for flag, set_ in given.items() if set_]
    if stray:
        raise UsageError(f"{', '.join(stray)} does not apply to {action}")


def run_alerts(args, stub: alerts_pb2_grpc.AlertsStub) -> str:
    if args.action == "ack":
        if not args.id:
            raise UsageError("ack needs the ID of an alert (the ID column of `ferry alerts`)")
        _only("ack", {"--state": args.state != "all", "--since": args.since != "1d"})
        resp = stub.Ack(alerts_pb2.AckRequest(id=args.id, note=args.note), timeout=args.timeout)
        return _alerts([resp.alert], args.format, acked=True)
    if args.id:
        raise UsageError(f"unexpected {args.id!r}: only ack takes an ID")
    if args.action == "history":
        _only("history", {"--note": bool(args.note)})
        if not 1 <= args.limit <= MAX_LIMIT:
            raise UsageError(f"--limit {args.limit} must be between 1 and {MAX_LIMIT}")
        since = instant_ms(None) - _duration(args.since, "--since")
        req = alerts_pb2.HistoryRequest(
            since_ms=since, limit=args.limit, state="" if args.state == "all" else args.state
        )
        resp = stub.History(req, timeout=args.timeout)
        if len(resp.transitions) >= args.limit:
            print(
                f"ferry: showing the newest {args.limit} transitions; raise --limit for more", file=sys.stderr
            )
        return _transitions(resp.transitions, args.format)
    _only("list", {"--note": bool(args.note), "--since": args.since != "1d"})
    if args.state not in STATES:
        raise UsageError(f"--state {args.state} applies to history only (list: {', '.join(STATES)})")
    resp = stub.ListAlerts(alerts_pb2.ListAlertsRequest(state=args.state), timeout=args.timeout)
    for r in resp.rules:  # a rule that cannot say whether it fires is worth a line
        if r.health != "ok":
            print(f"ferry: rule {r.name}: {r.health}: {r.message}", file=sys.stderr)
    return _alerts(resp.alerts, args.format)


def run_silence(args, stub: alerts_pb2_grpc.AlertsStub) -> str:
    if args.action == "add":
        if not args.target:
            raise UsageError('add needs MATCHERS, e.g. \'{alertname="HighCPU",host=~"web-.*"}\'')
        if not args.duration:
            raise UsageError("add needs --for DUR: how long the silence lasts")
        _only("add", {"--all": args.all})
        try:
            parse_matchers(args.target)  # the service checks too: this says it before a call
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        ms = _duration(args.duration, "--for")
        req = alerts_pb2.AddSilenceRequest(matchers=args.target, duration_ms=ms, comment=args.comment)
        return _silences([stub.AddSilence(req, timeout=args.timeout).silence], args.format)
    if args.action == "expire":
        if not args.target:
            raise UsageError("expire needs the ID of a silence (the ID column of `ferry silence list`)")
        _only("expire", {"--for": bool(args.duration), "--comment": bool(args.comment), "--all": args.all})
        req = alerts_pb2.ExpireSilenceRequest(id=args.target)
        return _silences([stub.ExpireSilence(req, timeout=args.timeout).silence], args.format)
    if args.target:
        raise UsageError(f"unexpected {args.target!r}: list takes no argument")
    _only("list", {"--for": bool(args.duration), "--comment": bool(args.comment)})
    resp = stub.ListSilences(alerts_pb2.ListSilencesRequest(include_expired=args.all), timeout=args.timeout)
    return _silences(resp.silences, args.format)


def _duration(text: str, flag: str) -> int:
    """A flag's duration in ms, at most MAX_DURATION_MS (a request's int64 holds no more)."""
    try:
        ms = duration_ms(text, flag)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except OverflowError:  # more digits than a float holds
        ms = MAX_DURATION_MS + 1
    if ms > MAX_DURATION_MS:
        raise UsageError(f"{flag} {text}: more than the limit of {MAX_DURATION_MS // DAY_MS}d (10 years)")
    return ms


def _value(message) -> float | None:
    return message.value if message.has_value else None


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.6g}"


def _others(labels) -> str:
    """The labels a table has no column for, as a selector's braces."""
    return selector("", {k: v for k, v in labels.items() if k not in SHOWN_ELSEWHERE})


def alert_dict(a: alerts_pb2.AlertInstance) -> dict:
    out = {f: getattr(a, f) for f in ALERT_FIELDS if f not in ("value", "labels", "annotations")}
    return {**out, "value": _value(a), "labels": dict(a.labels), "annotations": dict(a.annotations)}


def _alerts(found: Sequence[alerts_pb2.AlertInstance], fmt: str, acked: bool = False) -> str:
    if fmt != "table":
        return _rows(ALERT_FIELDS, [alert_dict(a) for a in found], fmt)
    header = ("ID", "RULE", "STATE", "SEVERITY", "VALUE", "SINCE", "LABELS", "ACKED BY")
    return table(header, [_alert_row(a, acked) for a in found])


def _alert_row(a: alerts_pb2.AlertInstance, note: bool) -> tuple[str, ...]:
    since = a.fired_at_ms or a.active_since_ms
    by = a.acked_by + (f" ({_line(a.ack_note)})" if note and a.ack_note else "")
    return (
        a.id,
        a.rule,
        a.state,
        a.severity,
        _num(_value(a)),
        iso_ms(since) if since else "",
        _others(a.labels),
        by,
    )


def transition_dict(t: alerts_pb2.AlertTransition) -> dict:
    out = {f: getattr(t, f) for f in TRANSITION_FIELDS if f not in ("value", "labels", "annotations")}
    return {**out, "value": _value(t), "labels": dict(t.labels), "annotations": dict(t.annotations)}


def _transitions(found: Sequence[alerts_pb2.AlertTransition], fmt: str) -> str:
    if fmt != "table":
        return _rows(TRANSITION_FIELDS, [transition_dict(t) for t in found], fmt)
    header = ("TIME", "RULE", "ID", "TRANSITION", "VALUE", "THRESHOLD", "LABELS")
    return table(header, [_transition_row(t) for t in found])


def _transition_row(t: alerts_pb2.AlertTransition) -> tuple[str, ...]:
    change = f"{t.previous} -> {t.state}"
    return (iso_ms(t.time_ms), t.rule, t.id, change, _num(_value(t)), t.threshold, _others(t.labels))


def _silences(found: Sequence[alerts_pb2.Silence], fmt: str) -> str:
    if fmt != "table":
        return _rows(SILENCE_FIELDS, [{f: getattr(s, f) for f in SILENCE_FIELDS} for s in found], fmt)
    now = instant_ms(None)
    header = ("ID", "MATCHERS", "STARTS", "ENDS", "LEFT", "CREATED BY", "COMMENT")
    return table(header, [_silence_row(s, now) for s in found])


def _silence_row(s: alerts_pb2.Silence, now_ms: int) -> tuple[str, ...]:
    left = human_ms(s.ends_ms - now_ms) if s.ends_ms > now_ms else "ended"
    return (s.id, s.matchers, iso_ms(s.starts_ms), iso_ms(s.ends_ms), left, s.created_by, _line(s.comment))


def _line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _rows(fields: Sequence[str], rows: list[dict], fmt: str) -> str:
    if fmt == "json":
        return "".join(orjson.dumps(r).decode() + "\n" for r in rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    for r in rows:  # maps as JSON objects, a missing value empty
        w.writerow(
            orjson.dumps(r[f]).decode() if isinstance(r[f], dict) else "" if r[f] is None else r[f]
            for f in fields
        )
    return buf.getvalue()
