"""PII redaction at the source: the `[[redact]]` keys, and the Redactor the agent runs.

Key rules match keys by glob (fnmatch, case-insensitive): metric label keys, event property
keys, log attribute keys, and the names of a record's own text fields (an event's `user_id`,
`session_id`, ...; not its required `type` / `level`). They `drop` the pair, `mask` the value
(`***REDACTED***`) or `hash` it (the first 32 hex chars of HMAC-SHA256 under the key in
`redact_hash_key_file`, so equal values hash equal and joins still work). Pattern rules (the
built-ins of BUILTINS, or a custom `regex`) replace what they find in log messages, the free
text of events (label, action) and every property / attribute value; metric label values are
not searched. The first key rule that matches a key wins (the file's rules, then the defaults:
`authorization`, `cookie`, `set-cookie`, `password` dropped unless `redact_defaults = false`);
a value a key rule handled is not searched by patterns. Every redaction is counted under its
rule's name (`ferry_agent_redactions_total{rule}`). A `drop` or `mask` key rule of the file is
warned about at load and reload: on metric labels it merges series (use `hash` there).
docs/redaction.md says all of it.

ferry.agent.wiring builds one `Redactor`: the batchers call `series` for each series a frame
takes (ferry.agent.accumulator), and `submit` calls `records` on what the Local service took.
A SIGHUP that changes the rules swaps them whole (`apply`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ferry.agent.intake import Intake
from ferry.agent.redact.rules import BUILTINS, Rule, RuleSet
from ferry.runtime.config import ConfigError, setting
from ferry.runtime.tables import Section, tables
from ferry.series import SeriesDef

log = logging.getLogger("ferry.agent.redact")
MIN_KEY_BYTES = 16
DEFAULT_KEYS = ("authorization", "cookie", "set-cookie", "password")
KEY_ACTIONS = ("drop", "mask", "hash")
PATTERN_ACTIONS = ("mask", "hash")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise ConfigError(f"{what} {value!r} must be a string of 1 to 100 chars")
    return value


def _keys(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{what} {value!r} must be a glob or a non-empty list of globs, e.g. ['user_id']")
    return tuple(v.strip() for v in items)


def _builtin(value: Any, what: str) -> str:
    if value not in BUILTINS:
        raise ConfigError(
            f"{what} {value!r} is not a built-in pattern ({', '.join(BUILTINS)}); "
            "write your own as regex = '...'"
        )
    return value


def _regex(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{what} {value!r} must be a non-empty regular expression")
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise ConfigError(f"{what} {value!r} is not a regular expression: {exc}") from None
    if compiled.search("") is not None:
        raise ConfigError(f"{what} {value!r} matches the empty string (it would redact between every char)")
    return value


@dataclass
class RedactKeys:
    """The keys of one `[[redact]]` table: exactly one of keys, pattern, regex."""

    name: str = setting(
        None,
        help="the rule's name in ferry_agent_redactions_total (default: action:keys, pattern:NAME)",
        parse=_name,
    )
    keys: list = setting(
        None,
        "names",
        "globs (fnmatch, case-insensitive) of the label, property, attribute and field names it "
        "drops, masks or hashes",
        parse=_keys,
    )
    pattern: str = setting(None, help=f"a built-in pattern: {', '.join(BUILTINS)}", parse=_builtin)
    regex: str = setting(
        None, help="a regular expression (Python re); with a group, group 1 is replaced", parse=_regex
    )
    action: str = setting(
        None,
        "choice",
        "drop, mask or hash (keys rules: required; pattern and regex rules: mask or hash, default mask)",
        choices=KEY_ACTIONS,
    )


def _rule(values: dict[str, Any], at: str, earlier: list[Rule]) -> Rule:
    given = [k for k in ("keys", "pattern", "regex") if values[k]]
    if len(given) != 1:
        raise ConfigError(f"{at}: set exactly one of keys, pattern, regex (got {', '.join(given) or 'none'})")
    action = values["action"]
    if values["keys"]:
        if action is None:
            raise ConfigError(f"{at}: key 'action' is required for a keys rule ({', '.join(KEY_ACTIONS)})")
        default = f"{action}:{','.join(values['keys'])}"
    else:
        action = action or "mask"
        if action not in PATTERN_ACTIONS:
            raise ConfigError(
                f"{at}: key 'action' {action!r}: a {given[0]} rule can {' or '.join(PATTERN_ACTIONS)} "
                "what it finds (drop removes keys)"
            )
        default = f"pattern:{values['pattern']}" if values["pattern"] else f"regex:{values['regex'][:40]}"
    rule = Rule(
        values["name"] or default,
        action,
        values["keys"] or (),
        values["pattern"] or "",
        values["regex"] or "",
    )
    if any(r.name == rule.name for r in earlier):
        raise ConfigError(f"{at}: rule name {rule.name!r} is used by an earlier rule; give one a `name`")
    return rule


parse_redact = Section("redact", RedactKeys, _rule)


def read_hash_key(path: str, what: str = "redact_hash_key_file") -> bytes:
    """The HMAC key: the file's bytes, surrounding whitespace stripped."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{what} {path!r}: cannot read it: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{what} {path!r}: key is {len(key)} bytes < {MIN_KEY_BYTES} required")
    return key


@dataclass
class RedactConfig:
    """PII redaction at the source, before the spool (docs/redaction.md)."""

    redact: list = tables(parse_redact, "redaction rules, as [[redact]] tables (config file only)")
    redact_defaults: bool = setting(
        True,
        "bool",
        f"also drop the keys {', '.join(DEFAULT_KEYS)} (config file only: false turns it off)",
        flag=False,
    )
    redact_hash_key_file: str = setting(
        "", "str", "file holding the HMAC-SHA256 key of `hash` rules (at least 16 bytes)", metavar="PATH"
    )

    def check(self) -> None:
        hashing = [r.name for r in self.redact if r.action == "hash"]
        if hashing and not self.redact_hash_key_file:
            raise ConfigError(
                f"[[redact]] rule {hashing[0]!r} hashes: set redact_hash_key_file to a key file"
            )
        if self.redact_hash_key_file:
            read_hash_key(self.redact_hash_key_file)


def default_rules(cfg: RedactConfig) -> list[Rule]:
    """The file's rules, then the defaults (so a rule of the file for one of their keys wins)."""
    defaults = [Rule(f"drop:{k}", "drop", (k,)) for k in DEFAULT_KEYS] if cfg.redact_defaults else []
    return [*cfg.redact, *defaults]


def label_warnings(cfg: RedactConfig) -> list[str]:
    """What to warn about at load and reload: each `drop` or `mask` key rule of the file (not the
    defaults), since key rules apply to metric label keys too, and there dropping or masking a
    label merges the series that differ only in its value into one series."""
    return [
        f"[[redact]] rule {r.name!r} ({r.action} {', '.join(r.keys)}) also applies to metric label "
        f"keys: series that differ only in such a label become one series, which the collector "
        f"takes as one (two values per timestamp, counters interleaved); "
        f'use action = "hash" for metric labels, distinct values stay distinct (docs/redaction.md)'
        for r in cfg.redact
        if r.keys and r.action in ("drop", "mask")
    ]


def compile_rules(cfg: RedactConfig) -> RuleSet:
    key = read_hash_key(cfg.redact_hash_key_file) if cfg.redact_hash_key_file else None
    return RuleSet(default_rules(cfg), key)


class Redactor:
    """The agent's rules in force; `apply` swaps in a new set whole (one reference: the event
    loop and the pipeline thread each read it once per call)."""

    def __init__(self, cfg: RedactConfig):
        self.rules = compile_rules(cfg)
        for warning in label_warnings(cfg):
            log.warning("%s", warning)

    def series(self, series: SeriesDef) -> SeriesDef:
        return self.rules.series(series)

    def records(self, intake: Intake) -> None:
        self.rules.records(intake)

    def apply(self, cfg: RedactConfig) -> None:
        """On SIGHUP, when a redact key changed; a key file that cannot be read keeps the rules."""
        try:
            self.rules = compile_rules(cfg)
        except ConfigError as exc:
            log.error("reload: %s; the redaction rules in use stay", exc)
            return
        log.info("reload: redaction rules now %s", ", ".join(self.rules.names) or "none")
        for warning in label_warnings(cfg):
            log.warning("reload: %s", warning)


def build(cfg: RedactConfig) -> Redactor:
    return Redactor(cfg)
