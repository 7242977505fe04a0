"""docs/configuration.md is generated from the config dataclasses: it must match what `make docs`
writes now, and name every key of both executables and of every [[table]] section."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ferry.agent.config import AgentConfig
from ferry.collector.config import CollectorConfig
from ferry.runtime import configdoc

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_fresh():
    assert DOC.read_text() == configdoc.render_markdown(), (
        "docs/configuration.md is stale: run `make docs` "
        "(python -m ferry.runtime.configdoc > docs/configuration.md)"
    )


def test_every_key_and_table_key_is_in_the_doc():
    text = DOC.read_text()
    for cls in (AgentConfig, CollectorConfig):
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in text, f.name
            section = f.metadata.get("section")
            if section is not None:
                assert f"Each `[[{section.key}]]` table:" in text
                for key in section.fields():
                    assert f"| `{key.name}` |" in text, (section.key, key.name)
    assert "`--spool-max-bytes`" in text and "`--interval DUR`" in text
    assert "| `checks` | *file only* |" in text


def test_the_type_column_says_tables_ports_lists_and_durations():
    text = configdoc.render_markdown()  # what `make docs` writes now
    for row in (
        "| `smtp_port` | port (1 to 65535) | `25` |",
        "| `to` | list of e-mail addresses | — |",
        "| `match` | table of strings | — |",
        "| `group_wait` | duration or 0 | `30s` |",
    ):
        assert row in text, row
