"""The configuration reference, docs/configuration.md, rendered from the config dataclasses.

Every key of both executables is declared once, as a `setting` in a config dataclass (the agent's
in its components' modules, composed into ferry.agent.config.AgentConfig; the collector's in
ferry.collector.config.CollectorConfig); this module reads those declarations: key, flag, type,
default and help, and the keys of each `[[table]]` section (ferry.runtime.tables). For the agent
it also says what a SIGHUP reload does with each part (ferry.agent.config.COMPONENTS).

    python -m ferry.runtime.configdoc > docs/configuration.md      (what `make docs` runs)

tests/proto/test_configdoc.py fails when the committed page differs from what this renders.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from collections.abc import Callable
from typing import Any

from ferry.runtime.config import parts
from ferry.runtime.tables import key_of

HEAD = """\
# Configuration reference

Generated from the config dataclasses by `make docs`
(`python -m ferry.runtime.configdoc > docs/configuration.md`); a test fails when this file is stale.

Both executables read a TOML file (`--config FILE`) and flags; every key is also a flag of the
same name (`spool_max_bytes` is `--spool-max-bytes`) unless the table says *file only*, and flags
win over the file. A bad value stops the process with exit status 2 and a message naming the file,
the line and the key, e.g. `agent.toml:3: key 'interval': 'soon' is not a duration`.
Durations are a number of seconds or a number with a unit: `500ms`, `10s`, `1m`, `2h`, `1d`.
"""

_TYPES = {
    "str": "string",
    "int": "integer >= 0",
    "bool": "boolean",
    "duration": "duration",
    "duration_or_zero": "duration or 0",
    "port": "port (1 to 65535)",
    "address": "HOST:PORT",
    "optional_address": "HOST:PORT or ''",
    "addresses": "HOST:PORT list",
    "names": "list of names",
    "labels": "table of strings",
    "table": "table",
    "emails": "list of e-mail addresses",
    "regex": "regex",
}


def _type(field: dataclasses.Field) -> str:
    meta = field.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(f"`{c}`" for c in meta["choices"])
    if "section" in meta:
        return f"`[[{meta['section'].key}]]` tables"
    return _TYPES.get(meta.get("kind", "str"), meta.get("kind", "str"))


def _value(value: Any, kind: str) -> str:
    if kind in ("duration", "duration_or_zero") and isinstance(value, (int, float)):
        return f"{value:g}s"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value).replace("'", '"') if value else "''"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, "str") for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v, 'str')}" for k, v in value.items()) + "}"
    return str(value)


def _default(field: dataclasses.Field) -> str:
    value = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if value is None:
        return "required" if field.metadata.get("required") else "—"
    if "section" in field.metadata:
        return "none"
    return f"`{_value(value, field.metadata.get('kind', 'str'))}`"


def _flag(field: dataclasses.Field) -> str:
    if field.metadata.get("flag", True) is False:
        return "*file only*"
    flag = "--" + field.name.replace("_", "-")
    metavar = field.metadata.get("metavar")
    if field.metadata.get("kind") == "bool":
        return f"`{flag}`, `--no-{flag[2:]}`" if field.default is True else f"`{flag}`"
    return f"`{flag} {metavar}`" if metavar else f"`{flag}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_part(part: type, note: str = "") -> list[str]:
    """One part's keys as a table, then the keys of each `[[table]]` section it holds."""
    doc = part.__doc__ or ""
    # a class without a docstring has the one dataclass writes, its signature
    title = part.__name__ if doc.startswith(part.__name__ + "(") else doc.strip().splitlines()[0].rstrip(".")
    lines = [f"### {title}", "", f"Declared by `{part.__module__}.{part.__name__}`. {note}".rstrip(), ""]
    lines += ["| key | flag | type | default | meaning |", "|---|---|---|---|---|"]
    own = [f for f in dataclasses.fields(part) if f.name in inspect.get_annotations(part)]
    for f in own:
        lines.append(
            f"| `{f.name}` | {_flag(f)} | {_cell(_type(f))} | {_cell(_default(f))} "
            f"| {_cell(f.metadata.get('help', ''))} |"
        )
    for f in own:
        section = f.metadata.get("section")
        if section is None:
            continue
        lines += ["", f"Each `[[{section.key}]]` table:", "", "| key | type | default | meaning |"]
        lines.append("|---|---|---|---|")
        for key in section.fields():
            only = key.metadata.get("only")
            when = f" (only for {section.kind} {', '.join(only)})" if only else ""
            lines.append(
                f"| `{key_of(key)}` | {_cell(_type(key))} | {_cell(_default(key))} "
                f"| {_cell(key.metadata.get('help', '') + when)} |"
            )
    return [*lines, ""]


def render_config(cls: type, note: Callable[[type], str] = lambda part: "") -> list[str]:
    """Every part of a composed config (or the class itself when it is one part)."""
    out: list[str] = []
    for part in parts(cls) or [cls]:
        out += render_part(part, note(part))
    return out


def render_markdown() -> str:
    from ferry.agent.config import COMPONENTS, AgentConfig
    from ferry.collector.alerting.rulesfile import RulesFile
    from ferry.collector.auth.principals import AuthFile
    from ferry.collector.config import CollectorConfig

    redo = {c.config: c.reload for c in COMPONENTS}

    def reload_note(part: type) -> str:
        return "SIGHUP applies a change live." if redo.get(part) else "A change needs a restart."

    lines = [HEAD, "## ferry-agent", ""]
    lines += [
        "Keys by the component that owns them. On SIGHUP the agent re-reads the file (flags",
        "still win) and applies what it can in place; it logs the keys that need a restart and",
        "keeps running with their old values.",
        "",
    ]
    lines += render_config(AgentConfig, reload_note)
    lines += ["## ferry-collector", ""]
    lines += render_config(CollectorConfig)
    lines += ["## The collector's auth file (`--auth FILE`)", ""]
    lines += render_config(AuthFile, lambda part: "SIGHUP reloads it; docs/security.md explains it.")
    lines += ["## The collector's rules file (`--rules FILE`)", ""]
    lines += render_config(RulesFile, lambda part: "SIGHUP reloads it; docs/alerting.md explains it.")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
