"""Hostile requests for an agent's Local service: bytes that are not Records, truncated Records,
records breaking each rule, too many records; with the answers docs/local-api.md allows."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ferry.v1 import local_pb2, payload_pb2
from tests.adversary.verdicts import IA, RE, Allowed

NOT_RECORDS: Allowed = ((IA, r"request of \d+ bytes is not a ferry.v1.Records"),)


@dataclass(frozen=True)
class LocalCase:
    klass: str
    request: bytes
    allowed: Allowed
    what: str = ""


def _poison() -> list[tuple[str, local_pb2.Records, str]]:
    now = int(time.time() * 1000)
    r, h = local_pb2.MetricRecord, local_pb2.HistogramRecord
    g = payload_pb2.GAUGE

    def one(**kw) -> local_pb2.Records:
        args = {"name": "adv.local", "kind": g, "value": 1.0}
        args.update(kw)
        return local_pb2.Records(metrics=[r(**args)])

    return [
        ("NaN", one(value=math.nan), r"value nan is not finite"),
        ("Inf", one(value=math.inf), r"value inf is not finite"),
        ("empty name", one(name=""), r"name is empty"),
        ("bad name", one(name="a b'; DROP"), r"does not match"),
        ("kind 0", one(kind=0), r"kind unspecified"),
        ("kind histogram", one(kind=payload_pb2.HISTOGRAM), r"kind"),
        ("old", one(time_unix_ms=now - 20 * 86_400_000), r"outside the accepted window"),
        ("future", one(time_unix_ms=now + 3_600_000), r"outside the accepted window"),
        ("unit 65 B", one(unit="u" * 65), r"unit is 65 bytes > 64 allowed"),
        ("33 labels", one(labels={f"k{i}": "v" for i in range(33)}), r"33 labels > 32 allowed"),
        ("label value 300 B", one(labels={"k": "v" * 300}), r"label value 300 bytes > 256"),
        ("label key", one(labels={"a-b": "v"}), r"does not match"),
        (
            "histogram counts",
            local_pb2.Records(histograms=[h(name="adv.h", bounds=[1.0], counts=[1])]),
            r"counts != 2",
        ),
        (
            "histogram bounds",
            local_pb2.Records(histograms=[h(name="adv.h", bounds=[2.0, 1.0], counts=[1, 1, 1])]),
            r"bucket bounds must be finite and strictly ascending",
        ),
        ("event type", local_pb2.Records(events=[payload_pb2.Event(type="")]), r"event 0: type is empty"),
        (
            "log level",
            local_pb2.Records(logs=[payload_pb2.LogRecord(level="", message="m")]),
            r"log 0: level is empty",
        ),
        (
            "10001 records",
            local_pb2.Records(metrics=[r(name="adv.local", kind=g, value=1.0)] * 10_001),
            r"10001 records in one request > 10000 allowed",
        ),
    ]


class LocalRequests:
    CLASSES = ("not Records", "truncated Records", "poison Records")

    def __init__(self, rng):
        self.rng = rng
        self.poison = [(what, rec.SerializeToString(), rx) for what, rec, rx in _poison()]
        good = local_pb2.Records(
            metrics=[
                local_pb2.MetricRecord(
                    name="adv.local", kind=payload_pb2.GAUGE, value=float(i), labels={"i": str(i)}
                )
                for i in range(5)
            ]
        )
        self.good = good.SerializeToString()

    def next(self) -> LocalCase:
        klass = self.rng.choice(self.CLASSES)
        if klass == "not Records":
            data = self.rng.choice(
                [b"\x0a\xff\xff\xff\xff\x0f", b"\xff" * 8, b"\x0a\x05ab", b"\x08" + b"\xff" * 11]
            )
            return LocalCase(klass, data, NOT_RECORDS, what=data.hex())
        if klass == "truncated Records":
            cut = self.good[: self.rng.randrange(1, len(self.good))]
            # cut at a record's end, the rest is a valid smaller request: taken
            return LocalCase(
                klass, cut, ((IA, r"."), ("OK", r"")), what=f"{len(cut)} of {len(self.good)} bytes"
            )
        what, data, rx = self.rng.choice(self.poison)
        code = RE if what == "10001 records" else IA
        return LocalCase(klass, data, ((code, rx),), what=what)
