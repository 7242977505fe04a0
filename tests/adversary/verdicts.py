"""What an answer was, what a case allows, and the tally of a run.

An answer is a name and a message: `OK` or `DUPLICATE` for an accepted frame or a call that
succeeded, else the gRPC status name (`INVALID_ARGUMENT`, ...), from a REJECTED ack's code or
the call's error. A case allows a set of (name, message regex) pairs, from docs/bad-input.md.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass

import grpc

from ferry.v1 import ingest_pb2

Allowed = tuple[tuple[str, str], ...]  # (answer name, regex searched in the message)

IA, RE, UN = "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "UNAVAILABLE"
DE, CA = "DEADLINE_EXCEEDED", "CANCELLED"
# a frame whose name and sizes pass reserves budget, so it may find the write queue full
BUSY: Allowed = ((RE, r"write queue full: \d+ bytes pending \+ \d+ for this frame > \d+ allowed"),)


def code_name(code: int) -> str:
    return next((s.name for s in grpc.StatusCode if s.value[0] == code), f"CODE_{code}")


def of_ack(ack: ingest_pb2.Ack) -> tuple[str, str]:
    if ack.status == ingest_pb2.REJECTED:
        return code_name(ack.code), ack.message
    return ingest_pb2.AckStatus.Name(ack.status), ack.message


def of_error(err: grpc.RpcError) -> tuple[str, str]:
    return err.code().name, err.details() or ""


@dataclass(frozen=True)
class Answer:
    klass: str
    name: str
    message: str


class Tally:
    """Answers counted by (class, name); the ones outside their case's allowed set kept whole
    (the first 50) for the failure message."""

    def __init__(self, seed: int):
        self.seed = seed
        self.counts: Counter[tuple[str, str]] = Counter()
        self.bad: list[tuple[str, str, str, str]] = []
        self.bad_count = 0
        self._lock = threading.Lock()

    def record(self, klass: str, answer: tuple[str, str], allowed: Allowed, what: str = "") -> bool:
        name, message = answer
        ok = any(name == n and re.search(pattern, message, re.S) for n, pattern in allowed)
        with self._lock:
            self.counts[(klass, name)] += 1
            if not ok:
                self.bad_count += 1
                if len(self.bad) < 50:
                    self.bad.append((klass, name, message[:300], what[:200]))
        return ok

    def total(self, prefix: str = "") -> int:
        return sum(n for (k, _), n in self.counts.items() if k.startswith(prefix))

    def by_class(self, prefix: str = "") -> dict[str, int]:
        out: Counter[str] = Counter()
        for (k, _), n in self.counts.items():
            if k.startswith(prefix):
                out[k] += n
        return dict(sorted(out.items()))

    def report(self, prefix: str = "") -> str:
        lines = []
        for klass, n in self.by_class(prefix).items():
            names = ", ".join(f"{name} {c}" for (k, name), c in sorted(self.counts.items()) if k == klass)
            lines.append(f"  {klass:28s} {n:6d}  ({names})")
        return "\n".join(lines)

    def failures(self) -> str:
        rows = "\n".join(f"  [{k}] {n}: {msg!r} <- {what}" for k, n, msg, what in self.bad)
        return f"{self.bad_count} answers outside the documented statuses (seed {self.seed}):\n{rows}"
