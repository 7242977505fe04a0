"""Panels, variables and dashboards, and the Grafana JSON they render to.

A panel says what it shows (its SQL, its kind, its unit from the catalogue) and what a result
must look like (`columns`: a table's columns, or a time series' label columns); the JSON is
Grafana's dashboard model (schemaVersion 39) with targets for the ClickHouse plugin
(`grafana-clickhouse-datasource` 4.x: editorType "sql", rawSql, format 0 = time series, 1 = table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ferry.agent.catalogue import MetricDef
from grafana.sql import layout

DATASOURCE_UID = "ferry-clickhouse"
DATASOURCE = {"type": "grafana-clickhouse-datasource", "uid": DATASOURCE_UID}

# the plugin's query formats (grafana-plugin-sdk-go sqlutil.FormatQueryOption) and query types
_FORMAT = {"timeseries": 0, "table": 1, "stat": 1}
_QUERY_TYPE = {"timeseries": "timeSeries", "table": "table", "stat": "table"}

# catalogue units (UCUM, as OpenTelemetry writes them) → Grafana unit ids, of a value and of its
# rate per second; a unit in braces ({packet}) is a count
UNITS = {"By": "bytes", "1": "percentunit", "s": "s", "ms": "ms"}
RATE_UNITS = {"By": "binBps", "s": "percentunit", "{packet}": "pps", "{operation}": "iops"}


def unit(metric: MetricDef) -> str:
    """The Grafana unit of a metric's values."""
    return UNITS.get(metric.unit, "short")


def rate_unit(metric: MetricDef) -> str:
    """The Grafana unit of a counter's rate per second (seconds per second: a busy fraction)."""
    return RATE_UNITS.get(metric.unit, "cps")


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str  # "timeseries", "table" or "stat"
    sql: str
    unit: str = ""  # Grafana unit id of the values (time series, stat)
    columns: tuple[str, ...] = ()  # a table's columns; a time series' label columns after `time`
    column_units: tuple[tuple[str, str], ...] = ()  # a table's (column, unit) overrides
    description: str = ""
    reads: tuple[str, ...] = ()  # the metrics or tables it reads (docs/grafana.md)
    width: int = 12
    stacked: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _FORMAT:
            raise ValueError(f"panel {self.title!r}: kind {self.kind!r} is not one of {', '.join(_FORMAT)}")

    def json(self, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit} if self.unit else {}
        options: dict[str, Any] = {}
        if self.kind == "timeseries":
            defaults["custom"] = {
                "drawStyle": "line",
                "fillOpacity": 20 if self.stacked else 0,
                "showPoints": "never",
                "stacking": {"mode": "normal" if self.stacked else "none", "group": "A"},
            }
            options = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}}
        elif self.kind == "stat":
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        overrides = [
            {"matcher": {"id": "byName", "options": c}, "properties": [{"id": "unit", "value": u}]}
            for c, u in self.column_units
        ]
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": overrides},
            "options": options,
            "targets": [
                {
                    "refId": "A",
                    "datasource": DATASOURCE,
                    "editorType": "sql",
                    "queryType": _QUERY_TYPE[self.kind],
                    "format": _FORMAT[self.kind],
                    "rawSql": layout(self.sql),
                }
            ],
        }


def stat(title: str, sql: str, unit: str, description: str, reads: tuple[str, ...], width: int) -> Panel:
    """A stat panel: `sql` answers one number."""
    return Panel(title, "stat", sql, unit=unit, description=description, reads=reads, width=width)


@dataclass(frozen=True)
class Variable:
    """A dashboard variable: `query` (values from SQL), or `constant` (hidden, `value`)."""

    name: str
    kind: str
    label: str = ""
    sql: str = ""  # a query variable's SQL (one column: its values)
    value: str = ""  # a constant's value
    multi: bool = False  # several values, and an All option

    def json(self) -> dict[str, Any]:
        if self.kind == "constant":
            return {
                "name": self.name,
                "type": "constant",
                "label": self.label,
                "hide": 2,
                "query": self.value,
            }
        return {
            "name": self.name,
            "type": "query",
            "label": self.label,
            "datasource": DATASOURCE,
            # the plugin's variable query: queryType "sql" for its editor (CHVariableSupport),
            # editorType "sql" for metricFindQuery, which older versions call with it directly
            "query": {"refId": self.name, "queryType": "sql", "editorType": "sql", "rawSql": self.sql},
            "definition": self.sql,
            "refresh": 2,  # on time range change: hosts come and go
            "sort": 1,
            "multi": self.multi,
            "includeAll": self.multi,
            "current": {"text": ["All"], "value": ["$__all"]} if self.multi else {},
            "options": [],
        }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    time_from: str = "now-1h"
    tags: tuple[str, ...] = field(default=("ferry",))

    def json(self) -> dict[str, Any]:
        """Panels fill rows of 24 columns left to right, each row as tall as its kind needs."""
        panels, x, y, row_height = [], 0, 0, 0
        for i, p in enumerate(self.panels, start=1):
            height = 4 if p.kind == "stat" else 9
            if x + p.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(p.json(i, x, y, height))
            x, row_height = x + p.width, max(row_height, height)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "utc",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": self.time_from, "to": "now"},
            "templating": {"list": [v.json() for v in self.variables]},
            "annotations": {"list": []},
            "links": [],
            "panels": panels,
        }
