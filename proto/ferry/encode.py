"""Point columns → `ferry.v1.MetricColumns`, with the standard library's `array` only.

The agent encodes a few hundred points a cycle; numpy would cost it 10 MB of resident memory
for no gain at that size. The collector decodes with numpy (`ferry.codec`); both agree on the
wire layout: little-endian uint32 series refs, int64 time deltas (the first from 0), float64
values.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Iterable, Sequence

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


def time_deltas(times: Sequence[int]) -> array:
    """Each time minus the one before (the first minus 0): small numbers that compress well."""
    out = array("q", times)
    for i in range(len(out) - 1, 0, -1):
        out[i] -= out[i - 1]
    return out


def encode_columns(
    series: Sequence[SeriesDef], refs: array, times: array, values: array
) -> payload_pb2.MetricColumns:
    """`refs` typecode "I", `times` "q" (absolute unix ms), `values` "d", all the same length."""
    n = len(refs)
    if not (len(times) == len(values) == n):
        raise ValueError(f"column lengths differ: series_ref {n}, time_ms {len(times)}, value {len(values)}")
    if refs.itemsize != 4 or times.itemsize != 8 or values.itemsize != 8:
        raise ValueError("columns must be uint32 refs, int64 times and float64 values")
    return payload_pb2.MetricColumns(
        series=series_table(series),
        point_count=n,
        series_ref=_le(refs),
        time_ms=_le(time_deltas(times)),
        value=_le(values),
    )


def pack_payload(resource: payload_pb2.Resource, metrics: payload_pb2.MetricColumns | None) -> bytes:
    payload = payload_pb2.Payload(resource=resource)
    if metrics is not None and metrics.point_count:
        payload.metrics.CopyFrom(metrics)
    return payload.SerializeToString()
