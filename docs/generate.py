"""Generate the parts of docs/ that have a declaration in code.

- docs/self-metrics.md, whole, from the prometheus_client metrics `ferry.agent.selfmetrics` and
  `ferry.collector.selfmetrics` declare (a metric added there is documented with its help text);
- the fields table of docs/events-logs.md, from the record kinds of `ferry.records` and the
  limits of `ferry.limits.RecordLimits`, and the roles table of docs/security.md, from the
  services the collector serves and the roles `ferry.collector.auth.gate` gives them: the text
  between a page's `<!-- generated: NAME -->` and `<!-- end generated: NAME -->` lines is
  replaced, the prose around it is written by hand.

`make docs` runs this (`python docs/generate.py`); tests/docs/test_docs.py calls `pages()` and
fails when a committed page differs from what it renders now.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from prometheus_client.metrics import MetricWrapperBase

DOCS = Path(__file__).resolve().parent
PAGE = DOCS / "self-metrics.md"
EVENTS_LOGS = DOCS / "events-logs.md"
SECURITY = DOCS / "security.md"

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


_TYPES = {1: "double", 3: "int64", 8: "bool", 9: "string"}  # FieldDescriptor.TYPE_*


def _field_type(field) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map"
    return _TYPES.get(field.type, field.type)


def _holds(kind, name: str, lim) -> str:
    """What field `name` of a record of `kind` may hold, by the limits that apply to it."""
    from ferry.limits import DAY_MS, LABEL_KEY_RE

    if name == "time_unix_ns":
        past, future = lim.max_past_ns // (DAY_MS * 1_000_000), lim.max_future_ns // 60_000_000_000
        return f"now \N{MINUS SIGN} {past} days … now + {future} minutes; 0: the agent stamps it on receipt"
    if name.startswith("has_") and name[4:] in kind.optional_numbers:
        return f"whether `{name[4:]}` is set (else it is stored NULL)"
    if name == kind.attributes:
        return (
            f"≤ {lim.max_attributes} pairs; keys `{LABEL_KEY_RE.pattern}`, ≤ {lim.max_field_bytes} chars; "
            f"values ≤ {lim.max_attribute_value_bytes:,} bytes"
        )
    rules = (
        ("required", name == kind.required),
        (f"≤ {lim.max_field_bytes:,} bytes", name in kind.short),
        (f"≤ {lim.max_message_bytes:,} bytes", name in kind.long),
        (f"≤ {lim.max_id_len} chars", name in kind.ids),
        ("finite when set", name in kind.optional_numbers),
    )
    return ", ".join(rule for rule, applies in rules if applies) or "—"


def record_kinds_markdown() -> str:
    """One table per record kind: its fields, what each may hold, how a search finds it."""
    from ferry.limits import RecordLimits
    from ferry.records import KINDS

    lim = RecordLimits()
    lines = []
    for kind in KINDS:
        flag_of = {key: f"`--{flag}`" for flag, key in kind.shortcuts.items()}
        lines += [
            f"### {kind.name}: `{kind.message.DESCRIPTOR.name}`, `ferry {kind.name}`, `Query.{kind.rpc}`",
            "",
            "| Field | Type | What it may hold | `--where` | `--contains` |",
            "| --- | --- | --- | --- | --- |",
        ]
        for field in kind.message.DESCRIPTOR.fields:
            name = field.name
            if name == "time_unix_ns":
                where = "`--since`, `--until`"
            elif name == kind.attributes:
                where = f"`{name}.KEY`"
            elif name in kind.equals:
                where = ", ".join(filter(None, ("yes", flag_of.get(name, ""))))
            else:
                where = ""
            contains = ("its values" if name == kind.attributes else "yes") if name in kind.contains else ""
            lines.append(
                f"| `{name}` | {_field_type(field)} | {_holds(kind, name, lim)} | {where} | {contains} |"
            )
        added = [c for c in kind.equals if c not in kind.message.DESCRIPTOR.fields_by_name]
        stored = " and ".join(f"`{c}`" for c in added)
        lines += ["", f"The collector stores {stored} with every {kind.noun}; `--where` takes them too.", ""]
    return "\n".join(lines)


def roles_markdown() -> str:
    """Every method the collector serves and the role that may call it."""
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2

    from ferry.collector.auth.gate import role_of
    from ferry.v1 import alerts_pb2, ingest_pb2, query_pb2

    lines = ["| Method | Who may call it |", "| --- | --- |"]
    for module in (ingest_pb2, query_pb2, alerts_pb2, health_pb2, reflection_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                role = role_of(f"/{service.full_name}/{method.name}")
                who = "anyone (no credentials)" if role is None else f"`{role}` or `admin`"
                if role == "admin":
                    who = "`admin`"
                lines.append(f"| `{service.full_name}/{method.name}` | {who} |")
    lines.append("| any other method (future services) | `admin` |")
    return "\n".join(lines)


def with_generated(text: str, name: str, body: str) -> str:
    """`text` with the lines between its markers for `name` replaced by `body`."""
    begin, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise ValueError(f"no {begin.strip()} … {end} block")
    return head + begin + body.rstrip("\n") + "\n" + end + rest.split(end, 1)[1]


def pages() -> dict[Path, str]:
    """Every page this module writes, as it renders now."""
    return {
        PAGE: render_markdown(),
        EVENTS_LOGS: with_generated(EVENTS_LOGS.read_text(), "record kinds", record_kinds_markdown()),
        SECURITY: with_generated(SECURITY.read_text(), "roles", roles_markdown()),
    }


def main(argv: list[str]) -> int:
    for path, text in pages().items():
        if path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
