"""tests/grafana/expand.py turns SQL into what Grafana's ClickHouse plugin sends, step by step
as the plugin's sources do (see that module)."""

from __future__ import annotations

import pytest

from tests.grafana.expand import ALL, ExpansionError, Var, backend_macros, conditional_all, expand

FROM_MS, TO_MS = 1_415_792_726_371, 1_447_328_726_371  # the plugin's macros_test.go range


def test_time_filter_and_interval():
    sql = "SELECT $__timeInterval(p.ts) AS t FROM x AS p WHERE $__timeFilter(p.ts)"
    assert backend_macros(sql, FROM_MS, TO_MS, 20_000) == (
        "SELECT toStartOfInterval(toDateTime(p.ts), INTERVAL 20 second) AS t FROM x AS p "
        "WHERE p.ts >= toDateTime(1415792726) AND p.ts <= toDateTime(1447328726)"
    )


def test_interval_is_whole_seconds_and_at_least_one():
    assert backend_macros("modulo($__interval_s, 60)", 0, 1, 1_500) == "modulo(1, 60)"
    assert backend_macros("modulo($__interval_s, 60)", 0, 1, 200) == "modulo(1, 60)"
    assert backend_macros("modulo($__interval_s, 60)", 0, 1, 120_000) == "modulo(120, 60)"


def test_a_macro_without_arguments_takes_the_next_parentheses():
    """sqlutil scans from the name to the next `(`: an argument-less macro followed by one
    swallows it (why grafana/sql.py writes them right before a `)`)."""
    assert backend_macros("$__interval_s * count(x)", 0, 1, 5_000) == "5"
    assert backend_macros("($__interval_s) * count(x)", 0, 1, 5_000) == "(5) * count(x)"


def test_conditional_all():
    sql = "WHERE $__conditionalAll(host IN (${host:singlequote}), $host) AND 1"
    assert conditional_all(sql, {"host": Var([ALL], ["a"])}) == "WHERE 1=1 AND 1"
    assert conditional_all(sql, {"host": Var(["a", "b"])}) == "WHERE host IN (${host:singlequote}) AND 1"


def test_variables_as_grafana_formats_them():
    v = {"host": Var(["a", "o'b"], ["a", "o'b", "c"]), "database": Var("ferry")}
    assert expand("${database}.t WHERE h IN (${host:singlequote})", v, 0, 1000, 1000) == (
        "ferry.t WHERE h IN ('a','o\\'b')"
    )
    # the plugin's own format: an array quoted and joined, a single value as it is
    assert expand("IN ($host) $database", v, 0, 1000, 1000) == "IN ('a','o'b') ferry"
    every = {"host": Var([ALL], ["a", "c"])}
    assert expand("IN (${host:singlequote})", every, 0, 1000, 1000) == "IN ('a','c')"


def test_an_unknown_macro_or_format_is_refused():
    with pytest.raises(ExpansionError, match="__timeFilter_ms"):
        backend_macros("$__timeFilter_ms(ts)", 0, 1, 1000)
    with pytest.raises(ExpansionError, match="format 'csv'"):
        expand("${host:csv}", {"host": Var("a")}, 0, 1, 1000)
