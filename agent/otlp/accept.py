"""OTLP rows → Intakes, through the Local service's own validator, keeping the good rows.

`ferry.agent.local.records.convert` is the one place app records are checked (the collector's
rules, `ferry.limits`), and it refuses a Local request whole at its first bad record. OTLP asks
for partial success instead, so: the rows of a request go to `convert` together, in requests of
at most `ferry.limits.MAX_RECORDS` (the common case, all good, costs one call per 10,000 rows);
when one is refused, each of its rows goes to `convert` alone, and the refused ones are reported
with the validator's message, renamed from "metric record 0" to the row's place in the OTLP
request. Rows are taken from the mapping's iterator one chunk at a time and each chunk's Intake
is handed on (`take`) before the next is mapped, so a 4 MiB request of small points never holds
more than 10,000 rows in Python objects. Called by ferry.agent.otlp.server on its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ferry.agent.intake import Intake
from ferry.agent.local.records import KnownSeries, RecordError, convert
from ferry.limits import MAX_RECORDS, Limits, RecordLimits, ValidationError
from ferry.v1 import local_pb2

MAX_MESSAGES = 10  # refusals quoted in one error_message; the rest are counted
_NOUNS = {"metrics": "metric record 0", "histograms": "histogram record 0", "logs": "log 0"}

# what a chunk's accepted rows become: (their Intake, the bytes of their Local records, the rows)
Take = Callable[[Intake, int, list[Any]], None]


@dataclass
class Refusal:
    """What the mapping refuses before validation (a kind Ferry has no counterpart for)."""

    points: int  # data points or records refused
    message: str


def resource_refusal(
    index: int, labels: dict[str, str], points: int, what: str, check: Callable[[dict[str, str], str], None]
) -> Refusal | None:
    """One Refusal for the `points` (data points or log records) of the request's resource
    `index` when its own `labels` already break a limit that `check` (the validator's, raising
    ValidationError) applies to every row of it: checked once, instead of once per row after
    the resource's labels were copied onto each (1,000 attributes x 2,000 points of a 72 KB
    request made 2,000,000 labels)."""
    if not points:
        return None
    try:
        check(labels, f"resource {index} (its {points} {what})")
    except ValidationError as exc:
        return Refusal(points, str(exc))
    return None


@dataclass
class Tally:
    accepted: int = 0  # rows taken
    refused: int = 0  # data points or records refused
    reasons: int = 0  # refusals (a summary's points are one)
    messages: list[str] = field(default_factory=list)  # the first MAX_MESSAGES

    def refuse(self, points: int, message: str) -> None:
        self.refused += points
        self.reasons += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)

    def error_message(self, what: str) -> str:
        """The partial-success message: how many of what were refused, and why (the first few)."""
        if not self.refused:
            return ""
        more = self.reasons - len(self.messages)
        total = self.refused + self.accepted
        return (
            f"{self.refused} of {total} {what} refused: "
            + "; ".join(self.messages)
            + (f"; and {more} more" if more else "")
        )


def _records(rows: Sequence[Any]) -> local_pb2.Records:
    """Each row's `record` in the Records field its `field` names ("metrics", "histograms", "logs")."""
    records = local_pb2.Records()
    for row in rows:
        getattr(records, row.field).append(row.record)
    return records


def _renamed(message: str, row: Any) -> str:
    """The validator's message with the row's own name ("metric 'x' data point 2") in place of
    its place in the one-record request ("metric record 0 ('x')")."""
    noun = _NOUNS[row.field]
    name = getattr(row.record, "name", None)
    for prefix in ((f"{noun} ({name[:40]!r})",) if name is not None else ()) + (noun,):
        if message.startswith(prefix):
            return row.where + message[len(prefix) :]
    return f"{row.where}: {message}"


@dataclass(frozen=True)
class Rules:
    """What every row is checked by: the Local service's limits and its cache of checked series."""

    limits: Limits
    record_limits: RecordLimits
    known: KnownSeries

    def convert(self, records: local_pb2.Records) -> Intake:
        return convert(records, time.time_ns(), self.limits, self.record_limits, self.known)


def check(items: Iterable[Any], rules: Rules, take: Take) -> Tally:
    """Validate the rows of `items` (rows with `field`, `record` and `where`, and Refusals) a chunk
    at a time; each chunk's accepted rows go to `take`. Returns what was taken and refused."""
    tally = Tally()
    items = iter(items)
    while chunk := list(islice(items, MAX_RECORDS)):
        rows = []
        for item in chunk:
            if isinstance(item, Refusal):
                tally.refuse(item.points, item.message)
            else:
                rows.append(item)
        if rows:
            _check_chunk(rows, rules, take, tally)
    return tally


def _check_chunk(rows: list[Any], rules: Rules, take: Take, tally: Tally) -> None:
    records = _records(rows)
    try:
        intake = rules.convert(records)
    except RecordError:
        pass
    else:
        tally.accepted += len(rows)
        take(intake, records.ByteSize(), rows)
        return
    intake, accepted, size = Intake(), [], 0
    for row in rows:
        one = _records((row,))
        try:
            part = rules.convert(one)
        except RecordError as exc:
            tally.refuse(1, _renamed(str(exc), row))
            continue
        intake.extend(part)
        accepted.append(row)
        size += one.ByteSize()
    tally.accepted += len(accepted)
    if accepted:
        take(intake, size, accepted)
