"""Columns ⇄ `ferry.v1.Payload` bytes, for both the agent (encode) and the collector (decode).

Point columns travel as little-endian arrays inside bytes fields, so each direction is a
handful of numpy calls whatever the point count. Decoding checks the structure (column
lengths, references, histogram shapes) and raises `CodecError` naming the value and the
limit; semantic checks (names, finiteness, time window) belong to the collector's validator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from google.protobuf.message import DecodeError

from ferry.v1 import payload_pb2
from ferry.wire.columns import HISTOGRAM, MetricBatch, SeriesDef
from ferry.wire.encode import series_table

_U32 = np.dtype("<u4")
_I32 = np.dtype("<i4")
_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")
_U64 = np.dtype("<u8")


class CodecError(ValueError):
    """The payload is structurally invalid; the message names the field and the limit."""


def encode_metrics(batch: MetricBatch) -> payload_pb2.MetricColumns:
    n = len(batch)
    if not (batch.time_ms.shape[0] == batch.value.shape[0] == n):
        raise CodecError(
            f"column lengths differ: series_ref {n}, time_ms {batch.time_ms.shape[0]}, "
            f"value {batch.value.shape[0]}"
        )
    times = batch.time_ms.astype(_I64, copy=False)
    deltas = np.diff(times, prepend=np.int64(0)) if n else times
    ref_deltas = np.diff(batch.series_ref.astype(np.int64), prepend=np.int64(0))
    return payload_pb2.MetricColumns(
        series=series_table(batch.series),
        point_count=n,
        series_ref_delta=ref_deltas.astype(_I32).tobytes(),
        time_ms=deltas.tobytes(),
        value=batch.value.astype(_F64, copy=False).tobytes(),
        bucket_counts=batch.bucket_counts.astype(_U64, copy=False).tobytes(),
    )


def _column(raw: bytes, dtype: np.dtype, count: int | None, name: str) -> np.ndarray:
    if len(raw) % dtype.itemsize:
        raise CodecError(f"column {name}: {len(raw)} bytes is not a multiple of {dtype.itemsize}")
    arr = np.frombuffer(raw, dtype=dtype)
    if count is not None and arr.shape[0] != count:
        raise CodecError(f"column {name}: {arr.shape[0]} values != point_count {count}")
    return arr


def decode_metrics(msg: payload_pb2.MetricColumns, known: list[SeriesDef] | None = None) -> MetricBatch:
    """`known`: the series table, decoded before from the same bytes (the collector's cache of
    series tables), taken instead of decoding `msg.series` again."""
    n = msg.point_count
    if msg.series_ref and msg.series_ref_delta:
        raise CodecError("series_ref and series_ref_delta are both set; an encoder sends one of them")
    if msg.series_ref_delta:
        refs = np.cumsum(_column(msg.series_ref_delta, _I32, n, "series_ref_delta"), dtype=np.int64)
    else:
        refs = _column(msg.series_ref, _U32, n, "series_ref")
    times = np.cumsum(_column(msg.time_ms, _I64, n, "time_ms"), dtype=np.int64)
    values = _column(msg.value, _F64, n, "value")
    series = known if known is not None and len(known) == len(msg.series) else []
    for i, s in enumerate(msg.series if series is not known else ()):
        if len(s.label_keys) != len(s.label_values):
            raise CodecError(
                f"series {i} ({s.name!r}): {len(s.label_keys)} label keys != {len(s.label_values)} values"
            )
        series.append(
            SeriesDef(
                name=s.name,
                kind=s.kind,
                unit=s.unit,
                labels=tuple(zip(s.label_keys, s.label_values, strict=True)),
                bounds=tuple(s.bounds),
            )
        )
    if n and (int(refs.max()) >= len(series) or int(refs.min()) < 0):
        bad = int(refs.max()) if int(refs.max()) >= len(series) else int(refs.min())
        raise CodecError(f"series_ref {bad} out of range: the series table has {len(series)} rows")
    refs = refs.astype(_U32, copy=False)
    buckets = _column(msg.bucket_counts, _U64, None, "bucket_counts")
    expected = _expected_bucket_count(series, refs)
    if buckets.shape[0] != expected:
        raise CodecError(f"bucket_counts: {buckets.shape[0]} values != {expected} the histogram points need")
    return MetricBatch(series=series, series_ref=refs, time_ms=times, value=values, bucket_counts=buckets)


def _expected_bucket_count(series: list[SeriesDef], refs: np.ndarray) -> int:
    if not any(s.kind == HISTOGRAM for s in series):
        return 0
    per_series = np.array([len(s.bounds) + 1 if s.kind == HISTOGRAM else 0 for s in series], dtype=np.int64)
    return int(per_series[refs].sum())


def encode_payload(
    resource: payload_pb2.Resource,
    batch: MetricBatch | None = None,
    **records: Sequence,
) -> bytes:
    """`records`: each record kind's records under its name (`events=[...]`, `logs=[...]`)."""
    payload = payload_pb2.Payload(resource=resource, **{k: v or () for k, v in records.items()})
    if batch is not None and len(batch):
        payload.metrics.CopyFrom(encode_metrics(batch))
    return payload.SerializeToString()


def decode_payload(raw: bytes) -> payload_pb2.Payload:
    payload = payload_pb2.Payload()
    try:
        payload.ParseFromString(raw)
    except DecodeError as exc:
        raise CodecError(f"payload of {len(raw)} bytes is not a ferry.v1.Payload: {exc}") from None
    return payload
