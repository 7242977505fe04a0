"""Count what a serialized `ferry.v1.Payload` holds before parsing it, and stop at the caps.

Parsing is cheap per byte but not per element: a 64 MiB payload of one-letter series parses
into 9.6 M objects (about 20x its size in memory) and then costs ~3 us a series to decode. The
collector therefore walks the wire format first, a tag and a length at a time, without building
anything: series, records and fields are counted as they go by, and the walk stops at the first
count over its limit. Rejecting a bomb costs at most `max_fields` steps (~0.1 us each), and a
payload that passes has a known, bounded number of elements, which is what the collector's
budget reserves for (`ferry.collector.budget`).

Called by the collector's pipeline between decompression and `ferry.wire.codec.decode_payload`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.descriptor import Descriptor

from ferry.limits import Limits, RecordLimits
from ferry.records import KINDS
from ferry.v1 import payload_pb2


class CensusError(ValueError):
    """The payload holds more than a limit allows, or is not protobuf; the frame is refused."""


class _Malformed(CensusError):
    """Not protobuf at all (reported as not a Payload, as parsing would)."""


@dataclass
class Census:
    series: int = 0
    series_labels: int = 0
    records: int = 0
    fields: int = 0
    counts: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Limits:
    max_fields: int
    max_records: int


_PAYLOAD = payload_pb2.Payload.DESCRIPTOR
_METRICS = payload_pb2.MetricColumns.DESCRIPTOR
_SERIES = payload_pb2.Series.DESCRIPTOR


def _children(desc: Descriptor) -> dict[int, Descriptor]:
    """Sub-messages to walk into (map entries are counted, not entered: they are two scalars)."""
    return {
        f.number: f.message_type
        for f in desc.fields
        if f.message_type is not None and not f.message_type.GetOptions().map_entry
    }


_RECORDS = tuple(k.message.DESCRIPTOR for k in KINDS)
_TREE = {
    d.full_name: _children(d)
    for d in (_PAYLOAD, _METRICS, _SERIES, payload_pb2.Resource.DESCRIPTOR, *_RECORDS)
}


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed(f"truncated or overlong varint at byte {pos}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def census(raw: bytes, limits: Limits, record_limits: RecordLimits) -> Census:
    """Walk `raw` (a serialized Payload); raise CensusError at the first count over a limit."""
    out = Census()
    walk = _Limits(limits.max_fields, record_limits.max_records)
    caps = {
        (_METRICS.full_name, 1): (limits.max_series, "series in one frame"),
        (_SERIES.full_name, 4): (limits.max_series_labels, "series label keys in one frame"),
        (_SERIES.full_name, 5): (limits.max_series_labels, "series label values in one frame"),
    }
    record_fields = {(_PAYLOAD.full_name, _PAYLOAD.fields_by_name[k.name].number) for k in KINDS}
    try:
        _walk(raw, 0, len(raw), _PAYLOAD.full_name, out, walk, caps, record_fields)
    except _Malformed as exc:
        raise CensusError(f"payload of {len(raw)} bytes is not a ferry.v1.Payload: {exc}") from None
    c = out.counts
    out.series = c.get((_METRICS.full_name, 1), 0)
    out.series_labels = c.get((_SERIES.full_name, 4), 0)
    return out


def _walk(buf, pos, end, name, out: Census, limits: _Limits, caps, record_fields) -> None:
    children = _TREE.get(name, {})
    counts = out.counts
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:  # one-byte tags: every field ferry.v1 has (numbers below 16)
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        out.fields += 1
        if out.fields > limits.max_fields:
            raise CensusError(
                f"payload has more than {limits.max_fields} protobuf fields ({limits.max_fields} allowed)"
            )
        key = (name, number)
        n = counts[key] = counts.get(key, 0) + 1
        cap = caps.get(key)
        if cap is not None and n > cap[0]:
            raise CensusError(f"more than {cap[0]} {cap[1]} ({cap[0]} allowed)")
        if key in record_fields:
            out.records += 1
            if out.records > limits.max_records:
                raise CensusError(
                    f"more than {limits.max_records} records in one frame ({limits.max_records} allowed)"
                )
        if wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f"field {number} of {name} runs {pos + length - end} bytes past its end")
            child = children.get(number)
            if child is not None:
                _walk(buf, pos, pos + length, child.full_name, out, limits, caps, record_fields)
            pos += length
        else:
            raise _Malformed(f"wire type {wire} of field {number} in {name} is not used by ferry.v1")
        if pos > end:
            raise _Malformed(f"field {number} of {name} runs past the end of its message")
