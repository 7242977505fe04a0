"""Parse `name{label="v",l2=~"re",l3!="x",l4!~"re"}` into a metric name and label matchers.

Errors carry the column where parsing failed so the CLI can point at it. `parse` reads a whole
text; `parse_at` one selector inside a longer one (an expression's `AGG(SELECTOR)`,
ferry.collector.query.exprparse) and says where it ended. The CLI imports this module as
ferry.collector.cli.expr.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ferry.v1 import query_pb2

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OPS = (("=~", query_pb2.RE), ("!~", query_pb2.NRE), ("!=", query_pb2.NEQ), ("=", query_pb2.EQ))
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


class ExprError(ValueError):
    def __init__(self, text: str, column: int, message: str):
        super().__init__(message)
        self.text = text
        self.column = column

    def pointer(self) -> str:
        """The expression with a caret under the failing column."""
        return f"  {self.text}\n  {' ' * self.column}^ {self}"


@dataclass
class Selector:
    metric: str
    matchers: list[query_pb2.Matcher]


def parse(text: str, require_name: bool = True) -> Selector:
    p = _Parser(text)
    return p.selector(require_name)


def parse_at(text: str, start: int) -> tuple[Selector, int]:
    """The selector (name required) starting at `start` in `text`, and the index after it."""
    p = _Parser(text)
    p.i = start
    sel = p.selector_here(True)
    return sel, p.i


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.i = 0

    def error(self, message: str) -> ExprError:
        return ExprError(self.text, self.i, message)

    def skip_ws(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def selector(self, require_name: bool) -> Selector:
        sel = self.selector_here(require_name)
        self.skip_ws()
        if self.i != len(self.text):
            raise self.error(f"unexpected {self.text[self.i]!r}")
        return sel

    def selector_here(self, require_name: bool) -> Selector:
        self.skip_ws()
        name = ""
        m = _NAME.match(self.text, self.i)
        if m:
            name = m.group()
            self.i = m.end()
        elif require_name or not self.text[self.i :].lstrip().startswith("{"):
            raise self.error("expected a metric name")
        self.skip_ws()
        matchers: list[query_pb2.Matcher] = []
        if self.i < len(self.text) and self.text[self.i] == "{":
            self.i += 1
            matchers = self.matchers()
        return Selector(name, matchers)

    def matchers(self) -> list[query_pb2.Matcher]:
        out = []
        while True:
            self.skip_ws()
            if self.i < len(self.text) and self.text[self.i] == "}":
                self.i += 1
                return out
            m = _LABEL.match(self.text, self.i)
            if not m:
                raise self.error("expected a label name or '}'")
            label = m.group()
            self.i = m.end()
            self.skip_ws()
            found = next(((t, o) for t, o in _OPS if self.text.startswith(t, self.i)), None)
            if found is None:
                raise self.error("expected one of =, !=, =~, !~")
            token, op = found
            self.i += len(token)
            self.skip_ws()
            out.append(query_pb2.Matcher(label=label, op=op, value=self.string()))
            self.skip_ws()
            if self.i < len(self.text) and self.text[self.i] == ",":
                self.i += 1
            elif not (self.i < len(self.text) and self.text[self.i] == "}"):
                raise self.error("expected ',' or '}'")

    def string(self) -> str:
        if self.i >= len(self.text) or self.text[self.i] not in "\"'":
            raise self.error("expected a quoted value")
        quote = self.text[self.i]
        self.i += 1
        chars = []
        while self.i < len(self.text):
            ch = self.text[self.i]
            if ch == "\\" and self.i + 1 < len(self.text):
                nxt = self.text[self.i + 1]
                if nxt not in _ESCAPES:
                    raise self.error(f"unknown escape \\{nxt}")
                chars.append(_ESCAPES[nxt])
                self.i += 2
                continue
            if ch == quote:
                self.i += 1
                return "".join(chars)
            chars.append(ch)
            self.i += 1
        raise self.error("unterminated string")
