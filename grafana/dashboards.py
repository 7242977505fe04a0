"""Ferry's five dashboards, declared from the metric catalogue and the table declarations.

Host overview (one host), processes (top by CPU and memory), fleet (every host, the agents and
their lag) here; events and logs, and alerts in grafana.records. Each panel's SQL is built by
grafana.sql from catalogue entries (name, kind, unit, labels) and declared tables and columns;
grafana.generate renders DASHBOARDS.
"""

from __future__ import annotations

from ferry.agent import catalogue as cat
from grafana.model import Dashboard, Panel, rate_unit, stat, unit
from grafana.records import ALERTS, EVENTS_LOGS
from grafana.sql import (
    ANY_HOST,
    ONE_HOST,
    Latest,
    col,
    counter_rate,
    gauge,
    label_is,
    latest_stat,
    latest_table,
    series_label_is,
    table,
)
from grafana.variables import DATABASE, HOST, HOSTS


def _rate(metric: cat.MetricDef, title: str, by: tuple[str, ...], host: str, **kw) -> Panel:
    return Panel(
        title,
        "timeseries",
        counter_rate(metric, by, host),
        unit=rate_unit(metric),
        columns=by,
        description=f"Rate per second of `{metric.name}` ({metric.description}), by {', '.join(by)}.",
        reads=(metric.name,),
        **kw,
    )


def _gauge(metrics: list[cat.MetricDef], title: str, by: tuple[str, ...], host: str, **kw) -> Panel:
    where = kw.pop("where", "")
    value = kw.pop("value", "{avg}")
    names = ", ".join(f"`{m.name}`" for m in metrics)
    return Panel(
        title,
        "timeseries",
        gauge(metrics, by, host, where=where, value=value),
        unit=kw.pop("unit", unit(metrics[0])),
        columns=by,
        description=kw.pop("description", f"Average of {names} per interval, by {', '.join(by)}."),
        reads=tuple(m.name for m in metrics),
        **kw,
    )


_IDLE = label_is(cat.CPU_UTILIZATION, "state", "idle")
_BUSY = "1 - {avg}"

HOST_OVERVIEW = Dashboard(
    "ferry-host",
    "Ferry / Host overview",
    "One host: CPU, memory, load, disks, network and filesystems, from the agent's host collectors.",
    (DATABASE, HOST),
    (
        stat(
            "Uptime",
            latest_stat(cat.UPTIME, ONE_HOST),
            unit(cat.UPTIME),
            cat.UPTIME.description,
            (cat.UPTIME.name,),
            6,
        ),
        stat(
            "CPU busy",
            "SELECT avg(value) AS value FROM ("
            + gauge([cat.CPU_UTILIZATION], (), ONE_HOST, where=_IDLE, value=_BUSY)
            + ")",
            "percentunit",
            "1 - the idle share of every CPU, averaged over the range's intervals.",
            (cat.CPU_UTILIZATION.name,),
            6,
        ),
        stat(
            "Memory in use",
            latest_stat(
                cat.MEMORY_USAGE, ONE_HOST, "sum", series_label_is(cat.MEMORY_USAGE, "state", "used")
            ),
            unit(cat.MEMORY_USAGE),
            "The latest `system.memory.usage` of state `used`.",
            (cat.MEMORY_USAGE.name,),
            6,
        ),
        stat(
            "Processes",
            latest_stat(cat.PROCESSES_COUNT, ONE_HOST, agg="sum"),
            "short",
            "Every process by the latest `system.processes.count`, all states added.",
            (cat.PROCESSES_COUNT.name,),
            6,
        ),
        _gauge(
            [cat.CPU_UTILIZATION],
            "CPU by state",
            ("state",),
            ONE_HOST,
            where=label_is(cat.CPU_UTILIZATION, "state", "idle", "!="),
            stacked=True,
            description="Share of all CPUs per mode (idle left out), averaged over the CPUs.",
        ),
        _gauge([cat.LOAD_1M, cat.LOAD_5M, cat.LOAD_15M], "Load average", ("metric",), ONE_HOST),
        _gauge([cat.MEMORY_USAGE], "Memory by state", ("state",), ONE_HOST, stacked=True),
        _gauge([cat.PAGING_USAGE], "Swap by state", ("state",), ONE_HOST, stacked=True),
        _rate(cat.DISK_IO, "Disk I/O", ("device", "direction"), ONE_HOST),
        _rate(cat.DISK_OPERATIONS, "Disk operations", ("device", "direction"), ONE_HOST),
        _rate(cat.DISK_IO_TIME, "Disk busy", ("device",), ONE_HOST),
        _rate(cat.NETWORK_IO, "Network I/O", ("device", "direction"), ONE_HOST),
        _rate(cat.NETWORK_PACKETS, "Network packets", ("device", "direction"), ONE_HOST),
        _rate(cat.NETWORK_ERRORS, "Network errors", ("device", "direction"), ONE_HOST),
        _gauge([cat.FILESYSTEM_UTILIZATION], "Filesystem utilization", ("mountpoint",), ONE_HOST),
        Panel(
            "Filesystems",
            "table",
            latest_table(
                ("mountpoint", "device", "type"),
                [
                    Latest("used", cat.FILESYSTEM_USAGE, label_is(cat.FILESYSTEM_USAGE, "state", "used")),
                    Latest("free", cat.FILESYSTEM_USAGE, label_is(cat.FILESYSTEM_USAGE, "state", "free")),
                    Latest("utilization", cat.FILESYSTEM_UTILIZATION),
                ],
                ONE_HOST,
                "mountpoint",
            ),
            columns=("mountpoint", "device", "type", "used", "free", "utilization"),
            column_units=(
                ("used", unit(cat.FILESYSTEM_USAGE)),
                ("free", unit(cat.FILESYSTEM_USAGE)),
                ("utilization", unit(cat.FILESYSTEM_UTILIZATION)),
            ),
            description="Each filesystem's latest used and free bytes and utilization.",
            reads=(cat.FILESYSTEM_USAGE.name, cat.FILESYSTEM_UTILIZATION.name),
        ),
    ),
)

_PROCESS = ("host", "name", "pid", "group")
_PROCESS_COLUMNS = [Latest("cpu", cat.PROCESS_CPU_UTILIZATION), Latest("memory", cat.PROCESS_MEMORY_USAGE)]
_PROCESS_UNITS = (("cpu", unit(cat.PROCESS_CPU_UTILIZATION)), ("memory", unit(cat.PROCESS_MEMORY_USAGE)))


def _top(by: str) -> Panel:
    return Panel(
        f"Top processes by {'CPU' if by == 'cpu' else 'memory'}",
        "table",
        latest_table(_PROCESS, _PROCESS_COLUMNS, ANY_HOST, f"{by} DESC, host, name, pid", limit=20),
        columns=(*_PROCESS, "cpu", "memory"),
        column_units=_PROCESS_UNITS,
        description="Each process's latest CPU (share of one CPU) and resident memory in the range, "
        "as `ferry top` ranks them; the agent reports the top `process_top_n` of each host.",
        reads=(cat.PROCESS_CPU_UTILIZATION.name, cat.PROCESS_MEMORY_USAGE.name),
    )


PROCESSES = Dashboard(
    "ferry-processes",
    "Ferry / Processes",
    "The processes the agents report (top by CPU and memory, and `[[processes]]` groups).",
    (DATABASE, HOSTS),
    (
        _top("cpu"),
        _top("memory"),
        _gauge([cat.PROCESS_CPU_UTILIZATION], "CPU by process", ("host", "name", "pid"), ANY_HOST),
        _gauge([cat.PROCESS_MEMORY_USAGE], "Resident memory by process", ("host", "name", "pid"), ANY_HOST),
        _rate(cat.PROCESS_DISK_IO, "Disk I/O by process", ("host", "name", "pid", "direction"), ANY_HOST),
        _gauge([cat.PROCESS_THREADS], "Threads by process", ("host", "name", "pid"), ANY_HOST),
    ),
)

_AGENTS = "agents"


def _agents_sql() -> str:
    """Each agent's latest row (`agents` is a ReplacingMergeTree: parts may hold older rows) and
    its lag in seconds: now - last seen, as `ferry agents` shows it."""
    a, h, v, addr, seen = (col(_AGENTS, c) for c in ("agent_id", "host", "version", "address", "last_seen"))
    latest = (
        f"SELECT {a} AS agent_, argMax({h}, {seen}) AS host_, argMax({v}, {seen}) AS version_, "
        f"argMax({addr}, {seen}) AS address_, max({seen}) AS seen_ FROM {table(_AGENTS)} GROUP BY {a}"
    )
    return (
        "SELECT agent_ AS agent, host_ AS host, version_ AS version, address_ AS address, "
        "seen_ AS last_seen, dateDiff('millisecond', seen_, now64(3)) / 1000 AS lag "
        f"FROM ({latest}) WHERE {ANY_HOST} ORDER BY lag DESC, agent"
    )


FLEET = Dashboard(
    "ferry-fleet",
    "Ferry / Fleet",
    "Every host side by side, and the agents that send: version, address, lag.",
    (DATABASE, HOSTS),
    (
        stat(
            "Agents",
            f"SELECT count() AS value FROM ({_agents_sql()})",
            "short",
            "Agents that ever sent a frame (on the hosts selected).",
            (_AGENTS,),
            8,
        ),
        stat(
            "Agents lagging over 60 s",
            f"SELECT countIf(lag > 60) AS value FROM ({_agents_sql()})",
            "short",
            "Agents not seen for a minute: a connected agent is recorded at least "
            "every 10 s, so its lag stays under ~10 s plus its batch age.",
            (_AGENTS,),
            8,
        ),
        stat(
            "Hosts",
            f"SELECT uniqExact({col('series', 'host')}) AS value FROM {table('series')} "
            f"WHERE {col('series', 'name')} = '{cat.CPU_UTILIZATION.name}' AND {ANY_HOST}",
            "short",
            "Hosts whose agent reports CPU.",
            ("series",),
            8,
        ),
        _gauge(
            [cat.CPU_UTILIZATION],
            "CPU busy by host",
            ("host",),
            ANY_HOST,
            where=_IDLE,
            value=_BUSY,
            unit="percentunit",
            description="1 - the idle share of each host's CPUs, per interval.",
        ),
        _gauge(
            [cat.MEMORY_UTILIZATION],
            "Memory used by host",
            ("host",),
            ANY_HOST,
            where=label_is(cat.MEMORY_UTILIZATION, "state", "used"),
            description="Share of each host's memory in state `used`.",
        ),
        Panel(
            "Hosts by CPU",
            "table",
            "SELECT host, avg(value) AS busy FROM ("
            + gauge([cat.CPU_UTILIZATION], ("host",), ANY_HOST, where=_IDLE, value=_BUSY)
            + ") GROUP BY host ORDER BY busy DESC, host",
            columns=("host", "busy"),
            column_units=(("busy", "percentunit"),),
            description="Each host's CPU busy share averaged over the range's intervals, busiest first.",
            reads=(cat.CPU_UTILIZATION.name,),
        ),
        Panel(
            "Agents and their lag",
            "table",
            _agents_sql(),
            columns=("agent", "host", "version", "address", "last_seen", "lag"),
            column_units=(("lag", "s"),),
            description="Every agent: the version it reports, the address it last streamed from, "
            "when it was last recorded and the lag (now - last seen), as `ferry agents`.",
            reads=(_AGENTS,),
            width=24,
        ),
        _rate(cat.AGENT_SPOOL_DROPPED_FRAMES, "Frames dropped from spools", ("host",), ANY_HOST),
        _rate(cat.AGENT_FRAMES_REJECTED, "Frames rejected", ("host",), ANY_HOST),
    ),
)


DASHBOARDS = (HOST_OVERVIEW, PROCESSES, FLEET, EVENTS_LOGS, ALERTS)
