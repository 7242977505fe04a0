"""Arithmetic between aggregated queries: QueryRangeRequest.expr and `ferry query EXPR`.

An expression combines operands with `+ - * /`, unary minus and parentheses, with the usual
precedence (unary minus, then * and /, then + and -; left to right). An operand is a number
(`2`, `0.5`, `1e3`, `.5`) or an aggregated query `AGG(SELECTOR) by (L1, L2)`: AGG one of
QueryRange's aggregations (ferry.collector.query.sql.AGGREGATIONS), SELECTOR the
`name{label="v",l2=~"re",l3!="x",l4!~"re"}` of `ferry query`, `by (...)` optional. For example
`rate(http.errors{code=~"5.."}) by (service) / rate(http.requests) by (service) * 100`.
`topk(N, EXPR)` and `bottomk(N, EXPR)` may wrap the whole expression (nowhere else): the
parser returns N and which, the service keeps per step the N groups with the highest (lowest)
values.

- `AGG(SEL) by (L1, L2)` gives one group per distinct tuple of those labels' values (a missing
  label reads ""), labelled {L1: .., L2: ..}. `AGG(SEL) by ()` and `AGG(SEL)` without `by` give
  one group over all matched series, labelled {} (as PromQL's `sum(x)`; unlike
  `ferry query SEL --agg A` without --by, which answers each series on its own).
- Between two queries (or parenthesised sub-expressions), per step, groups whose label sets are
  equal on both sides combine; a group present on one side only, or a step present on one side
  only, gives no point. One exception: a side whose answer is exactly one group labelled {}
  combines with every group of the other side, step by step, like a scalar per step, and the
  result has the other side's labels.
- A number applies to every point. `number op number` is folded while parsing; an expression
  that is only numbers is refused ("expression has no query").
- Division by zero gives no point (no error, no inf or NaN); any NaN or infinite result point is
  dropped too.
- Bounds: at most 4096 chars, 16 queries (each written one counts; identical ones are run once)
  and a nesting depth of 32 (each operator, unary minus and pair of parentheses is one level
  over what it applies to, so `a + b + c` is 3 deep). `by` labels must match LABEL_KEY_RE.
  Errors raise QueryError, e.g. `expression: column 17: expected ')' closing rate(, got the end`
  (columns count from 1).

The answer's groups are sorted by their labels (sorted items), rows by (group, t); its
resolution is the operands' resolutions, the distinct non-empty ones in the order the
expression names them, joined by ","; its unit is the operands' through + - and unary minus
when they share one, else "" (ferry.collector.query.resultunit.combined).
"""

from __future__ import annotations

import numpy as np

from ferry.collector.query.answer import Answer, Operand, Run
from ferry.collector.query.exprparse import (
    MAX_CHARS,
    MAX_DEPTH,
    MAX_QUERIES,
    Bin,
    Expr,
    ExprSyntaxError,
    Neg,
    Node,
    Num,
    Query,
    operands,
    parse,
)
from ferry.collector.query.resultunit import combined

__all__ = [
    "MAX_CHARS",
    "MAX_DEPTH",
    "MAX_QUERIES",
    "Expr",
    "ExprSyntaxError",
    "evaluate",
    "operands",
    "parse",
]

_Key = tuple[tuple[str, str], ...]  # a group's labels, as sorted items


class _Vec:
    """An intermediate answer: per row its group's key, its step and its value."""

    def __init__(self, keys: list[_Key], group: np.ndarray, t: np.ndarray, v: np.ndarray):
        self.keys = keys  # distinct, sorted
        self.group, self.t, self.v = group, t, v

    @classmethod
    def of(cls, answer: Answer) -> _Vec:
        own = [tuple(sorted(labels.items())) for labels in answer.labels]
        keys = sorted(set(own))
        index = {k: i for i, k in enumerate(keys)}
        remap = np.array([index[k] for k in own], dtype=np.int64)
        group = remap[np.asarray(answer.group, dtype=np.int64)] if own else np.zeros(0, np.int64)
        return cls(keys, group, np.asarray(answer.t, np.int64), np.asarray(answer.v, np.float64))

    def scalar_like(self) -> bool:
        return self.keys == [()]


def evaluate(expr: Expr, run: Run) -> Answer:
    """The answer of `expr`, each distinct operand run once by `run` (topk is not applied)."""
    answers: dict[tuple, Answer] = {}
    for op in operands(expr.node):
        key = _operand_key(op)
        if key not in answers:
            answers[key] = run(op)
    result = _eval(expr.node, answers)
    if not isinstance(result, _Vec):  # parse() refuses an expression without a query
        raise ValueError("expression has no query")
    resolutions = list(dict.fromkeys(a.resolution for a in answers.values() if a.resolution))
    return _answer(result, ",".join(resolutions), _unit(expr.node, answers) or "")


def _operand_key(op: Operand) -> tuple:
    matchers = tuple((m.label, int(m.op), m.value) for m in op.matchers)
    return (op.metric, matchers, op.agg, op.by)


def _eval(node: Node, answers: dict[tuple, Answer]) -> _Vec | float:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Query):
        return _Vec.of(answers[_operand_key(node.operand)])
    if isinstance(node, Neg):
        arg = _eval(node.arg, answers)
        return -arg if isinstance(arg, float) else _Vec(arg.keys, arg.group, arg.t, -arg.v)
    assert isinstance(node, Bin)
    return binary(node.op, _eval(node.left, answers), _eval(node.right, answers))


def _unit(node: Node, answers: dict[tuple, Answer]) -> str | None:
    """The unit of `node`'s values (ferry.collector.query.resultunit); None for a number."""
    if isinstance(node, Num):
        return None
    if isinstance(node, Query):
        return answers[_operand_key(node.operand)].unit
    if isinstance(node, Neg):
        return _unit(node.arg, answers)
    assert isinstance(node, Bin)
    return combined(node.op, _unit(node.left, answers), _unit(node.right, answers))


def binary(op: str, left: _Vec | float, right: _Vec | float) -> _Vec:
    """`left op right` of two sides, at least one of them a _Vec."""
    if isinstance(left, float) or isinstance(right, float):
        vec = right if isinstance(left, float) else left
        a = np.full(len(vec.v), left) if isinstance(left, float) else vec.v
        b = np.full(len(vec.v), right) if isinstance(right, float) else vec.v
        return _apply(op, vec.keys, vec.group, vec.t, a, b)
    if left.scalar_like() and not right.scalar_like():
        at, found = _same_steps(left.t, right.t)
        g, t = right.group[found], right.t[found]
        return _apply(op, right.keys, g, t, left.v[at], right.v[found])
    if right.scalar_like() and not left.scalar_like():
        at, found = _same_steps(right.t, left.t)
        g, t = left.group[found], left.t[found]
        return _apply(op, left.keys, g, t, left.v[found], right.v[at])
    return _matched(op, left, right)


def _same_steps(scalar_t: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each of `t`, whether the one-group side `scalar_t` (ascending) has that step, and at
    which of its rows: (rows of the scalar side, mask over `t`)."""
    if not len(scalar_t):
        return np.zeros(0, np.int64), np.zeros(len(t), dtype=bool)
    order = np.argsort(scalar_t, kind="stable")
    ordered = scalar_t[order]
    at = np.minimum(np.searchsorted(ordered, t), len(ordered) - 1)
    found = ordered[at] == t
    return order[at[found]], found


def _matched(op: str, left: _Vec, right: _Vec) -> _Vec:
    """Rows of equal labels and step on both sides."""
    keys = sorted(set(left.keys) | set(right.keys))
    index = {k: i for i, k in enumerate(keys)}
    gl = np.array([index[k] for k in left.keys], dtype=np.int64)[left.group] if left.keys else left.group
    gr = np.array([index[k] for k in right.keys], dtype=np.int64)[right.group] if right.keys else right.group
    steps, inverse = np.unique(np.concatenate([left.t, right.t]), return_inverse=True)
    n = max(len(steps), 1)
    kl = gl * n + inverse[: len(left.t)]
    kr = gr * n + inverse[len(left.t) :]
    both, il, ir = np.intersect1d(kl, kr, return_indices=True)
    return _apply(op, keys, both // n, steps[both % n] if len(steps) else both, left.v[il], right.v[ir])


def _apply(op: str, keys: list[_Key], g: np.ndarray, t: np.ndarray, a: np.ndarray, b: np.ndarray) -> _Vec:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if op == "+":
            v = a + b
        elif op == "-":
            v = a - b
        elif op == "*":
            v = a * b
        else:
            v = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
    keep = np.isfinite(v)
    return _Vec(keys, g[keep], t[keep], v[keep])


def _answer(vec: _Vec, resolution: str, unit: str) -> Answer:
    """`vec` as an Answer of only the groups that have points, rows sorted by (group, t)."""
    order = np.lexsort((vec.t, vec.group))
    g, t, v = vec.group[order], vec.t[order], vec.v[order]
    used, group = np.unique(g, return_inverse=True)
    labels = [dict(vec.keys[int(i)]) for i in used]
    return Answer(labels, group.astype(np.int64).reshape(-1), t, v, resolution, unit)
