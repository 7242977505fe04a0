"""The one declaration of every metric the agent's own collectors emit.

Collectors emit through these definitions (name, kind, unit, label keys); names and attributes
follow the OpenTelemetry hostmetrics receiver. Label keys are listed in sorted order so a value
tuple zips straight into a canonical label set.
"""

from __future__ import annotations

from dataclasses import dataclass

from ferry.series import COUNTER, GAUGE, KIND_NAMES, SeriesDef


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

DISK_IO = _m(
    "system.disk.io", COUNTER, "By", ("device", "direction"), "Bytes read from and written to each disk."
)
DISK_OPERATIONS = _m(
    "system.disk.operations",
    COUNTER,
    "{operation}",
    ("device", "direction"),
    "Read and write operations completed.",
)
DISK_IO_TIME = _m(
    "system.disk.io_time", COUNTER, "s", ("device",), "Time the disk spent with I/O in progress."
)
DISK_OPERATION_TIME = _m(
    "system.disk.operation_time",
    COUNTER,
    "s",
    ("device", "direction"),
    "Time spent in read and write operations.",
)
DISK_MERGED = _m(
    "system.disk.merged",
    COUNTER,
    "{operation}",
    ("device", "direction"),
    "Adjacent operations merged by the kernel.",
)
DISK_PENDING = _m(
    "system.disk.pending_operations",
    GAUGE,
    "{operation}",
    ("device",),
    "Operations in progress on the disk now.",
)
FILESYSTEM_INODES = _m(
    "system.filesystem.inodes.usage",
    GAUGE,
    "{inode}",
    ("device", "mode", "mountpoint", "state", "type"),
    "Filesystem inodes used and free.",
)
FILESYSTEM_UTILIZATION = _m(
    "system.filesystem.utilization",
    GAUGE,
    "1",
    ("device", "mode", "mountpoint", "type"),
    "Fraction of the filesystem used: used / (used + free to users).",
)
NETWORK_CONNECTIONS = _m(
    "system.network.connections", GAUGE, "{connection}", ("protocol", "state"), "TCP connections by state."
)
PAGING_USAGE = _m(
    "system.paging.usage", GAUGE, "By", ("device", "state"), "Swap space used and free, per device."
)
PAGING_OPERATIONS = _m(
    "system.paging.operations",
    COUNTER,
    "{operation}",
    ("direction", "type"),
    "Pages in and out: major = swap (pswpin/pswpout), minor = all paging (pgpgin/pgpgout).",
)
PAGING_FAULTS = _m("system.paging.faults", COUNTER, "{fault}", ("type",), "Page faults, major and minor.")
PROCESSES_COUNT = _m(
    "system.processes.count",
    GAUGE,
    "{process}",
    ("status",),
    "Processes by status: running, sleeping, blocked (uninterruptible), zombies, stopped, idle "
    "(kernel threads waiting), paging, unknown (from each /proc/PID/stat; the processes collector).",
)
PROCESSES_CREATED = _m("system.processes.created", COUNTER, "{process}", (), "Processes created since boot.")
UPTIME = _m("system.uptime", GAUGE, "s", (), "Seconds since the host booted.")
PROCESS_LABELS = ("group", "name", "pid")
PROCESS_CPU_TIME = _m(
    "process.cpu.time",
    COUNTER,
    "s",
    ("group", "name", "pid", "state"),
    "CPU seconds in user and system mode.",
)
PROCESS_CPU_UTILIZATION = _m(
    "process.cpu.utilization",
    GAUGE,
    "1",
    PROCESS_LABELS,
    "Fraction of one CPU the process used over the last interval.",
)
PROCESS_MEMORY_USAGE = _m("process.memory.usage", GAUGE, "By", PROCESS_LABELS, "Resident memory (RSS).")
PROCESS_MEMORY_VIRTUAL = _m("process.memory.virtual", GAUGE, "By", PROCESS_LABELS, "Virtual memory size.")
PROCESS_DISK_IO = _m(
    "process.disk.io",
    COUNTER,
    "By",
    ("direction", "group", "name", "pid"),
    "Bytes the process read from and wrote to storage (needs permission to read /proc/PID/io).",
)
PROCESS_THREADS = _m("process.threads", GAUGE, "{thread}", PROCESS_LABELS, "Threads of the process.")
PROCESS_OPEN_FDS = _m(
    "process.open_file_descriptors",
    GAUGE,
    "{count}",
    PROCESS_LABELS,
    "Open file descriptors (needs permission to list /proc/PID/fd).",
)
PROCESS_CONTEXT_SWITCHES = _m(
    "process.context_switches",
    COUNTER,
    "{count}",
    ("group", "name", "pid", "type"),
    "Voluntary and involuntary switches.",
)

CHECK_UP = _m("check.up", GAUGE, "1", ("check", "target", "type"), "1 if the health check passed, else 0.")
CHECK_DURATION = _m(
    "check.duration",
    GAUGE,
    "ms",
    ("check", "target", "type"),
    "How long the health check's last attempt took.",
)
SCRAPE_UP = _m(
    "scrape.up",
    GAUGE,
    "1",
    ("instance", "job"),
    "1 if the last scrape of a `[[scrape]]` target returned an exposition that parsed, else 0.",
)
SCRAPE_DURATION = _m(
    "scrape.duration",
    GAUGE,
    "ms",
    ("instance", "job"),
    "How long the scrape took: request, body, parsing and mapping.",
)

# the agent's own delivery counters (the `agent` collector): cumulative since the agent started,
# the values of its self-metrics on --metrics-listen, so the collector can alert on them
AGENT_SPOOL_DROPPED_FRAMES = _m(
    "ferry.agent.spool.dropped_frames",
    COUNTER,
    "{frame}",
    (),
    "Unacked frames the agent dropped because its spool exceeded its bound or its disk was full "
    "(ferry_agent_spool_dropped_frames_total; the `agent` collector).",
)
AGENT_SPOOL_DROPPED_POINTS = _m(
    "ferry.agent.spool.dropped_points",
    COUNTER,
    "{point}",
    (),
    "Points in the frames the spool dropped (ferry_agent_spool_dropped_points_total).",
)
AGENT_FRAMES_REJECTED = _m(
    "ferry.agent.frames.rejected",
    COUNTER,
    "{frame}",
    (),
    "Frames dropped because no collector can take them: rejected as invalid, or too large to send "
    "(ferry_agent_frames_rejected_total).",
)
AGENT_POINTS_REJECTED = _m(
    "ferry.agent.points.rejected",
    COUNTER,
    "{point}",
    (),
    "Points in the frames dropped because no collector can take them (ferry_agent_points_rejected_total).",
)

ALL: tuple[MetricDef, ...] = tuple(v for v in list(globals().values()) if isinstance(v, MetricDef))


def render_markdown() -> str:
    """docs/METRICS.md: every metric the agent's own collectors emit, from the declarations above."""
    lines = [
        "# Metrics the agent collects",
        "",
        "Generated from `agent/catalogue.py` by `make docs`; a test fails when this file is stale.",
        "Names and attributes follow the OpenTelemetry hostmetrics receiver; `ferry.agent.*` are",
        "the agent's own counters (the `agent` collector). Every series also carries `host` (and",
        "the agent's configured `labels`).",
        "",
        "| Metric | Kind | Unit | Labels | Description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for d in sorted(ALL, key=lambda d: d.name):
        labels = ", ".join(f"`{k}`" for k in d.labels) or "—"
        lines.append(f"| `{d.name}` | {KIND_NAMES[d.kind]} | `{d.unit}` | {labels} | {d.description} |")
    return "\n".join(lines) + "\n" + PROCESS_LABELS_DOC


PROCESS_LABELS_DOC = """
## Which processes, and why these labels

`process.*` series are sent for a bounded set of processes each cycle:

- the top `process_top_n` (default 10) by CPU over the last interval and the top
  `process_top_n` by resident memory, with `group="top"`;
- every process of a `[[processes]]` group (matched by `name`, `cmdline`, `user`, `pidfile` or
  systemd `unit`), up to the group's `max_processes` (default 10), with `group` = the group's
  name. A process in a group is reported under its group only, also when it ranks in the top.

Labels are `group`, `name` (the kernel's comm, at most 15 characters) and `pid`. At most
`2 x process_top_n + sum(max_processes)` processes are reported per cycle, about 11 series each,
so a host's live series stay bounded whatever runs on it. `pid` is a label because two
processes of one name (workers) are different processes, and a restarted process, with its new
pid, starts new series; the command line and user are not labels, because they can be long or
change, and would multiply series without telling processes apart better than the pid.

`system.processes.count` counts every process (not thread) by the state in `/proc/PID/stat`,
from the same scan. `process.cpu.utilization` needs two samples of the same process (pid and
start time): a process seen for the first time has none yet, rather than a false 0.
"""


if __name__ == "__main__":
    print(render_markdown(), end="")
