"""What redaction at the source (ferry.agent.redact) costs the agent, per record and per series:
the figures quoted in docs/redaction.md.

Records: an app's log record (a 100-char message, 4 attributes) and event (3 properties), under
the defaults alone, under every built-in pattern and a custom regex with nothing to find, and
with something to find; beside them, what the Local service's validation (records.convert)
costs the same record. Series: what the batcher pays per series a frame takes (a cached
verdict), and a first sight. Wall time of this process, best of 5 runs.

    .venv/bin/python -m bench.redaction
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ferry.agent.intake import Intake
from ferry.agent.local.records import convert
from ferry.agent.redact.config import DEFAULT_KEYS
from ferry.agent.redact.rules import BUILTINS, Rule, RuleSet
from ferry.limits import Limits, RecordLimits
from ferry.series import GAUGE, SeriesDef
from ferry.v1 import local_pb2, payload_pb2

N = 20_000
KEY = b"bench-hash-key-0123456789"
DEFAULTS = [Rule(f"drop:{k}", "drop", (k,)) for k in DEFAULT_KEYS]
PATTERNS = [Rule(f"pattern:{p}", "mask", pattern=p) for p in BUILTINS] + [
    Rule("ssn", "mask", regex=r"\b\d{3}-\d{2}-\d{4}\b")
]
HASH_USER = [Rule("hash:user_id", "hash", ("user_id",))]


def _log(secret: bool) -> payload_pb2.LogRecord:
    message = (
        "payment by bob@example.com card 4111 1111 1111 1111 from 10.1.2.3 failed"
        if secret
        else "payment for order 81723 failed after 3 retries: upstream timeout (shop-eu)"
    )
    attrs = {"route": "/checkout", "status": "502", "attempt": "3", "region": "eu-west-1"}
    if secret:
        attrs["authorization"] = "Bearer abcdefgh12345678"
    return payload_pb2.LogRecord(level="error", message=message, service="shop", attributes=attrs)


def _event() -> payload_pb2.Event:
    props = {"user_id": "alice-42", "sku": "sku-1", "plan": "pro"}
    return payload_pb2.Event(type="purchase", category="shop", action="pay", properties=props)


def best(run: Callable[[], None], repeat: int = 5) -> float:
    """Seconds of the fastest of `repeat` runs."""
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        out.append(time.perf_counter() - t0)
    return min(out)


def per_record_us(rules: list[Rule], make: Callable[[], object], kind: str) -> float:
    rs = RuleSet(rules, KEY)
    batches = []

    def fresh() -> None:  # outside the timing: redaction edits records in place
        batches.clear()
        for _ in range(5):
            intake = Intake()
            getattr(intake, kind).extend(make() for _ in range(N))
            batches.append(intake)

    fresh()
    times = []
    for intake in batches:
        t0 = time.perf_counter()
        rs.records(intake)
        times.append(time.perf_counter() - t0)
    return min(times) / N * 1e6


def convert_us(make: Callable[[], object], kind: str) -> float:
    request = local_pb2.Records(**{kind: [make() for _ in range(1000)]})
    now = time.time_ns()
    limits = Limits()
    return best(lambda: convert(request, now, limits, RecordLimits())) / 1000 * 1e6


def per_series_us(rules: list[Rule]) -> tuple[float, float]:
    """(a series the rules already decided, a series seen for the first time), in us."""
    series = [
        SeriesDef("http.requests", GAUGE, "", (("host", "h"), ("route", f"/r{i}"), ("user_id", f"u{i}")))
        for i in range(N)
    ]

    def first_sight() -> None:
        fresh = RuleSet(rules, KEY)
        for s in series:
            fresh.series(s)

    cold = best(first_sight, 3) / N
    rs = RuleSet(rules, KEY)
    for s in series:
        rs.series(s)
    warm = best(lambda: [rs.series(s) for s in series]) / N
    return warm * 1e6, cold * 1e6


def main() -> None:
    rows = [
        ("log, defaults only, nothing to find", per_record_us(DEFAULTS, lambda: _log(False), "logs")),
        (
            "log, defaults + 4 built-ins + 1 regex, nothing to find",
            per_record_us(DEFAULTS + PATTERNS, lambda: _log(False), "logs"),
        ),
        (
            "log, same rules, email + card + ipv4 + authorization",
            per_record_us(DEFAULTS + PATTERNS, lambda: _log(True), "logs"),
        ),
        ("event, defaults + hash user_id", per_record_us(DEFAULTS + HASH_USER, _event, "events")),
        ("(validation of the same log: records.convert)", convert_us(lambda: _log(False), "logs")),
    ]
    warm, cold = per_series_us(DEFAULTS + HASH_USER)
    plain_warm, _ = per_series_us(DEFAULTS)
    rows += [
        ("series, defaults only (cached verdict)", plain_warm),
        ("series, hash user_id (cached verdict)", warm),
        ("series, hash user_id (first sight)", cold),
    ]
    for what, us in rows:
        print(f"{us:8.2f} us  {what}")


if __name__ == "__main__":
    main()
