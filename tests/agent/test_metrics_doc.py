"""docs/METRICS.md is generated from the catalogue: it must match what `make docs` writes now."""

from __future__ import annotations

from pathlib import Path

from ferry.agent import catalogue

DOC = Path(__file__).resolve().parents[2] / "docs" / "METRICS.md"


def test_metrics_doc_is_fresh():
    assert DOC.read_text() == catalogue.render_markdown(), "docs/METRICS.md is stale: run `make docs`"


def test_every_declared_metric_is_in_the_doc():
    text = DOC.read_text()
    assert len(catalogue.ALL) >= 27
    for d in catalogue.ALL:
        assert f"| `{d.name}` |" in text
