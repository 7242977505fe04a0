"""Hostile Query calls by class, each with the answers docs/bad-input.md allows for it.

A case is a method, the request's bytes (so that values no client would send, such as a
negative limit, can be sent), the deadline, when to cancel it, and an `ok_check` that an OK
answer must pass (an injection that answers OK must not have widened what matched).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ferry.v1 import query_pb2
from tests.adversary.verdicts import CA, DE, IA, RE, Allowed
from tests.framegen import varint

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
DAY_MS = 86_400_000
RESPONSES = {
    "QueryRange": query_pb2.QueryRangeResponse,
    "ListSeries": query_pb2.ListSeriesResponse,
    "ListLabelValues": query_pb2.ListLabelValuesResponse,
    "ListAgents": query_pb2.ListAgentsResponse,
    "TopProcesses": query_pb2.TopProcessesResponse,
    "SearchEvents": query_pb2.SearchEventsResponse,
    "SearchLogs": query_pb2.SearchLogsResponse,
}
# a deadline is the client's: whatever the call, it may pass first (the machine is loaded)
ANY_OK: Allowed = (("OK", r""), (DE, r""))
REFUSED: Allowed = ((IA, r"."), (RE, r"."), (DE, r""))

INJECTIONS = (
    "' OR 1=1 --",
    "x') OR ('1'='1",
    "ferry_synthetic'; DROP TABLE ferry.samples; --",
    "ferry_synthetic\\' OR 1=1 --",
    "{metric:String}",
    "{v0:String}) OR (1",
    "`samples`",
    '"; SELECT * FROM system.users; --',
    "ferry_synthetic UNION ALL SELECT name FROM system.tables",
    "\x00",
    "ferry_synthetic\x00' OR 1=1",
    "%s%s%s%n",
    "../../etc/passwd",
    "ünïcødé ☃",
    "\\",
    "$(reboot)",
    "ferry_synthetic /*",
    "*/ 1=1",
    "' || sleep(3) || '",
    "\r\n",
)
REGEXES = (
    "(",
    "[",
    "*",
    "(?P<x",
    "a{99999}",
    "(a|a)*b",
    "(a+)+$",
    ".*.*.*.*.*.*.*.*=.*",
    "(?i).*",
    "\\",
    "x') OR 1=1 --",
    ".{0,1000}{0,1000}",
    "\\p{Zzzz}",
    "(?<=a)b",
    "a" * 10_000,
    "(" * 500 + ")" * 500,
)


@dataclass(frozen=True)
class QueryCase:
    klass: str
    method: str
    request: bytes
    allowed: Allowed
    timeout: float = 60.0
    cancel_after: float | None = None
    ok_check: Callable[[object], str | None] | None = None  # a reason when an OK answer is wrong
    what: str = ""


def _nothing(resp) -> str | None:
    n = len(getattr(resp, "series", ())) + len(getattr(resp, "values", ()))
    n += len(getattr(resp, "events", ())) + len(getattr(resp, "logs", ())) + getattr(resp, "total", 0)
    return f"an injection matched {n} entries" if n else None


class Queries:
    """Hostile queries against `metric` (a metric the store holds, with label `label`)."""

    CLASSES = (
        "injection",
        "absurd range",
        "huge matchers",
        "unknown agg",
        "bad limit",
        "garbage page token",
        "tiny deadline",
        "cancel mid-query",
        "not a request",
    )
    # the huge matchers cost the store a second or more each: fewer of them, like the bombs
    WEIGHTS = (1, 1, 0.3, 1, 1, 1, 1, 1, 0.3)

    def __init__(self, rng, metric: str = "ferry_synthetic", label: str = "shard"):
        self.rng = rng
        self.metric, self.label = metric, label

    def next(self) -> QueryCase:
        klass = self.rng.choices(self.CLASSES, self.WEIGHTS)[0]
        return getattr(self, "_" + klass.replace(" ", "_").replace("-", "_"))(klass)

    def _now(self) -> int:
        return int(time.time() * 1000)

    def _range(self, **kw) -> query_pb2.QueryRangeRequest:
        end = self._now() + 60_000
        args = {"metric": self.metric, "start_ms": end - 3_600_000, "end_ms": end, "step_ms": 60_000}
        args.update(kw)
        return query_pb2.QueryRangeRequest(**args)

    def _injection(self, klass: str) -> QueryCase:
        bad = self.rng.choice(INJECTIONS)
        if self.rng.random() < 0.2:  # long enough that a message echoing it whole overflows a header
            bad *= 10_000 // len(bad)
        rng, m = self.rng, query_pb2.Matcher
        where = rng.randrange(12)
        if where == 0:  # the metric name is checked: never valid with these characters
            return QueryCase(
                klass,
                "QueryRange",
                self._range(metric=bad).SerializeToString(),
                ((IA, r"metric name|does not match|is empty"), (DE, r"")),
                what=f"metric {bad!r}",
            )
        if where == 1:
            req = self._range(matchers=[m(label=bad, op=rng.randrange(4), value="0")])
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ((IA, r"label name"), (DE, r"")),
                what=f"matcher label {bad!r}",
            )
        if where == 2:  # a value is bound as a parameter: it matches no series
            req = self._range(matchers=[m(label=self.label, op=query_pb2.EQ, value=bad)])
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ANY_OK,
                ok_check=_nothing,
                what=f"matcher value {bad!r}",
            )
        if where == 3:
            req = self._range(matchers=[m(label=self.label, op=query_pb2.RE, value=bad)])
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ((IA, r"."), *ANY_OK),
                ok_check=_nothing,
                what=f"regex {bad!r}",
            )
        if where == 4:
            return QueryCase(
                klass,
                "QueryRange",
                self._range(agg=bad).SerializeToString(),
                ((IA, r"aggregation .* is not one of"), (DE, r"")),
                what=f"agg {bad!r}",
            )
        if where == 5:
            return QueryCase(
                klass,
                "QueryRange",
                self._range(group_by=[bad]).SerializeToString(),
                ((IA, r"group-by label"), (DE, r"")),
                what=f"group_by {bad!r}",
            )
        if where == 6:
            return QueryCase(
                klass,
                "QueryRange",
                self._range(resolution=bad).SerializeToString(),
                ((IA, r"resolution"), (DE, r"")),
                what=f"resolution {bad!r}",
            )
        if where == 7:
            req = query_pb2.ListSeriesRequest(metric=bad)
            return QueryCase(
                klass,
                "ListSeries",
                req.SerializeToString(),
                ((IA, r"."), *ANY_OK),
                ok_check=_nothing,
                what=f"ListSeries metric {bad!r}",
            )
        if where == 8:
            req = query_pb2.ListSeriesRequest(matchers=[m(label=self.label, op=query_pb2.EQ, value=bad)])
            return QueryCase(
                klass,
                "ListSeries",
                req.SerializeToString(),
                ANY_OK,
                ok_check=_nothing,
                what=f"ListSeries matcher value {bad!r}",
            )
        if where == 9:
            req = query_pb2.ListLabelValuesRequest(label=bad, metric=self.metric)
            return QueryCase(
                klass,
                "ListLabelValues",
                req.SerializeToString(),
                ((IA, r"label name"), (DE, r"")),
                what=f"label {bad!r}",
            )
        method = rng.choice(["SearchEvents", "SearchLogs"])
        cls = query_pb2.SearchEventsRequest if method == "SearchEvents" else query_pb2.SearchLogsRequest
        if where == 10:
            key = rng.choice([bad, "properties." + bad, "attributes." + bad, "type OR 1=1"])
            req = cls(equals={key: "x"})
            return QueryCase(
                klass,
                method,
                req.SerializeToString(),
                ((IA, r"."), *ANY_OK),
                ok_check=_nothing,
                what=f"equals key {key!r}",
            )
        req = cls(contains=bad, equals={"host": bad})
        return QueryCase(
            klass, method, req.SerializeToString(), ANY_OK, ok_check=_nothing, what=f"contains {bad!r}"
        )

    def _absurd_range(self, klass: str) -> QueryCase:
        rng, now = self.rng, self._now()
        choice = rng.randrange(8)
        if choice == 0:  # step 1 ms over 30 days
            req = self._range(start_ms=now - 30 * DAY_MS, end_ms=now, step_ms=1)
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ((IA, r"buckets > \d+ allowed"), (DE, r"")),
                what="step 1 ms over 30 days",
            )
        if choice == 1:
            start, end = rng.choice(
                [
                    (INT64_MIN, INT64_MAX),
                    (0, INT64_MAX),
                    (INT64_MIN, 0),
                    (INT64_MAX - 1, INT64_MAX),
                    (INT64_MIN, INT64_MIN + 1),
                ]
            )
            step = rng.choice([1, 1000, INT64_MAX, 2**62])
            req = self._range(start_ms=start, end_ms=end, step_ms=step)
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                REFUSED + ANY_OK,
                what=f"[{start}, {end}) step {step}",
            )
        if choice == 2:
            step = rng.choice([0, -1, -60_000, INT64_MIN])
            req = self._range(step_ms=step)
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ((IA, r"step .* must be > 0"), (DE, r"")),
                what=f"step {step}",
            )
        if choice == 3:
            req = self._range(start_ms=now, end_ms=now - rng.choice([0, 1, DAY_MS]))
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                ((IA, r"must be after start"), (DE, r"")),
                what="end before start",
            )
        if choice == 4:  # a range with no data: the 1970s, far future; in 11,000 buckets
            start = rng.choice([0, 1, now + 100 * 365 * DAY_MS, -now])
            req = self._range(
                start_ms=start,
                end_ms=start + 10_999 * 1000,
                step_ms=1000,
                agg=rng.choice(["p99", "avg", "rate", "increase", "last"]),
            )
            return QueryCase(
                klass,
                "QueryRange",
                req.SerializeToString(),
                REFUSED + ANY_OK,
                what=f"11k buckets from {start}",
            )
        if choice == 5:
            start, end = rng.choice([(INT64_MIN, INT64_MAX), (-5, -1), (INT64_MAX - 5, INT64_MAX), (5, 1)])
            req = query_pb2.ListLabelValuesRequest(label=self.label, start_ms=start, end_ms=end)
            return QueryCase(
                klass,
                "ListLabelValues",
                req.SerializeToString(),
                REFUSED + ANY_OK,
                what=f"label values [{start}, {end})",
            )
        if choice == 6:
            method = rng.choice(["SearchEvents", "SearchLogs"])
            cls = query_pb2.SearchEventsRequest if method == "SearchEvents" else query_pb2.SearchLogsRequest
            start, end = rng.choice(
                [
                    (INT64_MIN, INT64_MAX),
                    (-1, 0),
                    (INT64_MAX, INT64_MAX),
                    (0, INT64_MAX),
                    (5, 1),
                    (INT64_MIN, -1),
                ]
            )
            req = cls(start_unix_ns=start, end_unix_ns=end)
            return QueryCase(
                klass, method, req.SerializeToString(), REFUSED + ANY_OK, what=f"{method} [{start}, {end})"
            )
        window = rng.choice([-1, INT64_MIN, INT64_MAX, 2**40, 1])
        req = query_pb2.TopProcessesRequest(window_ms=window)
        return QueryCase(
            klass, "TopProcesses", req.SerializeToString(), REFUSED + ANY_OK, what=f"top window {window}"
        )

    def _huge_matchers(self, klass: str) -> QueryCase:
        rng, m = self.rng, query_pb2.Matcher
        choice = rng.randrange(5)
        if choice == 0:
            n = rng.choices([10, 100, 1000, 5000], [10, 5, 1, 0.2])[0]
            ms = [m(label=f"l{i}", op=rng.randrange(4), value=f"v{i}") for i in range(n)]
            what = f"{n} matchers"
        elif choice == 1:
            size = rng.choices([10_000, 100_000, 1_000_000], [10, 3, 0.3])[0]
            ms = [m(label=self.label, op=rng.choice([query_pb2.EQ, query_pb2.NEQ]), value="v" * size)]
            what = f"a {size} B value"
        elif choice == 2:
            regex = rng.choice(REGEXES)
            ms = [m(label=self.label, op=rng.choice([query_pb2.RE, query_pb2.NRE]), value=regex)]
            what = f"regex {regex[:30]!r}"
        elif choice == 3:
            size = rng.choices([10_000, 100_000, 1_000_000], [10, 3, 0.3])[0]
            ms = [m(label=self.label, op=query_pb2.RE, value="|".join(["a" * 9] * (size // 10)))]
            what = f"a {size} B alternation"
        else:
            n = rng.choices([5, 50], [10, 1])[0]
            ms = [m(label=self.label, op=query_pb2.RE, value=r) for r in REGEXES[5:9]] * n
            what = f"{4 * n} slow regexes"
        if rng.random() < 0.5:
            return QueryCase(
                klass, "QueryRange", self._range(matchers=ms).SerializeToString(), REFUSED + ANY_OK, what=what
            )
        req = query_pb2.ListSeriesRequest(metric=rng.choice(["", self.metric]), matchers=ms)
        return QueryCase(klass, "ListSeries", req.SerializeToString(), REFUSED + ANY_OK, what=what)

    def _unknown_agg(self, klass: str) -> QueryCase:
        agg = self.rng.choice(
            [
                "p100",
                "median",
                "AVG",
                "p99.9",
                "quantile(0.5)",
                "sum)",
                "p0",
                "p-1",
                "avg ",
                " avg",
                "count(*)",
                "p50;",
                "stddev",
                "x" * 10_000,
            ]
        )
        return QueryCase(
            klass,
            "QueryRange",
            self._range(agg=agg).SerializeToString(),
            ((IA, r"aggregation .* is not one of"), (DE, r"")),
            what=f"agg {agg[:20]!r}",
        )

    def _bad_limit(self, klass: str) -> QueryCase:
        rng = self.rng
        # (method, field number of limit, request without it, the limit's cap)
        method, field, cls, cap = rng.choice(
            [
                ("ListSeries", 3, query_pb2.ListSeriesRequest, 100_000),
                ("ListLabelValues", 4, query_pb2.ListLabelValuesRequest, 100_000),
                ("TopProcesses", 2, query_pb2.TopProcessesRequest, 1_000),
                ("SearchEvents", 5, query_pb2.SearchEventsRequest, 10_000),
                ("SearchLogs", 5, query_pb2.SearchLogsRequest, 10_000),
            ]
        )
        base = cls(label=self.label) if method == "ListLabelValues" else cls()
        value = rng.choice([-1, -(2**31), 2**32 - 1, cap + 1, 2**31, 0])
        # a negative limit as a client of another language sends it: a 10-byte varint of the
        # two's complement (uint32 reads its low 32 bits)
        raw = base.SerializeToString() + bytes([field << 3]) + varint(value % 2**64)
        if value == 0:
            return QueryCase(klass, method, raw, (*ANY_OK, (RE, r".")), what="limit 0")
        return QueryCase(
            klass, method, raw, ((RE, r"limit \d+ > \d+ allowed"), (DE, r"")), what=f"limit {value}"
        )

    def _garbage_page_token(self, klass: str) -> QueryCase:
        rng = self.rng
        token = rng.choice(
            [
                "garbage",
                ":",
                "1:",
                ":1",
                "-1:0",
                "1:-1",
                "¹²³:0",
                "٣:٣",
                "1:2:3",
                "99999999999999999999999:0",
                "0:99999999999999999999999",
                "9223372036854775808:0",
                "1 :0",
                "0x10:0",
                "' OR 1=1 --",
                "1e9:0",
                "Ⅻ:1",
                "1:0\x00",
                "x" * 100_000,
                rng.randbytes(32).hex(),
            ]
        )
        method = rng.choice(["SearchEvents", "SearchLogs"])
        cls = query_pb2.SearchEventsRequest if method == "SearchEvents" else query_pb2.SearchLogsRequest
        return QueryCase(
            klass,
            method,
            cls(page_token=token).SerializeToString(),
            ((IA, r"page_token"), *ANY_OK),
            what=f"page_token {token[:30]!r}",
        )

    def _heavy(self) -> tuple[str, bytes]:
        """A real call with work in the store: p99 of 1 ms buckets, a label-values scan, a search."""
        now = self._now()
        choice = self.rng.randrange(4)
        if choice == 0:
            req = self._range(start_ms=now - 10_999, end_ms=now, step_ms=1, agg="p99")
            return "QueryRange", req.SerializeToString()
        if choice == 1:
            return "QueryRange", self._range(
                start_ms=now - 3_600_000,
                end_ms=now,
                step_ms=1000,
                agg=self.rng.choice(["rate", "sum", "p50"]),
                group_by=["shard"],
            ).SerializeToString()
        if choice == 2:
            return "ListLabelValues", query_pb2.ListLabelValuesRequest(label=self.label).SerializeToString()
        return "SearchLogs", query_pb2.SearchLogsRequest(contains="x", limit=10_000).SerializeToString()

    def _tiny_deadline(self, klass: str) -> QueryCase:
        method, req = self._heavy()
        timeout = self.rng.choice([0.0001, 0.001, 0.005, 0.02])
        return QueryCase(
            klass, method, req, ((DE, r""), ("OK", r"")), timeout=timeout, what=f"deadline {timeout}"
        )

    def _cancel_mid_query(self, klass: str) -> QueryCase:
        method, req = self._heavy()
        after = self.rng.choice([0.0, 0.002, 0.01, 0.05])
        return QueryCase(
            klass,
            method,
            req,
            ((CA, r""), ("OK", r""), (DE, r"")),
            cancel_after=after,
            what=f"cancel after {after}",
        )

    def _not_a_request(self, klass: str) -> QueryCase:
        """Bytes that are not the method's request: a field running past the end, a bad tag."""
        method = self.rng.choice(list(RESPONSES))
        data = self.rng.choice(
            [b"\x0a\xff\xff\xff\xff\x0f", b"\xff" * 8, b"\x0a\x05ab", b"\x08" + b"\xff" * 11]
        )
        return QueryCase(
            klass,
            method,
            data,
            ((IA, rf"request of {len(data)} bytes is not a ferry.v1.{method}Request"), (DE, r"")),
            what=data.hex(),
        )
