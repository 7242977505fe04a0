"""Parse a QueryRange expression (`QueryRangeRequest.expr`) into a tree; the semantics and the
evaluator are in ferry.collector.query.arith.

    top     := ('topk' | 'bottomk') '(' INTEGER ',' expr ')' | expr
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/') unary)*
    unary   := '-' unary | primary
    primary := NUMBER | '(' expr ')' | AGG '(' SELECTOR ')' ['by' '(' [LABEL (',' LABEL)* [',']] ')']

`number op number` is folded while parsing (a division by zero or an overflow folds to NaN,
which gives no point). Errors raise QueryError("expression: column N: ...") with N counted
from 1; `ExprSyntaxError.column` is that N.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import NamedTuple

from ferry.collector.query.answer import Operand
from ferry.collector.query.selector import ExprError
from ferry.collector.query.selector import parse_at as parse_selector
from ferry.collector.query.sql import AGGREGATIONS, QueryError
from ferry.collector.validate import LABEL_KEY_RE

MAX_CHARS = 4096
MAX_QUERIES = 16
MAX_DEPTH = 32
MAX_K = 2**32 - 1  # QueryRangeRequest.topk is a uint32

_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.:\-]*")  # a metric name's characters, for messages
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = re.compile(r"[^\s,()]+")  # what is read as one `by` label, then checked
_AGGS = ", ".join(AGGREGATIONS)
_RANKS = {"topk": "top", "bottomk": "bottom"}
_FOLD = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


@dataclass(frozen=True)
class Num:
    value: float  # NaN: no value (a folded division by zero)


@dataclass(frozen=True)
class Query:
    operand: Operand
    column: int  # of its aggregation's name, from 1


@dataclass(frozen=True)
class Neg:
    arg: Node


@dataclass(frozen=True)
class Bin:
    op: str  # + - * /
    left: Node
    right: Node


Node = Num | Query | Neg | Bin


class Expr(NamedTuple):
    """A parsed expression: its tree, and the top-level topk(k, ...) / bottomk(k, ...) if any
    (k 0 and which "" when none; which is "top" or "bottom")."""

    node: Node
    k: int = 0
    which: str = ""

    @property
    def top(self) -> tuple[int, str] | None:
        """(k, which) of the top-level topk / bottomk, None without one."""
        return (self.k, self.which) if self.which else None


class ExprSyntaxError(QueryError):
    def __init__(self, column: int, message: str):
        super().__init__(f"expression: column {column}: {message}")
        self.column = column  # from 1
        self.reason = message


def fold(op: str, a: float, b: float) -> float:
    """`a op b` of two numbers; NaN when it has no finite value (a division by zero)."""
    if op == "/" and b == 0:
        return math.nan
    v = _FOLD[op](a, b)
    return v if math.isfinite(v) else math.nan


def parse(text: str) -> Expr:
    """The tree of `text`; QueryError naming the column when it is not an expression."""
    if len(text) > MAX_CHARS:
        raise QueryError(f"expression of {len(text)} chars > {MAX_CHARS} allowed")
    p = _Parser(text)
    expr = p.top()
    if p.queries == 0:
        raise QueryError("expression has no query")
    return expr


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.i = 0
        self.queries = 0
        self.opened = 0  # parentheses and unary minus open here

    def error(self, message: str, at: int | None = None) -> ExprSyntaxError:
        return ExprSyntaxError((self.i if at is None else at) + 1, message)

    def peek(self) -> str:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1
        return self.text[self.i] if self.i < len(self.text) else ""

    def expect(self, ch: str, what: str = "") -> None:
        if self.peek() != ch:
            raise self.error(f"expected {ch!r}{what}{self.found()}")
        self.i += 1

    def found(self) -> str:
        """', got X' for the text at the current position (', got the end' at its end)."""
        if self.peek() == "":
            return ", got the end"
        m = _NUMBER.match(self.text, self.i) or _WORD.match(self.text, self.i)
        return f", got {(m.group() if m else self.text[self.i])[:40]!r}"

    def ident(self) -> str:
        self.peek()
        m = _IDENT.match(self.text, self.i)
        return m.group() if m else ""

    def top(self) -> Expr:
        word, at = self.ident(), self.i
        k, which = 0, ""
        if word in _RANKS and self.text[at + len(word) :].lstrip().startswith("("):
            self.i += len(word)
            self.expect("(")
            k = self.integer(word)
            self.expect(",", f" after {word}'s k")
            node, _ = self.expr()
            self.expect(")", f" closing {word}(")
            which = _RANKS[word]
        else:
            node, _ = self.expr()
        if self.peek() and which:
            raise self.error(f"{word}(...) must be the whole expression{self.found()}")
        if self.peek():
            raise self.error(f"expected an operator or the end{self.found()}")
        return Expr(node, k, which)

    def integer(self, word: str) -> int:
        self.peek()
        m = _NUMBER.match(self.text, self.i)
        if not m or not m.group().isdigit() or not 1 <= int(m.group()) <= MAX_K:
            raise self.error(f"{word}'s k must be an integer from 1 to {MAX_K}{self.found()}")
        self.i = m.end()
        return int(m.group())

    def expr(self) -> tuple[Node, int]:
        node, depth = self.term()
        while self.peek() in ("+", "-"):
            op, at = self.text[self.i], self.i
            self.i += 1
            node, depth = self.combine(op, at, (node, depth), self.term())
        return node, depth

    def term(self) -> tuple[Node, int]:
        node, depth = self.unary()
        while self.peek() in ("*", "/"):
            op, at = self.text[self.i], self.i
            self.i += 1
            node, depth = self.combine(op, at, (node, depth), self.unary())
        return node, depth

    def combine(self, op: str, at: int, left: tuple[Node, int], right: tuple[Node, int]) -> tuple[Node, int]:
        depth = 1 + max(left[1], right[1])
        self.check_depth(depth, at)
        if isinstance(left[0], Num) and isinstance(right[0], Num):
            return Num(fold(op, left[0].value, right[0].value)), depth
        return Bin(op, left[0], right[0]), depth

    def check_depth(self, depth: int, at: int) -> None:
        if depth > MAX_DEPTH:
            raise self.error(
                f"nesting depth {depth} > {MAX_DEPTH} allowed (each operator, unary minus and "
                "pair of parentheses is a level)",
                at,
            )

    def unary(self) -> tuple[Node, int]:
        if self.peek() != "-":
            return self.primary()
        at = self.open()
        arg, depth = self.unary()
        self.opened -= 1
        node = Num(-arg.value) if isinstance(arg, Num) else Neg(arg)
        self.check_depth(depth + 1, at)
        return node, depth + 1

    def open(self) -> int:
        """Step over a '(' or a unary '-', refusing more of them open than MAX_DEPTH allows:
        the parser's recursion is bounded before the tree's depth is known."""
        self.opened += 1
        self.check_depth(self.opened + 1, self.i)
        self.i += 1
        return self.i - 1

    def primary(self) -> tuple[Node, int]:
        ch = self.peek()
        if ch == "(":
            at = self.open()
            node, depth = self.expr()
            self.expect(")", f" closing the '(' at column {at + 1}")
            self.opened -= 1
            self.check_depth(depth + 1, at)
            return node, depth + 1
        m = _NUMBER.match(self.text, self.i)
        if m:
            if _IDENT.match(self.text, m.end()):
                raise self.error(f"unexpected {self.text[m.end()]!r} after the number", m.end())
            value = float(m.group())
            if not math.isfinite(value):
                raise self.error(f"number {m.group()[:40]} is out of range")
            self.i = m.end()
            return Num(value), 1
        word = self.ident()
        if not word:
            raise self.error(f"expected AGG(SELECTOR), a number, '(' or '-'{self.found()}")
        return self.query(word), 1

    def query(self, agg: str) -> Query:
        at = self.i
        rest = self.text[at + len(agg) :].lstrip()
        if agg in _RANKS and rest.startswith("("):
            raise self.error(f"{agg} is allowed only around the whole expression")
        if agg in AGGREGATIONS and re.match(r"by\s*\(", rest):
            raise self.error(f"write {agg}(SELECTOR) by (L1, L2): the by clause comes after the selector")
        if not rest.startswith("("):
            word = _WORD.match(self.text, at).group()
            raise self.error(f"expected AGG(SELECTOR) or a number, got {word[:40]!r}; AGG is one of {_AGGS}")
        if agg not in AGGREGATIONS:
            raise self.error(f"unknown aggregation {agg[:40]!r}; one of {_AGGS}")
        self.queries += 1
        if self.queries > MAX_QUERIES:
            raise self.error(f"{self.queries} queries > {MAX_QUERIES} allowed")
        self.i += len(agg)
        self.expect("(")
        self.peek()
        try:
            sel, self.i = parse_selector(self.text, self.i)
        except ExprError as exc:
            raise self.error(str(exc), exc.column) from None
        self.expect(")", f" closing {agg}(")
        by: tuple[str, ...] = ()
        if self.ident() == "by":
            self.i += 2
            by = self.labels()
        return Query(Operand(sel.metric, tuple(sel.matchers), agg, by), at + 1)

    def labels(self) -> tuple[str, ...]:
        self.expect("(", " after by")
        out: list[str] = []
        while self.peek() != ")":
            m = _LABEL.match(self.text, self.i)
            if not m:
                raise self.error(f"expected a label name or ')' in by (...){self.found()}")
            label = m.group()
            if not LABEL_KEY_RE.fullmatch(label):
                raise self.error(f"by label {label[:80]!r} does not match {LABEL_KEY_RE.pattern}")
            if label in out:
                raise self.error(f"by label {label!r} is given twice")
            out.append(label)
            self.i = m.end()
            if self.peek() == ",":
                self.i += 1
            elif self.peek() != ")":
                raise self.error(f"expected ',' or ')' in by (...){self.found()}")
        self.i += 1
        return tuple(out)


def operands(node: Node) -> list[Operand]:
    """The queries of `node`, left to right (an operand written twice, twice)."""
    if isinstance(node, Query):
        return [node.operand]
    if isinstance(node, Neg):
        return operands(node.arg)
    if isinstance(node, Bin):
        return operands(node.left) + operands(node.right)
    return []
