"""Point columns → `ferry.v1.MetricColumns`, with the standard library's `array` only.

The agent encodes a few hundred points a cycle; numpy would cost it 10 MB of resident memory
for no gain at that size. The collector decodes with numpy (`ferry.wire.codec`); both agree on the
wire layout: little-endian uint32 series refs, int64 time deltas (the first from 0), float64
values.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence

from ferry.series import SeriesDef
from ferry.v1 import payload_pb2

_SWAP = sys.byteorder != "little"


def series_table(series: Iterable[SeriesDef]) -> list[payload_pb2.Series]:
    return [
        payload_pb2.Series(
            name=s.name,
            kind=s.kind,
            unit=s.unit,
            label_keys=[k for k, _ in s.labels],
            label_values=[v for _, v in s.labels],
            bounds=s.bounds,
        )
        for s in series
    ]


def _le(a: array) -> bytes:
    if _SWAP:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def time_deltas(times: array) -> array:
    """Each time minus the one before (the first minus 0): small numbers that compress well."""
    n = len(times)
    if n > 1 and times == array("q", times[:1]) * n:  # one cycle's time (a memcmp, <1 ns a point)
        out = array("q", [0]) * n
        out[0] = times[0]
        return out
    out = array("q", times[:1])
    out.extend(map(operator.sub, itertools.islice(times, 1, None), times))
    return out


RUN_MIN = 64  # points a ref's run holds on average before runs are looked for


def ref_deltas(refs: array) -> array:
    """Each series ref minus the one before (the first minus 0), as int32: a cycle's refs count
    up by one, so these are mostly 1s. Long runs of one ref (the accumulator lays a frame out
    series-major: refs 0, 0, ..., 1, 1, ...) cost a few C-level calls a run, not one a point."""
    n = len(refs)
    if n and (refs[-1] - refs[0] + 1) * RUN_MIN <= n:
        out = _run_deltas(refs)
        if out is not None:
            return out
    out = array("i", refs[:1])
    out.extend(map(operator.sub, itertools.islice(refs, 1, None), refs))
    return out


def _run_deltas(refs: array) -> array | None:
    """ref_deltas of refs made of runs of one ref each; None when there are more than
    len(refs) // RUN_MIN runs. A run's end is found by bisection (the accumulator's runs come in
    ascending order) and the run is then checked whole (a memcmp), so any order stays correct."""
    out, n, i, prev, runs = array("i"), len(refs), 0, 0, 0
    while i < n:
        r = refs[i]
        j = max(bisect.bisect_right(refs, r, i), i + 1)
        runs += 1
        if runs > n // RUN_MIN or refs[i:j] != array(refs.typecode, [r]) * (j - i):
            return None
        out.append(r - prev)
        out.extend(array("i", [0]) * (j - i - 1))
        prev, i = r, j
    return out


class SeriesMessages:
    """`payload_pb2.Series` per SeriesDef object, built once: an agent's series live for many
    frames, and building the message costs ~6 us against ~1 us to copy it. Entries are keyed by
    object identity (and hold the object, so the id stays theirs); the cache is emptied when it
    passes `limit` entries or `max_bytes` of messages (an app's series of 32 labels of 256 bytes
    are ~10 KB each), which bounds it under series churn (short-lived processes, apps)."""

    def __init__(self, limit: int = 20_000, max_bytes: int = 8 * 1024 * 1024):
        self.limit = limit
        self.max_bytes = max_bytes
        self._cache: dict[int, tuple[SeriesDef, payload_pb2.Series]] = {}
        self._bytes = 0

    def __call__(self, series: Sequence[SeriesDef]) -> list[payload_pb2.Series]:
        cache = self._cache
        out = []
        for s in series:
            hit = cache.get(id(s))
            if hit is None or hit[0] is not s:
                if len(cache) >= self.limit or self._bytes >= self.max_bytes:
                    cache.clear()
                    self._bytes = 0
                hit = cache[id(s)] = (s, series_table((s,))[0])
                self._bytes += hit[1].ByteSize()
            out.append(hit[1])
        return out


def encode_columns(
    series: Sequence[SeriesDef],
    refs: array,
    times: array,
    values: array,
    buckets: array | None = None,
    messages: Callable[[Sequence[SeriesDef]], list[payload_pb2.Series]] = series_table,
) -> payload_pb2.MetricColumns:
    """`refs` typecode "I", `times` "q" (absolute unix ms), `values` "d", all the same length;
    `buckets` "Q", the HISTOGRAM points' counts in column order; `messages` builds the series
    table (a `SeriesMessages` cache, or afresh)."""
    n = len(refs)
    if not (len(times) == len(values) == n):
        raise ValueError(f"column lengths differ: series_ref {n}, time_ms {len(times)}, value {len(values)}")
    if refs.itemsize != 4 or times.itemsize != 8 or values.itemsize != 8:
        raise ValueError("columns must be uint32 refs, int64 times and float64 values")
    if buckets and buckets.itemsize != 8:
        raise ValueError("bucket counts must be uint64")
    return payload_pb2.MetricColumns(
        series=messages(series),
        point_count=n,
        series_ref_delta=_le(ref_deltas(refs)),
        time_ms=_le(time_deltas(times)),
        value=_le(values),
        bucket_counts=_le(buckets) if buckets else b"",
    )


def pack_payload(
    resource: payload_pb2.Resource,
    metrics: payload_pb2.MetricColumns | None,
    **records: Sequence,
) -> bytes:
    """`records`: each record kind's records under its name (`events=[...]`, `logs=[...]`)."""
    payload = payload_pb2.Payload(resource=resource, **records)
    if metrics is not None and metrics.point_count:
        payload.metrics.CopyFrom(metrics)
    return payload.SerializeToString()
