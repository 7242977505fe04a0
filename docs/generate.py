"""Generate docs/self-metrics.md from the metric objects agent/ and collector/ declare.

`make docs` runs this (`python docs/generate.py`); tests/docs/test_docs.py renders the page again
and fails when the committed file differs. The declarations are the prometheus_client metrics of
`ferry.agent.selfmetrics` and `ferry.collector.selfmetrics`: a metric added there is documented
by running `make docs`, with the help text it is declared with.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "self-metrics.md"

HEAD = """\
# Self-metrics: what the agent and the collector say about themselves

Generated from `agent/selfmetrics.py` and `collector/selfmetrics.py` by `make docs`; a test
fails when this file is stale.

Each process serves its own metrics in the Prometheus text format at `http://ADDRESS/metrics`,
where ADDRESS is its `--metrics-listen` (`metrics_listen`; `''` turns it off): the collector
on 127.0.0.1:9470 and the agent on 127.0.0.1:9471 by default. Names are as exposed: a counter
`x_total` (prometheus_client also exports `x_created`), a histogram `x_bucket`, `x_sum` and
`x_count`. Which of them show each way data can be lost or delayed:
[delivery.md](delivery.md#every-way-data-can-still-be-lost-or-doubled-and-how-you-see-it).
"""

SECTIONS = (
    ("Agent", "ferry.agent.selfmetrics", "agent/selfmetrics.py"),
    ("Collector", "ferry.collector.selfmetrics", "collector/selfmetrics.py"),
)


def declared(module: ModuleType) -> list[MetricWrapperBase]:
    """The metrics a module declares at its top level, alone or in a dict, list or tuple (one
    per record kind, say), in the order it declares them."""
    found: dict[int, MetricWrapperBase] = {}
    for value in vars(module).values():
        if isinstance(value, dict):
            group = list(value.values())
        elif isinstance(value, list | tuple):
            group = list(value)
        else:
            group = [value]
        for item in group:
            if isinstance(item, MetricWrapperBase):
                found.setdefault(id(item), item)
    return list(found.values())


def exposed_name(metric: MetricWrapperBase) -> str:
    family = metric.describe()[0]  # the family name: a counter's without its _total suffix
    return f"{family.name}_total" if family.type == "counter" else family.name


def _row(metric: MetricWrapperBase) -> str:
    family = metric.describe()[0]
    # the label names and bucket bounds have no public accessor; these attributes are the ones
    # prometheus_client itself reads when it renders a child
    labels = ", ".join(f"`{name}`" for name in metric._labelnames) or "—"
    description = family.documentation
    if family.type == "histogram":
        bounds = [b for b in metric._upper_bounds if b != float("inf")]
        description += f" (buckets {', '.join(f'{b:g}' for b in bounds)}, +Inf)"
    return f"| `{exposed_name(metric)}` | {family.type} | {labels} | {description} |"


def render_markdown() -> str:
    """docs/self-metrics.md, from the metrics the two selfmetrics modules declare now."""
    import importlib

    lines = [HEAD]
    for title, module_name, path in SECTIONS:
        module = importlib.import_module(module_name)
        lines += [
            f"## {title} (`{path}`)",
            "",
            "| Metric | Type | Labels | Description |",
            "| --- | --- | --- | --- |",
            *(_row(m) for m in sorted(declared(module), key=exposed_name)),
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    PAGE.write_text(render_markdown())
    print(f"wrote {PAGE.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
