"""`ferry <kind>` for each record kind of `ferry.records` (`ferry events`, `ferry logs`): search
stored records from the shell.

Each calls the collector's Search<Kind> (SearchEvents, SearchLogs) and prints the records newest
first, as a table, as json (one object per line) or as csv. `--count` prints only how many
records match. Flags, help and columns come from the kind's declaration.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ferry import records as record_kinds
from ferry.collector.cli import MAX_LIMIT, UsageError
from ferry.collector.cli.output import table
from ferry.collector.cli.timeparse import duration_ms, instant_ms
from ferry.collector.query import search
from ferry.v1 import query_pb2


@dataclass(frozen=True, eq=False)
class RecordKind:
    """One `ferry <kind>` command, from the kind's declaration (`ferry.records`)."""

    kind: record_kinds.RecordKind  # the declaration
    source: search.RecordTable  # what the collector searches: the keys --where takes, the fields

    @property
    def command(self) -> str:
        return self.kind.name

    @property
    def what(self) -> str:
        """The plural noun in messages."""
        return self.kind.what

    @property
    def shortcuts(self) -> dict[str, str]:
        """--flag → equals key."""
        return self.kind.shortcuts

    @property
    def table(self) -> tuple[str, ...]:
        """Table columns after TIME (the last one is not padded)."""
        return self.kind.table_columns

    @property
    def fields(self) -> tuple[str, ...]:
        """json/csv keys after time_unix_ns and time."""
        return self.source.select

    @property
    def where_help(self) -> str:
        return f"{', '.join(self.source.columns)}, {self.source.map_column}.KEY"


KINDS = {k.name: RecordKind(k, search.TABLES[k.name]) for k in record_kinds.KINDS}
EVENTS, LOGS = KINDS["events"], KINDS["logs"]


def add_parsers(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add a subcommand per record kind (`events`, `logs`); `common` adds --addr, --format and
    --timeout."""
    for kind in KINDS.values():
        p = sub.add_parser(kind.command, help=f"search stored {kind.what}, newest first")
        p.add_argument("--since", default="1h", metavar="DUR", help="range start, this long before --until")
        p.add_argument(
            "--until", default=None, metavar="TIME", help="range end: now, unix time, RFC 3339 or DUR ago"
        )
        p.add_argument(
            "--where",
            action="append",
            default=[],
            metavar="K=V",
            help=f"K equals V (repeatable); K: {kind.where_help}",
        )
        p.add_argument("--contains", default="", metavar="TEXT", help=kind.kind.contains_help)
        p.add_argument("--limit", type=int, default=100, help="most records to print (collector max 10000)")
        p.add_argument("--count", action="store_true", help="print only how many records match")
        p.add_argument(
            "--page-token",
            default="",
            metavar="TOKEN",
            help="the next (older) page, as a truncated answer gives",
        )
        for flag, key in kind.shortcuts.items():
            p.add_argument(f"--{flag}", dest=f"eq_{key}", metavar="V", help=f"same as --where {key}=V")
        common(p)


def _equals(args, kind: RecordKind) -> dict[str, str]:
    out: dict[str, str] = {}
    pairs = [*args.where]
    pairs += [
        f"{key}={getattr(args, f'eq_{key}')}" for key in kind.shortcuts.values() if getattr(args, f"eq_{key}")
    ]
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--where {pair!r} is not K=V")
        if out.get(key, value) != value:
            raise UsageError(f"{key} is given twice: {out[key]!r} and {value!r}")
        out[key] = value
    return out


def _request(args, kind: RecordKind):
    try:
        end_ms = instant_ms(args.until)
        start_ms = end_ms - duration_ms(args.since, "--since")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit {args.limit} must be between 1 and {MAX_LIMIT}")
    request_type = getattr(query_pb2, f"{kind.kind.rpc}Request")
    return request_type(
        start_unix_ns=start_ms * 1_000_000,
        end_unix_ns=end_ms * 1_000_000,
        equals=_equals(args, kind),
        contains=args.contains,
        limit=args.limit,
        count_only=args.count,
        page_token=args.page_token,
    )


def run(args, stub) -> str:
    """`ferry <kind>`: the kind is the command."""
    kind = KINDS[args.command]
    rpc = getattr(stub, kind.kind.rpc)
    return _run(args, kind, rpc(_request(args, kind), timeout=args.timeout))


def _run(args, kind: RecordKind, resp) -> str:
    if args.count:
        return count_text(resp.total, args.format)
    found = [record_dict(r) for r in getattr(resp, kind.command)]
    if resp.truncated:
        print(
            f"ferry {kind.command}: showing {len(found)} of {resp.total} matching {kind.what}; "
            f"the next (older) page: --page-token {resp.next_page_token}",
            file=sys.stderr,
        )
    return render(found, kind, args.format)


_BY_STORED = {k.kind.stored: k for k in KINDS.values()}


def record_dict(stored) -> dict:
    """A Stored<Noun> (StoredEvent, StoredLog) as one flat dict: the record's fields, maps as
    sorted dicts, an unset optional number (`has_<field>` false) as None."""
    kind = _BY_STORED[type(stored).DESCRIPTOR.name]
    numbers, record = kind.kind.optional_numbers, getattr(stored, kind.kind.noun)
    body = {}
    for name in kind.fields:
        if name in ("host", "agent_id"):
            continue
        value = getattr(record, name)
        if name in numbers:
            value = value if getattr(record, f"has_{name}") else None
        elif name == kind.kind.attributes:
            value = dict(sorted(value.items()))
        body[name] = value
    t = record.time_unix_ns
    return {"time_unix_ns": t, "time": iso_ns(t), "host": stored.host, "agent_id": stored.agent_id, **body}


def iso_ns(t_ns: int) -> str:
    seconds, ns = divmod(t_ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns:09d}Z"


def count_text(total: int, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps({"count": total}).decode() + "\n"
    if fmt == "csv":
        return f"count\n{total}\n"
    return f"{total}\n"


def _cell(value) -> str:
    """A value in csv or a table: maps as k=v pairs (json in csv), missing values empty."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render(records: list[dict], kind: RecordKind, fmt: str) -> str:
    keys = ("time_unix_ns", "time", *kind.fields)
    if fmt == "json":
        return "".join(orjson.dumps({k: r[k] for k in keys}).decode() + "\n" for r in records)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(keys)
        for r in records:
            w.writerow([orjson.dumps(r[k]).decode() if isinstance(r[k], dict) else _cell(r[k]) for k in keys])
        return buf.getvalue()
    header = ("TIME", *(c.upper() for c in kind.table))
    return table(
        header, [(r["time"], *(_cell(r[c]).replace("\n", "\\n") for c in kind.table)) for r in records]
    )
