"""`[[table]]` sections of a config file (`[[checks]]`, `[[scrape]]`, `[[processes]]`): one parser.

A section declares its keys once, as a dataclass whose fields are `setting`s (the default, how a
value is parsed, the help the configuration reference shows). `Section` validates each table
against it and hands the parsed keys to the section's `build`, which applies the rules that
span keys or tables and returns the component's own object (a check, a scrape target, a process
group). Errors name the table's position and key, after the file, line and key the top-level
parser puts in front ("agent.toml:3: key 'checks' [[checks]] #1: key 'type' ...").

Used by the agent's components (ferry.agent.checks, ferry.agent.scrape.config,
ferry.agent.collectors.process_groups) and by ferry.runtime.configdoc for their reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from ferry.runtime.config import ConfigError, checked, setting


def array_of_tables(value: Any, where: str, key: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(position, table) for each table of a `[[key]]` array, positions like "f.toml [[key]] #2"."""
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected [[{key}]] tables")
    for i, table in enumerate(value):
        at = f"{where} [[{key}]] #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: expected a table")
        yield at, table


@dataclasses.dataclass(frozen=True)
class Section:
    """The `[[key]]` tables whose keys are the fields of `keys`.

    `kind`: the key that says what sort of table it is (a check's `type`); it is read first, and a
    field whose metadata has `only=(...)` is a key only for those kinds. `noun` names one table in
    messages ("for a tcp check"). `build(values, at, earlier)` gets the parsed keys by name, the
    table's position and the objects built from the tables before it (for uniqueness rules).
    """

    key: str
    keys: type
    build: Callable[[dict[str, Any], str, list], Any]
    kind: str = ""
    noun: str = ""

    def __call__(self, value: Any, where: str) -> list:
        built: list = []
        for at, table in array_of_tables(value, where, self.key):
            built.append(self.build(self.parse(table, at), at, built))
        return built

    def fields(self) -> list[dataclasses.Field]:
        return list(dataclasses.fields(self.keys))

    def parse(self, table: dict[str, Any], at: str) -> dict[str, Any]:
        """Each key of one table parsed: the value given, else the declared default."""
        fields = {f.name: f for f in self.fields()}
        values: dict[str, Any] = {}
        kind = ""
        if self.kind:
            values[self.kind] = kind = _value(fields[self.kind], table, at)
        allowed = [n for n, f in fields.items() if kind in f.metadata.get("only", (kind,))]
        keys = {key_of(fields[n]): n for n in allowed}  # the file's key: the field's name, or its `key`
        unknown = sorted(set(table) - set(keys))
        if unknown:
            qualifier = f" for a {kind} {self.noun}" if kind else ""
            raise ConfigError(
                f"{at}: unknown key(s) {', '.join(unknown)}{qualifier} (known: {', '.join(sorted(keys))})"
            )
        for name in allowed:
            if name not in values:
                values[name] = _value(fields[name], table, at)
        return values


def key_of(field: dataclasses.Field) -> str:
    """The key a field is written as: its name, or `key=` where the name cannot be (`for`)."""
    return field.metadata.get("key", field.name)


def _value(field: dataclasses.Field, table: dict[str, Any], at: str) -> Any:
    """A key's value parsed, or its default parsed when the table lacks it; a default of None
    (nothing to parse) stays None unless the key's parser refuses it (a required key)."""
    key = key_of(field)
    if key in table:
        return checked(field, table[key], f"{at}: key {key!r}")
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if default is None and not field.metadata.get("required"):
        return None
    return checked(field, default, f"{at}: key {key!r}")


def tables(section: Section, help: str) -> Any:
    """A config field holding a `[[table]]` section (config file only)."""
    return setting([], "tables", help, flag=False, parse=section, section=section)
