"""What an app recorded and the client has not yet handed to the agent.

The recording calls run on the app's threads and must cost about a microsecond and never raise
or block on I/O: they check a record once (a series is checked the first time it is seen, by the
same rules the agent and collector apply, so one bad record cannot get a whole request refused),
then add it under a lock that is only ever held for a dict update or a list swap.

- counters are summed per series until the next drain (sent as one DELTA record per series);
- histogram observations are bucketed per series until the next drain (one HISTOGRAM record per
  series, holding that interval's counts, stamped with the last observation's time);
- gauges, events and logs are kept one by one, stamped at the call, up to `max_queue` records.

Anything the buffer cannot keep is dropped and counted by reason (`dropped`), never silently.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from array import array
from collections import Counter
from collections.abc import Mapping

from ferry.limits import (
    MAX_RECORDS,
    Limits,
    RecordLimits,
    ValidationError,
    check_bounds,
    check_labels,
    check_name,
)
from ferry.records import EVENTS, KINDS, LOGS, count
from ferry.series import DELTA, GAUGE
from ferry.v1 import local_pb2, payload_pb2

# prometheus_client's defaults: request latencies in seconds
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
MAX_REQUEST_BYTES = 3 * 1024 * 1024  # under the agent's 4 MiB message limit
EVENT_FIELDS = frozenset({"label", "user_id", "session_id", "service"})

# why a record was dropped (the keys of `Buffer.dropped`)
QUEUE_FULL = "queue_full"  # more than max_queue records waiting
SERIES_LIMIT = "series_limit"  # more than max_series counter/histogram series in one interval
INVALID = "invalid"  # the record breaks Ferry's rules (its reason is logged once per name)
REJECTED = "rejected"  # the agent refused the request (INVALID_ARGUMENT)
UNDELIVERED = "undelivered"  # the agent was unreachable for longer than the retry buffer lasts
CLOSED = "closed"  # recorded after close()
ERROR = "error"  # an unexpected error inside the client (a bug): counted, never raised

_Key = tuple[str, tuple[tuple[str, str], ...]]


_INF = math.inf


def _labels(labels: Mapping) -> tuple:
    """The series key's label part: sorted pairs as given (str() is applied once per series at
    drain, not per call)."""
    try:
        return tuple(sorted(labels.items()))
    except TypeError:  # keys of mixed types
        return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _as_str(labels: tuple) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in labels))


class Buffer:
    def __init__(
        self,
        max_queue: int = 100_000,
        max_series: int = 10_000,
        service: str = "",
        clock_ns=time.time_ns,
        on_invalid=lambda message: None,
    ):
        self.max_queue = max_queue
        self.max_series = max_series
        self.service = service
        self.clock_ns = clock_ns
        self.on_invalid = on_invalid  # told why a record was dropped as invalid
        self.limits, self.record_limits = Limits(), RecordLimits()
        self.dropped: Counter[str] = Counter()
        self.recorded = 0
        self._lock = threading.Lock()
        # series key -> the key object itself if valid, else False: each series is checked once,
        # and records hold one shared key per series (fewer objects for the app's GC to trace)
        self._checked: dict[tuple, tuple | bool] = {}
        self._reset()

    def _reset(self) -> None:
        self._counters: dict[_Key, float] = {}
        self._histograms: dict[tuple, list] = {}  # (name, labels, bounds) -> [counts, sum, t_ms]
        # gauges as columns: no object per call for the app's garbage collector to trace
        self._gauge_keys: list[_Key] = []
        self._gauge_values = array("d")
        self._gauge_times = array("q")
        self._records: list[tuple] = []  # events and logs: (kind name, t_ns, ...as recorded)

    def __len__(self) -> int:
        return len(self._counters) + len(self._histograms) + self.waiting()

    def waiting(self) -> int:
        """Gauges, events and logs waiting (what grows with the call rate)."""
        return len(self._gauge_keys) + len(self._records)

    def drop(self, reason: str, message: str = "") -> None:
        with self._lock:
            self.dropped[reason] += 1
        if message:
            self.on_invalid(message)

    def _check_series(self, key: tuple, bounds: tuple[float, ...] | None = None) -> tuple | bool:
        """`key` if the series may be recorded, else False; decided the first time it is seen."""
        try:
            check_name(key[0], self.limits)
            check_labels(_as_str(key[1]), self.limits, f"metric {key[0]!r}")
            if bounds is not None:
                check_bounds(bounds, self.limits, f"histogram {key[0]!r}")
            known = key
        except ValidationError as exc:
            self.on_invalid(str(exc))
            known = False
        if len(self._checked) < 100_000:
            self._checked[key] = known
        return known

    def counter(self, name: str, value: float, labels: Mapping | None) -> None:
        key = (name, _labels(labels) if labels else ())
        known = self._checked.get(key)
        key = self._check_series(key) if known is None else known
        if not (key and 0.0 <= value < _INF):
            self.drop(INVALID, f"counter {name!r}: value {value!r} is not finite and >= 0" if key else "")
            return
        with self._lock:
            counters = self._counters
            total = counters.get(key)
            if total is None:
                if len(counters) + len(self._histograms) >= self.max_series:
                    self.dropped[SERIES_LIMIT] += 1
                    return
                counters[key] = value
            else:
                counters[key] = total + value
            self.recorded += 1

    def gauge(self, name: str, value: float, labels: Mapping | None) -> None:
        key = (name, _labels(labels) if labels else ())
        known = self._checked.get(key)
        key = self._check_series(key) if known is None else known
        if not (key and -_INF < value < _INF):
            self.drop(INVALID, f"gauge {name!r}: value {value!r} is not finite" if key else "")
            return
        now_ms = self.clock_ns() // 1_000_000
        with self._lock:
            if len(self._gauge_keys) + len(self._records) >= self.max_queue:
                self.dropped[QUEUE_FULL] += 1
                return
            self._gauge_values.append(value)  # first: a value that is not a number raises here
            self._gauge_keys.append(key)
            self._gauge_times.append(now_ms)
            self.recorded += 1

    def histogram(self, name: str, value: float, labels: Mapping | None, buckets) -> None:
        bounds = DEFAULT_BUCKETS if buckets is None else tuple(map(float, buckets))
        key = (name, _labels(labels) if labels else (), bounds)
        known = self._checked.get(key)
        key = self._check_series(key, bounds) if known is None else known
        if not (key and -_INF < value < _INF):
            self.drop(INVALID, f"histogram {name!r}: value {value!r} is not finite" if key else "")
            return
        slot = bisect.bisect_left(bounds, value)  # the first bucket whose upper bound >= value
        now_ms = self.clock_ns() // 1_000_000
        with self._lock:
            state = self._histograms.get(key)
            if state is None:
                if len(self._counters) + len(self._histograms) >= self.max_series:
                    self.dropped[SERIES_LIMIT] += 1
                    return
                state = self._histograms[key] = [[0] * (len(bounds) + 1), 0.0, now_ms]
            state[0][slot] += 1
            state[1] += value
            state[2] = now_ms
            self.recorded += 1

    def event(self, type_: str, category: str, action: str, value, properties, fields: dict) -> None:
        """Kept as given; built and checked at drain, on the delivery thread."""
        self._append((EVENTS.name, self.clock_ns(), type_, category, action, value, properties, fields))

    def log(self, level: str, message: str, attributes: dict) -> None:
        self._append((LOGS.name, self.clock_ns(), level, message, attributes))

    def _append(self, record: tuple) -> None:
        with self._lock:
            if len(self._gauge_keys) + len(self._records) >= self.max_queue:
                self.dropped[QUEUE_FULL] += 1
                return
            self._records.append(record)
            self.recorded += 1

    def take_back(self, request: local_pb2.Records) -> local_pb2.Records:
        """After a failed send: summed counters and histograms go back into the buffer (merged
        with what was recorded since, so they cost no queue space and lose nothing); returns
        the rest of the request (gauges and records of every kind) for the retry queue."""
        rest = local_pb2.Records(**{k.name: getattr(request, k.name) for k in KINDS})
        with self._lock:
            for r in request.metrics:
                if r.kind != DELTA:
                    rest.metrics.append(r)
                    continue
                key = (r.name, tuple(sorted(r.labels.items())))
                self._counters[key] = self._counters.get(key, 0.0) + r.value
            for h in request.histograms:
                key = (h.name, tuple(sorted(h.labels.items())), tuple(h.bounds))
                state = self._histograms.get(key)
                if state is None:
                    self._histograms[key] = [list(h.counts), h.sum, h.time_unix_ms]
                else:
                    state[0] = [a + b for a, b in zip(state[0], h.counts, strict=True)]
                    state[1] += h.sum
                    state[2] = max(state[2], h.time_unix_ms)
        return rest

    def drain(self) -> list[local_pb2.Records]:
        """Everything recorded so far, as requests within the agent's limits. Events and logs
        are built and checked here; a bad one is dropped and counted as invalid."""
        with self._lock:
            counters, histograms, records = self._counters, self._histograms, self._records
            gauges = (self._gauge_keys, self._gauge_values, self._gauge_times)
            self._reset()
        try:
            out, invalid = _requests(counters, histograms, gauges, records, self)
        except Exception:  # a bug of ours: the batch is lost, but counted
            with self._lock:
                self.dropped[ERROR] += len(counters) + len(histograms) + len(gauges[0]) + len(records)
            raise
        if invalid:
            with self._lock:
                self.dropped[INVALID] += invalid
        return out

    def build_event(self, r: tuple) -> payload_pb2.Event:
        _, t_ns, type_, category, action, value, properties, fields = r
        unknown = set(fields) - EVENT_FIELDS
        if unknown:
            raise ValidationError(f"unknown event fields {sorted(unknown)} (known: {sorted(EVENT_FIELDS)})")
        event = payload_pb2.Event(
            time_unix_ns=t_ns,
            type=type_,
            category=category,
            action=action,
            properties={str(k): str(v) for k, v in (properties or {}).items()},
            service=str(fields.get("service", self.service)),
            **{k: str(v) for k, v in fields.items() if k != "service"},
        )
        if value is not None:
            event.value, event.has_value = float(value), True
        EVENTS.check(event, t_ns, self.record_limits, f"event {type_!r}")
        return event

    def build_log(self, r: tuple) -> payload_pb2.LogRecord:
        _, t_ns, level, message, attributes = r
        attributes = dict(attributes)
        record = payload_pb2.LogRecord(
            time_unix_ns=t_ns,
            level=str(level),
            message=str(message),
            service=str(attributes.pop("service", self.service)),
            trace_id=str(attributes.pop("trace_id", "")),
            span_id=str(attributes.pop("span_id", "")),
            attributes={str(k): str(v) for k, v in attributes.items()},
        )
        LOGS.check(record, t_ns, self.record_limits, "log")
        return record


def _requests(
    counters: dict, histograms: dict, gauges: tuple, records: list, buffer: Buffer
) -> tuple[list, int]:
    """(requests, how many events and logs were invalid)."""
    now_ms = buffer.clock_ns() // 1_000_000
    out = _Requests()
    invalid = 0
    for (name, labels), total in counters.items():
        out.add(
            "metrics",
            local_pb2.MetricRecord(
                name=name, kind=DELTA, value=total, labels=dict(_as_str(labels)), time_unix_ms=now_ms
            ),
        )
    for (name, labels, bounds), (counts, total, t_ms) in histograms.items():
        out.add(
            "histograms",
            local_pb2.HistogramRecord(
                name=name,
                labels=dict(_as_str(labels)),
                bounds=bounds,
                counts=counts,
                sum=total,
                time_unix_ms=t_ms,
            ),
        )
    label_maps: dict[tuple, dict[str, str]] = {}
    for (name, labels), value, t_ms in zip(*gauges, strict=True):
        if labels not in label_maps:
            label_maps[labels] = dict(_as_str(labels))
        out.add(
            "metrics",
            local_pb2.MetricRecord(
                name=name, kind=GAUGE, value=value, labels=label_maps[labels], time_unix_ms=t_ms
            ),
        )
    # the app-facing call of each kind (Buffer.event, Buffer.log) keeps its arguments; the
    # message is built here
    builders = {EVENTS.name: buffer.build_event, LOGS.name: buffer.build_log}
    for r in records:
        try:
            out.add(r[0], builders[r[0]](r))
        except (ValidationError, TypeError, ValueError) as exc:
            invalid += 1
            buffer.on_invalid(str(exc))
    return out.done(), invalid


class _Requests:
    """Packs records into `Records` requests of at most MAX_RECORDS records and
    about MAX_REQUEST_BYTES bytes."""

    def __init__(self) -> None:
        self.requests: list[local_pb2.Records] = []
        self._current = local_pb2.Records()
        self._n = self._bytes = 0

    def add(self, field: str, record) -> None:
        size = record.ByteSize() + 8
        if self._n and (self._n >= MAX_RECORDS or self._bytes + size > MAX_REQUEST_BYTES):
            self.requests.append(self._current)
            self._current, self._n, self._bytes = local_pb2.Records(), 0, 0
        getattr(self._current, field).append(record)
        self._n += 1
        self._bytes += size

    def done(self) -> list[local_pb2.Records]:
        if self._n:
            self.requests.append(self._current)
        return self.requests


def records_in(request: local_pb2.Records) -> int:
    return len(request.metrics) + len(request.histograms) + count(request)
