"""The ClickHouse SQL of Ferry's dashboard panels, written for Grafana's ClickHouse plugin.

Every name comes from a declaration: metric names, kinds and label keys from
`ferry.agent.catalogue` (a label a metric does not declare is refused here), table and column
names from `ferry.collector.storage.tables` (`col` raises KeyError for a column the table lacks).
So a renamed metric, label or column fails `make dashboards` instead of leaving a panel empty.

How values are stored (docs/storage.md, docs/querying.md) decides the SQL:
- a GAUGE is averaged over every point of the bucket: raw `samples`, or, when the bucket is a
  whole number of minutes, `samples_1m` (sum(sum) / sum(count), the same average: the rollup's
  sum and count merge exactly), since a day of raw points is 60x the rows;
- a COUNTER (cumulative) becomes a per-second rate as `ferry query --agg rate` computes it
  (ferry.collector.query.grouped.growth_sql): per series, the pairs of consecutive points in
  range whose later point falls in the bucket; a drop is a reset (the new value is the growth);
  the growth over the seconds the pairs span, added over the group's series. Rates always read
  raw points (the rollups keep no order inside a minute), as the query service does.

The plugin's macros used here: `$__timeFilter(col)`, `$__timeInterval(col)`, `$__interval_s` and
`$__conditionalAll(cond, $var)`. The backend finds a macro's arguments by scanning forward from
its name to the matching parenthesis (grafana-plugin-sdk-go data/sqlutil/macros.go), so a macro
without arguments is always written right before a `)`: otherwise the next `(...)` in the
query would be taken as its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ferry.agent.catalogue import MetricDef
from ferry.collector.storage.tables import TABLES
from ferry.series import COUNTER, GAUGE, KIND_NAMES

DB = "${database}"  # a hidden constant variable of every dashboard: the store's database

# the host filter on the `series` table: one host picked, or a multi-value variable with All
ONE_HOST = "host = ${host:singlequote}"
ANY_HOST = "$__conditionalAll(host IN (${host:singlequote}), $host)"


def table(name: str) -> str:
    """A declared table, qualified by the dashboard's database variable."""
    if name not in TABLES:
        raise KeyError(f"no table {name!r} is declared in ferry.collector.storage.tables")
    return f"{DB}.{name}"


def col(table_name: str, column: str) -> str:
    """A declared column of a declared table (KeyError naming both when it is not)."""
    return TABLES[table_name].column(column).name


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _label(metric: MetricDef, key: str) -> str:
    """The expression of a label of `metric` on the series subquery `s` (`host` is a column)."""
    if key == "host":
        return "s.series_host"
    if key not in metric.labels:
        raise KeyError(f"{metric.name} has no label {key!r} (its labels: {', '.join(metric.labels)})")
    return f"s.series_labels[{quote(key)}]"


def _names(metrics: Sequence[MetricDef]) -> str:
    return ", ".join(quote(m.name) for m in metrics)


def series_subquery(metrics: Sequence[MetricDef], host: str) -> str:
    """The series of `metrics` on the hosts `host` selects, one row each, as `s`: `series` is an
    AggregatingMergeTree whose parts may not have merged yet, so a series can have several rows."""
    sid, name, labels, h = (col("series", c) for c in ("series_id", "name", "labels", "host"))
    return (
        f"(SELECT {sid}, any({labels}) AS series_labels, any({h}) AS series_host FROM {table('series')} "
        f"WHERE {name} IN ({_names(metrics)}) AND {host} GROUP BY {sid}) AS s"
    )


def _series_ids(metrics: Sequence[MetricDef], host: str, where: str = "") -> str:
    """The condition on a points table `p` that its series is one of `metrics` on `host`, and
    passes `where` (a condition on the `series` table: `series_label_is`)."""
    cond = f" AND {where}" if where else ""
    return (
        f"p.series_id IN (SELECT {col('series', 'series_id')} FROM {table('series')} "
        f"WHERE {col('series', 'name')} IN ({_names(metrics)}) AND {host}{cond})"
    )


METRIC = "metric"  # in a gauge's `by`: the metric's name (a panel of several metrics)


def _group(metric: MetricDef, by: Sequence[str]) -> tuple[str, str]:
    """(select list, group-by list) of the label columns `by`, each named by its key."""
    exprs = ["p.name" if k == METRIC else _label(metric, k) for k in by]
    select = "".join(f", {e} AS {k}" for e, k in zip(exprs, by, strict=True))
    return select, "".join(f", {k}" for k in by)


def _kind(metrics: Sequence[MetricDef], kind: int) -> None:
    for m in metrics:
        if m.kind != kind:
            raise ValueError(f"{m.name} is a {KIND_NAMES[m.kind]} metric, not a {KIND_NAMES[kind]}")


def series_label_is(metric: MetricDef, key: str, value: str) -> str:
    """A condition on a label of the `series` table's rows."""
    _label(metric, key)
    return f"{col('series', 'labels')}[{quote(key)}] = {quote(value)}"


def label_is(metric: MetricDef, key: str, value: str, op: str = "=") -> str:
    """A condition on a label of the joined series `s` (`op`: = or !=)."""
    return f"{_label(metric, key)} {op} {quote(value)}"


def gauge(
    metrics: Sequence[MetricDef],
    by: Sequence[str],
    host: str,
    where: str = "",
    value: str = "{avg}",
) -> str:
    """A time series of gauges: per bucket and group of `by` labels (METRIC: by metric name),
    the average of every point; `where` is a condition on the series' labels (`s.` columns);
    `value` wraps the average (`1 - {avg}`)."""
    _kind(metrics, GAUGE)
    select, group = _group(metrics[0], by)
    cond = f" AND {where}" if where else ""
    ts, name = col("samples", "ts"), col("samples", "name")
    parts = []
    for source, avg, use in (
        # whole minutes: the 1-minute rollup; anything else: the raw points
        ("samples_1m", f"sum(p.{col('samples_1m', 'sum')}) / sum(p.{col('samples_1m', 'count')})", "= 0"),
        ("samples", f"avg(p.{col('samples', 'value')})", "!= 0"),
    ):
        parts.append(
            f"SELECT $__timeInterval(p.{ts}) AS time{select}, {value.format(avg=avg)} AS value "
            f"FROM {table(source)} AS p INNER JOIN {series_subquery(metrics, host)} "
            f"ON p.series_id = s.{col('series', 'series_id')} "
            f"WHERE p.{name} IN ({_names(metrics)}) AND $__timeFilter(p.{ts}){cond} "
            f"AND (modulo($__interval_s, 60) {use}) "
            f"GROUP BY time{group}"
        )
    return f"SELECT * FROM ({parts[0]} UNION ALL {parts[1]}) ORDER BY time"


def counter_rate(metric: MetricDef, by: Sequence[str], host: str, where: str = "") -> str:
    """A time series of a counter's rate per second, added over the series of each group of `by`
    labels, as `ferry query --agg rate --by ...` answers it (see the module's docstring)."""
    _kind([metric], COUNTER)
    select, group = _group(metric, by)
    ts, value = col("samples", "ts"), col("samples", "value")
    ms = f"toUnixTimestamp64Milli(p.{ts})"
    pairs = (
        f"SELECT p.series_id AS series_id, $__timeInterval(p.{ts}) AS t, p.{value} AS value, {ms} AS ms, "
        f"lagInFrame(p.{value}) OVER w AS prev, lagInFrame({ms}, 1, {ms}) OVER w AS prev_ms, "
        "row_number() OVER w > 1 AS has_prev "
        f"FROM {table('samples')} AS p "
        f"WHERE p.{col('samples', 'name')} = {quote(metric.name)} AND $__timeFilter(p.{ts}) "
        f"AND {_series_ids([metric], host)} "
        f"WINDOW w AS (PARTITION BY p.series_id ORDER BY p.{ts}, p.{value} "
        "ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)"
    )
    growth = (
        "SELECT series_id, t, sumIf(if(value >= prev, value - prev, value), has_prev) AS grown, "
        f"sumIf(ms - prev_ms, has_prev) AS paired_ms FROM ({pairs}) "
        "GROUP BY series_id, t HAVING paired_ms > 0"
    )
    return (
        f"SELECT r.t AS time{select}, sum(r.grown / (r.paired_ms / 1000)) AS value "
        f"FROM ({growth}) AS r INNER JOIN {series_subquery([metric], host)} "
        f"ON r.series_id = s.{col('series', 'series_id')}{' WHERE ' + where if where else ''} "
        f"GROUP BY time{group} ORDER BY time"
    )


@dataclass(frozen=True)
class Latest:
    """A column of a latest-value table: the last value in range of `metric`'s series, added
    over the row's series that pass `where` (a condition on `s.` labels)."""

    name: str
    metric: MetricDef
    where: str = ""


def latest_table(by: Sequence[str], columns: Sequence[Latest], host: str, order: str, limit: int = 0) -> str:
    """One row per group of `by` labels (which every column's metric must declare), with each
    column's latest value: the newest point of each series in the dashboard's range."""
    metrics = list({c.metric.name: c.metric for c in columns}.values())
    for m in metrics:
        for k in by:
            _label(m, k)
    select = ", ".join(f"{_label(metrics[0], k)} AS {k}" for k in by)
    ts, value = col("samples", "ts"), col("samples", "value")
    cells = ", ".join(
        f"sumIf(r.v, r.name = {quote(c.metric.name)}{' AND ' + c.where if c.where else ''}) AS {c.name}"
        for c in columns
    )
    latest = (
        f"SELECT p.{col('samples', 'name')} AS name, p.series_id AS series_id, "
        f"argMax(p.{value}, p.{ts}) AS v FROM {table('samples')} AS p "
        f"WHERE p.{col('samples', 'name')} IN ({_names(metrics)}) AND $__timeFilter(p.{ts}) "
        f"AND {_series_ids(metrics, host)} GROUP BY name, series_id"
    )
    return (
        f"SELECT {select}, {cells} FROM ({latest}) AS r INNER JOIN {series_subquery(metrics, host)} "
        f"ON r.series_id = s.{col('series', 'series_id')} "
        f"GROUP BY {', '.join(by)} ORDER BY {order}" + (f" LIMIT {limit}" if limit else "")
    )


def latest_stat(metric: MetricDef, host: str, agg: str = "max", where: str = "") -> str:
    """One number: `agg` over the latest value in range of each of `metric`'s series (those
    that pass `where`, a condition on the `series` table)."""
    ts, value = col("samples", "ts"), col("samples", "value")
    return (
        f"SELECT {agg}(v) AS value FROM (SELECT argMax(p.{value}, p.{ts}) AS v FROM {table('samples')} AS p "
        f"WHERE p.{col('samples', 'name')} = {quote(metric.name)} AND $__timeFilter(p.{ts}) "
        f"AND {_series_ids([metric], host, where)} GROUP BY p.series_id)"
    )


# clauses that start a line of their own in a panel's SQL (Grafana's editor shows it as written)
_CLAUSES = ("FROM", "WHERE", "GROUP BY", "HAVING", "ORDER BY", "LIMIT", "UNION ALL", "INNER JOIN", "WINDOW")


def layout(sql: str) -> str:
    """`sql` with each clause of a query or subquery on its own line, indented by its depth:
    only the space before a clause (or after the `(` that opens a subquery) changes, never
    inside a literal or a function's or window's parentheses."""
    out: list[str] = []
    subquery = [True]  # per open parenthesis: whether it holds a SELECT
    i, quoted = 0, False
    while i < len(sql):
        c = sql[i]
        indent = "\n" + "    " * (len(subquery) - 1)
        if quoted:
            if c == "\\":
                out.append(sql[i : i + 2])
                i += 2
                continue
            quoted = c != "'"
        elif c == "'":
            quoted = True
        elif c == "(":
            subquery.append(sql.startswith("SELECT ", i + 1))
            if subquery[-1]:
                out.append("(" + indent + "    ")
                i += 1
                continue
        elif c == ")":
            subquery.pop()
        elif c == " " and subquery[-1]:
            clause = next((k for k in _CLAUSES if sql.startswith(f" {k} ", i)), "")
            if clause:
                out.append(indent + clause + (indent if clause == "UNION ALL" else " "))
                i += len(clause) + 2
                continue
        out.append(c)
        i += 1
    return "".join(out)
