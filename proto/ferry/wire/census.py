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

from dataclasses import dataclass

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


_SERIES_TAG = 0x0A  # MetricColumns.series: field 1, length-delimited
_METRICS_TAG = 0x12  # Payload.metrics: field 2, length-delimited


def _length(buf, pos: int, end: int) -> tuple[int, int]:
    length = buf[pos] if pos < end else 0x80
    if length < 0x80:
        return length, pos + 1
    return _varint(buf, pos, end)


def series_span(raw: bytes | bytearray, max_fields: int = Limits.max_series) -> tuple[int, int] | None:
    """Where a serialized Payload's series table lies: the byte range [start, end) of its
    `metrics.series` entries, when they are one unbroken run inside the one `metrics` field (as
    every Ferry encoder writes them), else None. Frames of hosts with the same series table
    carry the same bytes there, which the collector recognises (`ferry.collector.seriescache`).
    Reads only the tags and lengths of the top-level fields: a few hundred steps for an agent's
    frame, none of them inside a series, and at most `max_fields` of them (a payload with more
    is one the census refuses: None). Malformed input gives None (census says why)."""
    try:
        steps = 0
        pos, end, metrics = 0, len(raw), None
        while pos < end:  # Payload: resource, metrics, events, logs
            steps += 1
            if steps > max_fields:
                return None
            tag = raw[pos]
            if tag >= 0x80:
                return None  # no Payload field needs a two-byte tag
            wire = tag & 7
            pos += 1
            if wire == 2:
                length, pos = _length(raw, pos, end)
                if tag == _METRICS_TAG:
                    if metrics is not None:
                        return None  # two metrics fields: the parser merges them
                    metrics = (pos, pos + length)
                pos += length
            elif wire == 0:
                _, pos = _varint(raw, pos, end)
            else:
                return None
        if metrics is None or metrics[1] > len(raw):
            return None  # cut short: the census says why
        pos, end = metrics
        start = stop = None
        while pos < end:
            steps += 1
            if steps > max_fields:
                return None
            tag = raw[pos]
            if tag >= 0x80:
                return None
            field_start = pos
            pos += 1
            wire = tag & 7
            if wire == 2:
                length, pos = _length(raw, pos, end)
                pos += length
            elif wire == 0:
                _, pos = _varint(raw, pos, end)
            else:
                return None
            if tag == _SERIES_TAG:
                if start is None:
                    start = field_start
                elif stop != field_start:
                    return None  # a series after another field: not one run
                stop = pos
        if start is None or stop is None or stop > metrics[1]:
            return None
        return start, stop
    except (CensusError, IndexError):
        return None


_PAYLOAD = payload_pb2.Payload.DESCRIPTOR
_METRICS = payload_pb2.MetricColumns.DESCRIPTOR
_SERIES = payload_pb2.Series.DESCRIPTOR
_STREAM = payload_pb2.StreamPayload.DESCRIPTOR


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
    for d in (_PAYLOAD, _METRICS, _SERIES, _STREAM, payload_pb2.Resource.DESCRIPTOR, *_RECORDS)
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


class _TooManyFields(Exception):
    pass


class _Cap:
    """A count with its limit; fields sharing one (events and logs) count together."""

    __slots__ = ("limit", "n", "what")

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.n = limit, what, 0

    def hit(self) -> None:
        self.n += 1
        if self.n > self.limit:
            raise CensusError(f"more than {self.limit} {self.what} ({self.limit} allowed)")


def census(
    raw: bytes | bytearray,
    limits: Limits,
    record_limits: RecordLimits,
    known: tuple[int, int, Census] | None = None,
) -> Census:
    """Walk `raw` (a serialized Payload); raise CensusError at the first count over a limit.
    `known`: (start, end, census) of a series table (`series_span`) counted before, whose counts
    are taken instead of walking it again."""
    series = _Cap(limits.max_series, "series in one frame")
    keys = _Cap(limits.max_series_labels, "series label keys in one frame")
    values = _Cap(limits.max_series_labels, "series label values in one frame")
    records = _Cap(record_limits.max_records, "records in one frame")
    caps = {
        _PAYLOAD.full_name: {_PAYLOAD.fields_by_name[k.name].number: records for k in KINDS},
        _METRICS.full_name: {_METRICS.fields_by_name["series"].number: series},
        _SERIES.full_name: {
            _SERIES.fields_by_name["label_keys"].number: keys,
            _SERIES.fields_by_name["label_values"].number: values,
        },
    }
    skip = None
    if known is not None:
        start, end, counted = known
        skip = (
            start,
            end,
            counted,
            (series, counted.series),
            (keys, counted.series_labels),
            (values, counted.series_labels),
        )
    try:
        fields = _walk(raw, 0, len(raw), _PAYLOAD.full_name, caps, limits.max_fields, skip)
    except _Malformed as exc:
        raise CensusError(f"payload of {len(raw)} bytes is not a ferry.v1.Payload: {exc}") from None
    except _TooManyFields:
        n = limits.max_fields
        raise CensusError(f"payload has more than {n} protobuf fields ({n} allowed)") from None
    return Census(series=series.n, series_labels=keys.n, records=records.n, fields=fields)


def stream_census(raw: bytes | bytearray, limits: Limits, record_limits: RecordLimits) -> Census:
    """`census` of a serialized StreamPayload (the stream encoding's payload): the series it
    defines, their labels and its records, under the same caps as a Payload's."""
    series = _Cap(limits.max_series, "series in one frame")
    keys = _Cap(limits.max_series_labels, "series label keys in one frame")
    values = _Cap(limits.max_series_labels, "series label values in one frame")
    records = _Cap(record_limits.max_records, "records in one frame")
    caps = {
        _STREAM.full_name: {
            _STREAM.fields_by_name["series"].number: series,
            **{_STREAM.fields_by_name[k.name].number: records for k in KINDS},
        },
        _SERIES.full_name: {
            _SERIES.fields_by_name["label_keys"].number: keys,
            _SERIES.fields_by_name["label_values"].number: values,
        },
    }
    try:
        fields = _walk(raw, 0, len(raw), _STREAM.full_name, caps, limits.max_fields)
    except _Malformed as exc:
        raise CensusError(f"payload of {len(raw)} bytes is not a ferry.v1.StreamPayload: {exc}") from None
    except _TooManyFields:
        n = limits.max_fields
        raise CensusError(f"payload has more than {n} protobuf fields ({n} allowed)") from None
    return Census(series=series.n, series_labels=keys.n, records=records.n, fields=fields)


def _walk(buf, pos: int, end: int, name: str, caps: dict, budget: int, skip=None) -> int:
    """The fields in buf[pos:end], a message `name`, at most `budget` of them; returns how many.
    `skip`: a span counted before (see `census`), taken as counted when the walk reaches it."""
    children = _TREE.get(name, {})
    mine = caps.get(name, {})
    used = 0
    while pos < end:
        if skip is not None and pos == skip[0]:
            for cap, n in skip[3:]:
                cap.n += n - 1
                cap.hit()
            used += skip[2].fields
            if used > budget:
                raise _TooManyFields
            pos = skip[1]
            continue
        tag = buf[pos]
        if tag < 0x80:  # one-byte tags: every field ferry.v1 has (numbers below 16)
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        used += 1
        if used > budget:
            raise _TooManyFields
        number, wire = tag >> 3, tag & 7
        cap = mine.get(number)
        if cap is not None:
            cap.hit()
        if wire == 2:
            length = buf[pos] if pos < end else 0x80
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f"field {number} of {name} runs {pos + length - end} bytes past its end")
            child = children.get(number)
            if child is not None:
                used += _walk(buf, pos, pos + length, child.full_name, caps, budget - used, skip)
            pos += length
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise _Malformed(f"wire type {wire} of field {number} in {name} is not used by ferry.v1")
        if pos > end:
            raise _Malformed(f"field {number} of {name} runs past the end of its message")
    return used


def series_census(raw: bytes | bytearray, span: tuple[int, int], limits: Limits) -> Census:
    """The counts of the series table at `span` (`series_span`) alone, for `census(known=...)`."""
    series = _Cap(limits.max_series, "series in one frame")
    keys = _Cap(limits.max_series_labels, "series label keys in one frame")
    values = _Cap(limits.max_series_labels, "series label values in one frame")
    caps = {
        _METRICS.full_name: {_METRICS.fields_by_name["series"].number: series},
        _SERIES.full_name: {
            _SERIES.fields_by_name["label_keys"].number: keys,
            _SERIES.fields_by_name["label_values"].number: values,
        },
    }
    fields = _walk(raw, span[0], span[1], _METRICS.full_name, caps, limits.max_fields)
    return Census(series=series.n, series_labels=keys.n, fields=fields)
