"""The committed Grafana files are what grafana/generate.py renders from the declarations now,
and the declarations hold what Grafana and the plugin need (units from the catalogue, one data
source, variables the SQL names)."""

from __future__ import annotations

import json
import re

import pytest

from ferry.agent import catalogue
from grafana import generate
from grafana.dashboards import DASHBOARDS
from grafana.model import DATASOURCE_UID, rate_unit, unit
from grafana.sql import counter_rate, gauge, latest_table


def test_committed_files_are_fresh():
    stale = [
        str(path.relative_to(generate.ROOT))
        for path, text in generate.files().items()
        if not path.exists() or path.read_bytes() != text.encode()
    ]
    assert not stale, f"stale: {stale}; run `make dashboards`"


def test_every_dashboard_file_is_generated():
    on_disk = {p.name for p in generate.DASHBOARD_DIR.glob("*.json")}
    assert on_disk == {f"{d.uid}.json" for d in DASHBOARDS}


@pytest.mark.parametrize("d", DASHBOARDS, ids=lambda d: d.uid)
def test_panels_name_the_data_source_and_declared_variables(d):
    board = json.loads(generate.dashboard_json(d))
    names = {v["name"] for v in board["templating"]["list"]}
    titles = [p["title"] for p in board["panels"]]
    assert len(titles) == len(set(titles)), "panel titles are how the panel test finds a panel"
    for p in board["panels"]:
        target = p["targets"][0]
        assert p["datasource"]["uid"] == target["datasource"]["uid"] == DATASOURCE_UID
        used = set(re.findall(r"\$\{?(\w+)", target["rawSql"])) - {"__timeFilter", "__timeInterval"}
        used -= {"__interval_s", "__conditionalAll"}
        assert used <= names, f"{p['title']}: variables {sorted(used - names)} are not on the dashboard"


def test_units_come_from_the_catalogue():
    assert unit(catalogue.MEMORY_USAGE) == "bytes"
    assert unit(catalogue.CPU_UTILIZATION) == "percentunit"
    assert unit(catalogue.CHECK_DURATION) == "ms"
    assert unit(catalogue.PROCESSES_COUNT) == "short"
    assert rate_unit(catalogue.NETWORK_IO) == "binBps"
    assert rate_unit(catalogue.NETWORK_PACKETS) == "pps"
    panels = {p.title: p for d in DASHBOARDS for p in d.panels}
    assert panels["Memory by state"].unit == "bytes"
    assert panels["Network I/O"].unit == "binBps"
    assert panels["Uptime"].unit == "s"


def test_a_declaration_the_catalogue_does_not_have_is_refused():
    with pytest.raises(KeyError, match="has no label 'mode'"):
        counter_rate(catalogue.NETWORK_IO, ("mode",), "1")
    with pytest.raises(ValueError, match="is a gauge metric, not a counter"):
        counter_rate(catalogue.MEMORY_USAGE, ("state",), "1")
    with pytest.raises(ValueError, match="is a counter metric, not a gauge"):
        gauge([catalogue.NETWORK_IO], ("device",), "1")
    with pytest.raises(KeyError, match="has no label 'state'"):
        from grafana.sql import Latest

        latest_table(("state",), [Latest("x", catalogue.FILESYSTEM_UTILIZATION)], "1", "state")
