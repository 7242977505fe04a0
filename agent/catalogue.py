"""The one declaration of every metric the agent's own collectors emit.

Collectors emit through these definitions (name, kind, unit, label keys); names and attributes
follow the OpenTelemetry hostmetrics receiver. Label keys are listed in sorted order so a value
tuple zips straight into a canonical label set.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.columns import COUNTER, GAUGE, SeriesDef


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: int
    unit: str
    labels: tuple[str, ...]
    description: str

    def series(self, values: tuple[str, ...] = ()) -> SeriesDef:
        return SeriesDef(self.name, self.kind, self.unit, tuple(zip(self.labels, values, strict=True)))


def _m(name: str, kind: int, unit: str, labels: tuple[str, ...], description: str) -> MetricDef:
    assert list(labels) == sorted(labels), f"{name}: declare label keys sorted"
    return MetricDef(name, kind, unit, labels, description)


CPU_TIME = _m(
    "system.cpu.time", COUNTER, "s", ("cpu", "state"), "Seconds each logical CPU spent in each mode."
)
CPU_UTILIZATION = _m(
    "system.cpu.utilization",
    GAUGE,
    "1",
    ("cpu", "state"),
    "Fraction of each logical CPU's time spent in each mode over the last interval.",
)
MEMORY_USAGE = _m(
    "system.memory.usage",
    GAUGE,
    "By",
    ("state",),
    "Bytes of memory in use by state; the states sum to total memory.",
)
MEMORY_UTILIZATION = _m("system.memory.utilization", GAUGE, "1", ("state",), "Fraction of memory by state.")
LOAD_1M = _m("system.cpu.load_average.1m", GAUGE, "{thread}", (), "Load average over 1 minute.")
LOAD_5M = _m("system.cpu.load_average.5m", GAUGE, "{thread}", (), "Load average over 5 minutes.")
LOAD_15M = _m("system.cpu.load_average.15m", GAUGE, "{thread}", (), "Load average over 15 minutes.")
NETWORK_IO = _m(
    "system.network.io", COUNTER, "By", ("device", "direction"), "Bytes received and transmitted."
)
NETWORK_PACKETS = _m(
    "system.network.packets",
    COUNTER,
    "{packet}",
    ("device", "direction"),
    "Packets received and transmitted.",
)
NETWORK_ERRORS = _m(
    "system.network.errors", COUNTER, "{error}", ("device", "direction"), "Receive/transmit errors."
)
NETWORK_DROPPED = _m(
    "system.network.dropped",
    COUNTER,
    "{packet}",
    ("device", "direction"),
    "Packets dropped on receive/transmit.",
)
FILESYSTEM_USAGE = _m(
    "system.filesystem.usage",
    GAUGE,
    "By",
    ("device", "mode", "mountpoint", "state", "type"),
    "Filesystem bytes used, free (available to users) and reserved (for root).",
)

ALL: tuple[MetricDef, ...] = (
    CPU_TIME,
    CPU_UTILIZATION,
    MEMORY_USAGE,
    MEMORY_UTILIZATION,
    LOAD_1M,
    LOAD_5M,
    LOAD_15M,
    NETWORK_IO,
    NETWORK_PACKETS,
    NETWORK_ERRORS,
    NETWORK_DROPPED,
    FILESYSTEM_USAGE,
)
