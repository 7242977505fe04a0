"""The redaction rules compiled, and applied: what ferry.agent.redact.Redactor runs.

`RuleSet` is built from the parsed rules (ferry.agent.redact.config) and the hash key, and keeps
what it decided per key, per label-key set and per series object, so the common case (no key
matches) costs a dict lookup per attribute and per series a frame takes. BUILTINS holds the
patterns docs/redaction.md quotes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from ferry.agent import selfmetrics as m
from ferry.limits import RecordLimits
from ferry.records import KINDS, RecordKind
from ferry.series import SeriesDef

log = logging.getLogger("ferry.agent.redact")
MASK = "***REDACTED***"
HASH_HEX_CHARS = 32  # of the 64 of an HMAC-SHA256: 128 bits, collisions out of reach
CACHE_LIMIT = 20_000  # series (and keys) whose verdict is kept; emptied when full

# name -> (regex, literals one of which a text must hold for the regex to be tried). A regex
# with a group replaces only group 1 (a bearer token's token, not the word "Bearer"); a
# bearer token is at least 8 chars ("the bearer of bad news" is kept).
BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "email": (
        r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}",
        ("@",),
    ),
    # A run of 13 or more digits with single spaces or dashes between them (greedy: the whole
    # run, so never the tail of a longer one); card_spans says which part of it is a card, if
    # any (the run, or whole digit groups of it, that pass Luhn). Both number patterns begin
    # with a digit (\d, (?=\d)) so that re skips ahead to digits rather than trying the
    # lookbehind at every position (a third of the cost).
    "credit_card": (r"\d(?<!\d\d)(?:[ \-]?\d){12,}", ()),
    "ipv4": (
        r"(?=\d)(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\.?\d)",
        (".",),
    ),
    "bearer_token": (r"\b(?i:bearer)\s+([A-Za-z0-9\-._~+/]{8,}=*)", ("earer", "EARER")),
}


@dataclass(frozen=True)
class Rule:
    """One `[[redact]]` table as parsed (comparable, so a reload sees whether rules changed)."""

    name: str
    action: str
    keys: tuple[str, ...] = ()  # globs
    pattern: str = ""  # a built-in's name
    regex: str = ""


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


CARD_MIN, CARD_MAX = 13, 19  # digits of a card number (Visa 13/16/19, Amex 15, ...)
_DIGIT_GROUPS = re.compile(r"\d+")
_PLAIN = bytes(48) + bytes(range(10)) + bytes(198)  # an ASCII digit -> its value
_DOUBLED = bytes(48) + bytes(d * 2 - 9 if d > 4 else d * 2 for d in range(10)) + bytes(198)  # Luhn-doubled


def card_spans(run: str) -> list[tuple[int, int]]:
    """Where the card numbers are in `run`, a run of digits with single spaces or dashes between
    them (what the credit_card pattern finds), as (start, end) offsets in it: the whole run if it
    has 13 to 19 digits and passes Luhn (the common case: a card alone); otherwise every window
    of whole digit groups holding 13 to 19 digits that passes Luhn, overlapping windows merged
    ("card 4111 1111 1111 1111 12/27": the card, not the expiry). A group is never split, so a
    run of digits with no separator is a card or not as a whole."""
    digits = run.replace(" ", "").replace("-", "")
    n = len(digits)
    if CARD_MIN <= n <= CARD_MAX and luhn_ok(digits):
        return [(0, len(run))]
    if n == len(run):
        return []  # one group, no window inside it
    groups = [found.span() for found in _DIGIT_GROUPS.finditer(run)]
    starts = list(accumulate((end - start for start, end in groups), initial=0))  # in digits
    # Luhn sums mod 10 of the digits before each group, two ways: digits at even offsets plain
    # and odd ones doubled, and the other way round. A window [s, e) counts its last digit
    # plain, so it passes when the sums at s and at e of the parity of e - 1 are equal mod 10.
    plain, doubled = digits.encode().translate(_PLAIN), digits.encode().translate(_DOUBLED)
    evens, odds = bytearray(plain), bytearray(doubled)
    evens[1::2], odds[1::2] = doubled[1::2], plain[1::2]
    residues = []
    for values in (evens, odds):
        sums = list(accumulate(values, initial=0))
        residues.append(bytes(sums[s] % 10 for s in starts))
    merged: list[tuple[int, int]] = []
    first = limit = 0  # the groups a window ending at `last` may start at: first <= i < limit
    for last in range(len(groups)):
        end = starts[last + 1]
        while end - starts[first] > CARD_MAX:
            first += 1
        while limit <= last and end - starts[limit] >= CARD_MIN:
            limit += 1
        if first < limit:
            at = residues[(end - 1) & 1]
            i = at.find(at[last + 1], first, limit)  # the longest window: shorter ones are inside it
            if i >= 0:
                span = groups[i][0], groups[last][1]
                while merged and merged[-1][1] > span[0]:  # ends before this one's: overlaps
                    span = min(span[0], merged.pop()[0]), span[1]
                merged.append(span)
    return merged


class _Keyed:
    """A key rule, compiled: its globs as one case-insensitive regex."""

    __slots__ = ("action", "count", "match", "name")

    def __init__(self, rule: Rule):
        self.name, self.action = rule.name, rule.action
        self.match = re.compile("|".join(fnmatch.translate(g) for g in rule.keys), re.IGNORECASE).match
        self.count = m.REDACTIONS.labels(rule.name)


class _Found:
    """A pattern or regex rule, compiled; `hints`: literals a text must hold to be searched."""

    __slots__ = ("action", "count", "hints", "luhn", "name", "regex")

    def __init__(self, rule: Rule):
        self.name, self.action = rule.name, rule.action
        source, self.hints = BUILTINS[rule.pattern] if rule.pattern else (rule.regex, ())
        self.regex = re.compile(source)
        self.luhn = rule.pattern == "credit_card"
        self.count = m.REDACTIONS.labels(rule.name)


@dataclass(frozen=True)
class _KindPlan:
    """For one record kind: its own fields a key rule matches, the free-text fields patterns
    search (with their size limits), and its map of attributes."""

    fields: tuple[tuple[str, _Keyed], ...]
    texts: tuple[tuple[str, int], ...]
    attributes: str
    attribute_limit: int


class RuleSet:
    """Rules compiled, with what they decided cached: per key (its key rule or none), per
    label-key set (which labels change) and per series object (its redacted twin, so a series
    keeps one object frame after frame, as ferry.wire.encode.SeriesMessages needs)."""

    def __init__(self, rules: list[Rule], key: bytes | None, limits: RecordLimits | None = None):
        if key is None and any(r.action == "hash" for r in rules):
            raise ValueError("a rule hashes and there is no hash key")
        self.names = [r.name for r in rules]
        self.keyed = [_Keyed(r) for r in rules if r.keys]
        self.found = [_Found(r) for r in rules if not r.keys]
        self._key = key or b""
        self._verdicts: dict[str, _Keyed | None] = {}
        # label keys -> (the labels key rules change, whether one of them drops or masks)
        self._plans: dict[tuple[str, ...], tuple[tuple[tuple[int, _Keyed], ...], bool]] = {}
        self._series: dict[int, tuple[SeriesDef, SeriesDef, tuple]] = {}
        # a series a drop or mask made -> the labels of the first series it came from, to tell
        # when two distinct series become one (warned once per rule, docs/redaction.md)
        self._merged_from: dict[SeriesDef, tuple] = {}
        self._merge_warned: set[str] = set()
        self._replacers = [(f, self._replacer(f)) for f in self.found]
        limits = limits or RecordLimits()
        self._kinds = {kind.name: self._plan(kind, limits) for kind in KINDS}

    def _plan(self, kind: RecordKind, limits: RecordLimits) -> _KindPlan:
        sizes = {
            **{f: limits.max_field_bytes for f in kind.short},
            **{f: limits.max_message_bytes for f in kind.long},
            **{f: limits.max_id_len for f in kind.ids},
        }
        own = [(f, r) for f in sizes if f != kind.required and (r := self.rule_for(f)) is not None]
        matched = {f for f, _ in own}
        texts = [(f, sizes[f]) for f in kind.contains if f in sizes and f not in matched]
        return _KindPlan(tuple(own), tuple(texts), kind.attributes, limits.max_attribute_value_bytes)

    def rule_for(self, key: str) -> _Keyed | None:
        """The first key rule whose globs match `key` (case-insensitive), or None."""
        try:
            return self._verdicts[key]
        except KeyError:
            pass
        rule = next((r for r in self.keyed if r.match(key)), None)
        if len(self._verdicts) >= CACHE_LIMIT:
            self._verdicts.clear()
        self._verdicts[key] = rule
        return rule

    def value(self, rule: _Keyed | _Found, value: str) -> str:
        """What a masked or hashed value becomes."""
        if rule.action == "mask":
            return MASK
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return digest[:HASH_HEX_CHARS]

    # metric series: once per series per frame (ferry.agent.accumulator)

    def series(self, series: SeriesDef) -> SeriesDef:
        """`series` with its labels redacted by the key rules (the same object if none applies);
        each rule that applies is counted."""
        hit = self._series.get(id(series))
        if hit is None or hit[0] is not series:
            hit = self._relabel(series)
        for count in hit[2]:
            count.inc()
        return hit[1]

    def _relabel(self, series: SeriesDef) -> tuple[SeriesDef, SeriesDef, tuple]:
        keys = tuple(k for k, _ in series.labels)
        known = self._plans.get(keys)
        if known is None:
            plan = tuple((i, r) for i, k in enumerate(keys) if (r := self.rule_for(k)) is not None)
            known = plan, any(r.action != "hash" for _, r in plan)
            if len(self._plans) >= CACHE_LIMIT:
                self._plans.clear()
            self._plans[keys] = known
        plan, merges = known
        out = series
        if plan:
            labels: list[tuple[str, str] | None] = list(series.labels)
            for i, rule in plan:
                k, v = series.labels[i]
                labels[i] = None if rule.action == "drop" else (k, self.value(rule, v))
            kept = tuple(p for p in labels if p is not None)
            out = SeriesDef(series.name, series.kind, series.unit, kept, series.bounds)
            if merges:
                self._check_merge(series, out, plan)
        # holds `series`, so its id stays its own while cached
        hit = (series, out, tuple(r.count for _, r in plan))
        if len(self._series) >= CACHE_LIMIT:
            self._series.clear()
        self._series[id(series)] = hit
        return hit

    def _check_merge(self, series: SeriesDef, out: SeriesDef, plan: tuple[tuple[int, _Keyed], ...]) -> None:
        """Warn (once per rule) when a drop or mask turns `series` into what another, distinct
        series already became: the collector would take both as one (two values per timestamp,
        counters interleaved). Nothing is changed: only `hash` keeps them apart."""
        if len(self._merged_from) >= CACHE_LIMIT:
            self._merged_from.clear()
        if self._merged_from.setdefault(out, series.labels) == series.labels:
            return
        rules = [r for _, r in plan if r.action != "hash" and r.name not in self._merge_warned]
        if not rules:
            return
        self._merge_warned.update(r.name for r in rules)
        keys = sorted({series.labels[i][0] for i, r in plan if r.action != "hash"})
        log.warning(
            "[[redact]] rule %s: series %s with distinct values of label %s now send the same "
            'labels, and the collector takes them as one series; use action = "hash" for metric '
            "labels (docs/redaction.md)",
            ", ".join(repr(r.name) for r in rules),
            out.name,
            ", ".join(keys),
        )

    # events and logs: each record the Local service took

    def records(self, intake: Any) -> None:
        """Redact, in place, the records of every kind an Intake holds."""
        if not (self.keyed or self.found):
            return
        for kind in KINDS:
            taken = getattr(intake, kind.name)
            if taken:
                plan = self._kinds[kind.name]
                for record in taken:
                    self._record(plan, record)

    def _record(self, plan: _KindPlan, record: Any) -> None:
        for name, rule in plan.fields:
            value = getattr(record, name)
            if value:
                setattr(record, name, "" if rule.action == "drop" else self.value(rule, value))
                rule.count.inc()
        if self.found:
            for name, limit in plan.texts:
                value = getattr(record, name)
                if value:
                    new = self.text(value, limit)
                    if new is not value:
                        setattr(record, name, new)
        attrs = getattr(record, plan.attributes)
        if not attrs:
            return
        changes = []
        for k, v in attrs.items():
            rule = self.rule_for(k)
            if rule is not None:
                rule.count.inc()
                changes.append((k, None if rule.action == "drop" else self.value(rule, v)))
            elif self.found:
                new = self.text(v, plan.attribute_limit)
                if new is not v:
                    changes.append((k, new))
        for k, new in changes:
            if new is None:
                del attrs[k]
            else:
                attrs[k] = new

    def text(self, text: str, limit: int) -> str:
        """`text` with what the pattern rules find replaced, in rule order (the same object when
        nothing is); a result past `limit` bytes (a field at its limit that gained masks) is
        replaced whole by the mask, so the record stays within what the collector takes."""
        out = text
        for rule, replace in self._replacers:
            for hint in rule.hints:
                if hint in out:
                    break
            else:
                if rule.hints:
                    continue
            out = rule.regex.sub(replace, out)
        if out is text or out == text:
            return text
        return MASK if len(out.encode()) > limit else out

    def _replacer(self, rule: _Found) -> Callable[[re.Match], str]:
        grouped = rule.regex.groups > 0

        def replace(found: re.Match) -> str:
            whole = found.group(0)
            if rule.luhn:  # a run of digits: the cards in it, if any (a Luhn failure is no match)
                out, at = [], 0
                for start, end in card_spans(whole):
                    out += (whole[at:start], self.value(rule, whole[start:end]))
                    rule.count.inc()
                    at = end
                return "".join((*out, whole[at:])) if out else whole
            rule.count.inc()
            if grouped and found.start(1) >= 0:
                at, (start, end) = found.start(), found.span(1)
                return whole[: start - at] + self.value(rule, found.group(1)) + whole[end - at :]
            return self.value(rule, whole)

        return replace
