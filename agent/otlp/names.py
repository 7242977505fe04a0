"""OTLP names and attributes → Ferry metric names, label keys and text values (docs/otlp.md).

Used by the metric and log mappings of the OTLP receiver (ferry.agent.otlp.metrics, .logs).
Nothing here validates: what comes out is checked by ferry.agent.local.records.convert, the
Local service's validator, with everything else an app sends.

- Metric names keep what Ferry's names take (`[A-Za-z0-9_.:-]`, ferry.limits.NAME_RE); any other
  character (OTel instrument names may hold `/`) becomes `_`, and a name that does not begin with
  a letter or `_` gets a leading `_`.
- Attribute keys keep what Ferry's label keys take (`[A-Za-z0-9_.]`: OTel's dotted keys stay as
  they are, as Ferry's own host metrics are named); any other character becomes `_`, a leading
  digit or dot gets a `_` before it. `service.name` is `service`.
- Values: strings as they are, booleans `true`/`false`, integers in decimal, doubles as Python's
  shortest repr, bytes as hex, arrays and key-value lists as compact JSON.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1 import common_pb2

from ferry.limits import LABEL_KEY_CHARS, NAME_CHARS

SERVICE_NAME = "service.name"
SERVICE_LABEL = "service"
_NOT_NAME = re.compile(f"[^{NAME_CHARS}]")
_NOT_KEY = re.compile(f"[^{LABEL_KEY_CHARS}]")


def metric_name(name: str) -> str:
    return _leading(_NOT_NAME.sub("_", name))


def label_key(key: str) -> str:
    if key == SERVICE_NAME:
        return SERVICE_LABEL
    return _leading(_NOT_KEY.sub("_", key))


def _leading(out: str) -> str:
    """Names and keys begin with a letter or `_` (limits.NAME_RE, LABEL_KEY_RE)."""
    return out if not out or out[:1].isalpha() or out[:1] == "_" else "_" + out


def text(value: common_pb2.AnyValue) -> str:
    """An attribute value or a log body as Ferry's text."""
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which is None:
        return ""
    if which in ("array_value", "kvlist_value"):
        return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)
    return _scalar(value, which)


def _scalar(value: common_pb2.AnyValue, which: str) -> str:
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    return value.bytes_value.hex()


def _plain(value: common_pb2.AnyValue) -> Any:
    """An AnyValue as JSON-able Python: nested arrays and maps, bytes as base64 (JSON's habit)."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if which is None:
        return None
    return getattr(value, which)


def attributes(pairs: Iterable[common_pb2.KeyValue]) -> dict[str, str]:
    """Attributes as Ferry labels or log attributes; of two keys that map to one, the later wins."""
    return {label_key(kv.key): text(kv.value) for kv in pairs}
