"""Series identity and metric kinds, without numpy (the agent imports only this side).

`ferry.wire.columns` adds the numpy batch the collector decodes into.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.v1 import payload_pb2

GAUGE = payload_pb2.GAUGE
COUNTER = payload_pb2.COUNTER
DELTA = payload_pb2.DELTA
HISTOGRAM = payload_pb2.HISTOGRAM
KIND_NAMES = {GAUGE: "gauge", COUNTER: "counter", DELTA: "delta", HISTOGRAM: "histogram"}
KINDS_BY_NAME = {v: k for k, v in KIND_NAMES.items()}

Labels = tuple[tuple[str, str], ...]


def labels_key(labels: dict[str, str] | None) -> Labels:
    """The canonical (sorted) form of a label set, usable as a dict key."""
    if not labels:
        return ()
    return tuple(sorted(labels.items()))


@dataclass(frozen=True, slots=True)
class SeriesDef:
    """The identity of one series: name, kind, unit, sorted labels and (histograms) bounds."""

    name: str
    kind: int
    unit: str = ""
    labels: Labels = ()
    bounds: tuple[float, ...] = ()
