"""OTLP rows → an `Intake`, through the Local service's own validator, keeping the good rows.

`ferry.agent.local.records.convert` is the one place app records are checked (the collector's
rules, `ferry.limits`), and it refuses a Local request whole at its first bad record. OTLP asks
for partial success instead, so: the rows of a request go to `convert` together, in requests of
at most `ferry.limits.MAX_RECORDS` (the common case, all good, costs one call); when one is
refused, each of its rows goes to `convert` alone, and the refused ones are reported with the
validator's message, renamed from "metric record 0" to the row's place in the OTLP request.
Called by ferry.agent.otlp.server on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ferry.agent.intake import Intake
from ferry.agent.local.records import KnownSeries, RecordError, convert
from ferry.limits import MAX_RECORDS, Limits, RecordLimits
from ferry.v1 import local_pb2

MAX_MESSAGES = 10  # refusals quoted in one error_message; the rest are counted


@dataclass
class Checked:
    intake: Intake = field(default_factory=Intake)
    accepted: list[Any] = field(default_factory=list)  # the rows taken, in order
    messages: list[str] = field(default_factory=list)  # one per refused row


def _records(field_name: str, rows: Sequence[Any]) -> local_pb2.Records:
    records = local_pb2.Records()
    getattr(records, field_name).extend(r.record for r in rows)
    return records


def _renamed(message: str, field_name: str, row: Any) -> str:
    """The validator's message with the row's own name ("metric 'x' data point 2") in place of
    its place in the one-record request ("metric record 0 ('x')")."""
    noun = {"metrics": "metric record 0", "histograms": "histogram record 0", "logs": "log 0"}[field_name]
    name = getattr(row.record, "name", None)
    for prefix in ((f"{noun} ({name[:40]!r})",) if name is not None else ()) + (noun,):
        if message.startswith(prefix):
            return row.where + message[len(prefix) :]
    return f"{row.where}: {message}"


def _merge(into: Intake, part: Intake) -> None:
    for name in into.__dataclass_fields__:
        getattr(into, name).extend(getattr(part, name))


def check(
    field_name: str,
    rows: Sequence[Any],
    now_ns: int,
    limits: Limits,
    record_limits: RecordLimits,
    known: KnownSeries,
    out: Checked,
) -> None:
    """Add to `out` the rows of one Records field ("metrics", "histograms", "logs") that pass."""
    for start in range(0, len(rows), MAX_RECORDS):
        chunk = rows[start : start + MAX_RECORDS]
        try:
            _merge(out.intake, convert(_records(field_name, chunk), now_ns, limits, record_limits, known))
            out.accepted.extend(chunk)
            continue
        except RecordError:
            pass
        for row in chunk:
            try:
                part = convert(_records(field_name, (row,)), now_ns, limits, record_limits, known)
            except RecordError as exc:
                out.messages.append(_renamed(str(exc), field_name, row))
                continue
            _merge(out.intake, part)
            out.accepted.append(row)


def error_message(refused: int, total: int, what: str, messages: Sequence[str]) -> str:
    """The partial-success message: how many of what were refused, and why (the first few)."""
    if not refused:
        return ""
    shown = "; ".join(messages[:MAX_MESSAGES])
    more = f"; and {len(messages) - MAX_MESSAGES} more" if len(messages) > MAX_MESSAGES else ""
    return f"{refused} of {total} {what} refused: {shown}{more}"
