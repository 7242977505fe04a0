"""The dashboards of Ferry's record tables: events and logs, and the collector's alerts.

Their SQL names the columns of `ferry.collector.storage.tables` (`col` refuses one a table lacks).
"""

from __future__ import annotations

from grafana.model import Dashboard, Panel, stat
from grafana.sql import ANY_HOST, col, table
from grafana.variables import DATABASE, HOSTS


def _records_count(kind: str, by: str) -> str:
    ts, what = col(kind, "ts"), col(kind, by)
    col(kind, "host")  # the column ANY_HOST filters on
    return (
        f"SELECT $__timeInterval({ts}) AS time, {what} AS {by}, count() AS value FROM {table(kind)} "
        f"WHERE $__timeFilter({ts}) AND {ANY_HOST} "
        f"GROUP BY time, {by} ORDER BY time"
    )


def _records_list(kind: str, columns: tuple[str, ...], limit: int = 500) -> str:
    ts = col(kind, "ts")
    return (
        f"SELECT {ts} AS time, {', '.join(col(kind, c) for c in columns)} FROM {table(kind)} "
        f"WHERE $__timeFilter({ts}) AND {ANY_HOST} ORDER BY time DESC LIMIT {limit}"
    )


_LOG_COLUMNS = ("host", "service", "level", "message", "trace_id")
_EVENT_COLUMNS = ("host", "service", "type", "category", "action", "label", "value", "user_id")

EVENTS_LOGS = Dashboard(
    "ferry-events-logs",
    "Ferry / Events and logs",
    "Application events and log records the agents forwarded (`ferry events`, `ferry logs`).",
    (DATABASE, HOSTS),
    (
        Panel(
            "Log records by level",
            "timeseries",
            _records_count("logs", "level"),
            unit="short",
            columns=("level",),
            description="Log records per interval, by level.",
            reads=("logs",),
            stacked=True,
        ),
        Panel(
            "Events by type",
            "timeseries",
            _records_count("events", "type"),
            unit="short",
            columns=("type",),
            description="Events per interval, by type.",
            reads=("events",),
            stacked=True,
        ),
        Panel(
            "Logs",
            "table",
            _records_list("logs", _LOG_COLUMNS),
            columns=("time", *_LOG_COLUMNS),
            description="The newest 500 log records in the range.",
            reads=("logs",),
            width=24,
        ),
        Panel(
            "Events",
            "table",
            _records_list("events", _EVENT_COLUMNS),
            columns=("time", *_EVENT_COLUMNS),
            description="The newest 500 events in the range.",
            reads=("events",),
            width=24,
        ),
    ),
)


def _alerts_now() -> str:
    """Each alert instance's latest transition (the `alerts` table holds every change), kept when
    it is pending or firing, or resolved within the range. Transitions of one millisecond (a rule
    without `for` goes pending and firing in one evaluation) are ordered as they happen."""
    ts, rule, id_, labels, state, value, severity = (
        col("alerts", c) for c in ("ts", "rule", "id", "labels", "state", "value", "severity")
    )
    order = f"({ts}, indexOf(['inactive', 'pending', 'firing', 'resolved'], {state}))"
    latest = (
        f"SELECT {rule} AS rule_, argMax({labels}, {order}) AS labels_, argMax({state}, {order}) AS state_, "
        f"max({ts}) AS since_, argMax({value}, {order}) AS value_, argMax({severity}, {order}) AS severity_ "
        f"FROM {table('alerts')} GROUP BY {rule}, {id_}"
    )
    return (
        "SELECT rule_ AS rule, labels_ AS labels, state_ AS state, since_ AS since, value_ AS value, "
        f"severity_ AS severity FROM ({latest}) "
        "WHERE state IN ('pending', 'firing') OR (state = 'resolved' AND $__timeFilter(since)) "
        "ORDER BY state = 'firing' DESC, severity, rule"
    )


_CHANGE = ("rule", "labels", "previous", "state", "value", "threshold", "severity")


def _alert_changes() -> str:
    ts = col("alerts", "ts")
    return (
        f"SELECT {ts} AS time, {', '.join(col('alerts', c) for c in _CHANGE)} FROM {table('alerts')} "
        f"WHERE $__timeFilter({ts}) ORDER BY time DESC LIMIT 500"
    )


ALERTS = Dashboard(
    "ferry-alerts",
    "Ferry / Alerts",
    "The collector's alert instances (`--rules`): what fires now and every state change.",
    (DATABASE,),
    (
        stat(
            "Firing",
            f"SELECT countIf(state = 'firing') AS value FROM ({_alerts_now()})",
            "short",
            "Alert instances firing now.",
            ("alerts",),
            12,
        ),
        stat(
            "Pending",
            f"SELECT countIf(state = 'pending') AS value FROM ({_alerts_now()})",
            "short",
            "Alert instances whose condition holds, waiting for their `for`.",
            ("alerts",),
            12,
        ),
        Panel(
            "Alerts now",
            "table",
            _alerts_now(),
            columns=("rule", "labels", "state", "since", "value", "severity"),
            description="Every pending or firing instance, and those resolved in the range: its "
            "latest state, since when, and the value that moved it.",
            reads=("alerts",),
            width=24,
        ),
        Panel(
            "State changes",
            "table",
            _alert_changes(),
            columns=("time", *_CHANGE),
            description="Every transition of every instance in the range, newest first.",
            reads=("alerts",),
            width=24,
        ),
    ),
)
