"""Configuration helpers both executables share: TOML files, durations, addresses, flags.

A config is a dataclass; each field's `metadata["kind"]` says how a TOML value or a flag string
is parsed. Errors name the file, the line (when it can be found) and the key, and the caller
refuses to start.
"""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(ValueError):
    """A bad configuration value; the message names where it came from and the rule it broke."""


def parse_duration(value: Any, what: str) -> float:
    """'500ms', '10s', '1m', '2h', '1d' or a number of seconds → seconds (float, > 0)."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: {value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ConfigError(f"{what}: {value!r} is not a duration (e.g. 500ms, 10s, 1m, 2h, 1d)")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ConfigError(f"{what}: duration {value!r} must be > 0")
    return seconds


def parse_duration_or_zero(value: Any, what: str) -> float:
    """parse_duration, and zero too: 0, "0", "0s", "0ms" (any unit) → 0.0. For the keys where
    none means at once (a rule's `for = "0s"`, a route's `group_wait = "0s"`: the next tick)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        return 0.0
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match and float(match.group(1)) == 0:
        return 0.0
    return parse_duration(value, what)


def parse_address(value: Any, what: str) -> str:
    """HOST:PORT (port 0..65535; [v6]:port accepted). Returned as given."""
    text = str(value)
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what}: {text!r} is not HOST:PORT")
    return text


def is_loopback(address: str) -> bool:
    """Whether HOST:PORT names a loopback address: 'localhost', 127.0.0.0/8 or ::1 (IPv4-mapped
    too), or is a unix socket. Any other name counts as not loopback: what it resolves to is not
    known here."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def parse_addresses(value: Any, what: str) -> list[str]:
    items = value if isinstance(value, list) else [v for v in str(value).split(",") if v.strip()]
    if not items:
        raise ConfigError(f"{what}: at least one HOST:PORT is needed")
    return [parse_address(v.strip(), what) for v in items]


def parse_names(value: Any, what: str) -> list[str]:
    """A list of names: a TOML array of strings, or a comma-separated flag value."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{what}: {value!r} is not a list of names")
    return [v.strip() for v in items if v.strip()]


def _parse(kind: str, value: Any, what: str) -> Any:
    if kind == "duration":
        return parse_duration(value, what)
    if kind == "duration_or_zero":
        return parse_duration_or_zero(value, what)
    if kind == "address":
        return parse_address(value, what)
    if kind == "optional_address":
        return "" if value in ("", None) else parse_address(value, what)
    if kind == "addresses":
        return parse_addresses(value, what)
    if kind == "names":
        return parse_names(value, what)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
            raise ConfigError(f"{what}: {value!r} is not a non-negative integer")
        return int(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes", "on"):
            return True
        if str(value).lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{what}: {value!r} is not true or false")
    if kind == "labels":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{what}: expected a table of string values")
        return dict(value)
    if kind == "table":
        if not isinstance(value, dict):
            raise ConfigError(f"{what}: expected a table, e.g. {{ key = 'value' }}")
        return dict(value)
    if kind == "port":
        if isinstance(value, bool) or not str(value).strip().isdigit() or not 1 <= int(value) <= 65535:
            raise ConfigError(f"{what}: {value!r} is not a port number from 1 to 65535")
        return int(value)
    if kind == "choice":
        return str(value)
    if not isinstance(value, str):
        raise ConfigError(f"{what}: {value!r} is not a string")
    return value


def key_line(path: Path, key: str) -> int | None:
    """The first line that sets `key` or opens a `[key]` / `[[key]]` table."""
    k = re.escape(key)
    pattern = re.compile(rf"^\s*({k}\s*=|\[\[?\s*{k}\s*\]\]?)")
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from None


def apply_file(cfg: Any, data: dict[str, Any], path: str | Path) -> None:
    """Set the dataclass fields of `cfg` from a TOML table; unknown keys are errors."""
    p = Path(path)
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for key, value in data.items():
        line = key_line(p, key)
        where = f"{p}:{line}: key {key!r}" if line else f"{p}: key {key!r}"
        field = fields.get(key)
        if field is None or field.metadata.get("file") is False:
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(k for k in fields))})")
        setattr(cfg, key, checked(field, value, where))


def apply_flags(cfg: Any, flags: dict[str, Any]) -> None:
    """Set fields from parsed command-line flags (None = not given); flags win over the file."""
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for key, value in flags.items():
        if value is None or key not in fields:
            continue
        setattr(cfg, key, checked(fields[key], value, f"--{key.replace('_', '-')}"))


def checked(field: dataclasses.Field, value: Any, where: str) -> Any:
    """`value` parsed as `field` declares (its `parse`, else its kind), and within its choices."""
    custom = field.metadata.get("parse")
    parsed = custom(value, where) if custom else _parse(field.metadata.get("kind", "str"), value, where)
    choices = field.metadata.get("choices")
    if choices and parsed not in choices:
        raise ConfigError(f"{where}: {parsed!r} is not one of {', '.join(choices)}")
    return parsed


def setting(default: Any, kind: str = "str", help: str = "", **extra: Any) -> Any:
    """A config field: its default, how values are parsed, and the help text for its flag."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(
            default_factory=lambda: type(default)(default), metadata={"kind": kind, "help": help, **extra}
        )
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, **extra})


def parts(cls: type) -> list[type]:
    """The config dataclasses a composed config inherits its keys from, in key order: each
    declares some (a component's config is one part; the composed class repeats none of them)."""
    return [
        b for b in reversed(cls.__mro__[1:]) if dataclasses.is_dataclass(b) and inspect.get_annotations(b)
    ]


def part_values(cfg: Any, part: type) -> tuple:
    """The values of one part's keys in `cfg`: what a component is built from."""
    return tuple(getattr(cfg, f.name) for f in dataclasses.fields(part))


def check_parts(cfg: Any) -> None:
    """Run each part's own `check` (the rules that span its keys) on the composed config."""
    for part in parts(type(cfg)):
        check = vars(part).get("check")
        if check is not None:
            check(cfg)


@dataclasses.dataclass(frozen=True)
class ConfigSource:
    """Where a process's configuration comes from: a class, a TOML file and the flags given.

    `load()` builds it afresh (defaults, then the file, then flags), so a reload sees the file's
    new contents while flags keep winning.
    """

    cls: type
    path: str | None
    flags: dict[str, Any]

    def load(self) -> Any:
        """The configuration now; raises ConfigError naming the file, line and key."""
        cfg = self.cls()
        if self.path:
            apply_file(cfg, load_toml(self.path), self.path)
        apply_flags(cfg, self.flags)
        if hasattr(cfg, "check"):
            cfg.check()
        return cfg


def parse_command_line(cls: type, argv: list[str] | None, prog: str, description: str) -> ConfigSource:
    """The flags of every `setting` of `cls`, plus --config FILE. Exits 2 on a usage error."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", metavar="FILE", help="TOML file; every flag has a key of the same name")
    for f in dataclasses.fields(cls):
        if f.metadata.get("flag", True) is False:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.metadata.get("kind") != "bool":
            extra = {"metavar": f.metadata.get("metavar")}
        else:  # a setting on by default is turned off with --no-NAME
            extra = {"action": argparse.BooleanOptionalAction if default else "store_true"}
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            help=f"{f.metadata.get('help', '')} (default: {default!r})",
            **extra,
        )
    ns = vars(parser.parse_args(argv))
    return ConfigSource(cls, ns.pop("config"), ns)


def parse_args(cls: type, argv: list[str] | None, prog: str, description: str) -> Any:
    """Build the config: defaults, then --config FILE, then flags. Exits 2 on any error."""
    return load_or_exit(parse_command_line(cls, argv, prog, description), prog)


def load_or_exit(source: ConfigSource, prog: str) -> Any:
    import sys

    try:
        return source.load()
    except ConfigError as exc:
        print(f"{prog}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
