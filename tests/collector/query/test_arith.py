"""ferry.collector.query.arith: the expression parser (precedence, numbers, errors with their
columns, bounds) and the evaluator over hand-built Answers given by a `run` of our own."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ferry.collector.query import arith
from ferry.collector.query.answer import Answer, Operand
from ferry.collector.query.exprparse import MAX_K, Bin, Expr, Neg, Num, Query, fold
from ferry.collector.query.sql import AGGREGATIONS, QueryError
from ferry.v1 import query_pb2

AGGS = ", ".join(AGGREGATIONS)


def q(metric: str, agg: str = "avg", by: tuple[str, ...] = (), column: int = 1, **eq: str) -> Query:
    matchers = tuple(query_pb2.Matcher(label=k, op=query_pb2.EQ, value=v) for k, v in eq.items())
    return Query(Operand(metric, matchers, agg, by), column)


def error(text: str) -> str:
    with pytest.raises(QueryError) as exc:
        arith.parse(text)
    return str(exc.value)


# ---- parsing ---------------------------------------------------------------------------------------


def test_the_ratio_example():
    text = 'rate(http.errors{code=~"5.."}) by (service) / rate(http.requests) by (service) * 100'
    expr = arith.parse(text)
    errors = Operand("http.errors", (query_pb2.Matcher(label="code", op=query_pb2.RE, value="5.."),), "rate")
    want = Bin(
        "*",
        Bin(
            "/",
            Query(Operand(errors.metric, errors.matchers, "rate", ("service",)), 1),
            Query(Operand("http.requests", (), "rate", ("service",)), 47),
        ),
        Num(100.0),
    )
    assert expr == Expr(want, 0, "")
    assert arith.operands(expr.node) == [want.left.left.operand, want.left.right.operand]


def test_without_by_is_one_group_and_by_labels_are_kept_in_order():
    assert arith.parse("sum(a)").node == q("a", "sum")
    assert arith.parse("sum(a) by ()").node == q("a", "sum")
    assert arith.parse("sum(a)by(z,y,)").node.operand.by == ("z", "y")
    assert arith.parse("  max( a.b-c:d { x = 'v' } )  by  ( k.1 , _l )  ").node == q(
        "a.b-c:d", "max", ("k.1", "_l"), column=3, x="v"
    )


@pytest.mark.parametrize("agg", AGGREGATIONS)
def test_every_aggregation(agg):
    assert arith.parse(f"{agg}(m)").node.operand.agg == agg


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("avg(a) + avg(b) * avg(c)", Bin("+", q("a"), Bin("*", q("b", column=10), q("c", column=19)))),
        (
            "(avg(a) + avg(b)) * avg(c)",
            Bin("*", Bin("+", q("a", column=2), q("b", column=11)), q("c", column=21)),
        ),
        ("avg(a) - avg(b) - avg(c)", Bin("-", Bin("-", q("a"), q("b", column=10)), q("c", column=19))),
        ("avg(a) / avg(b) / 2", Bin("/", Bin("/", q("a"), q("b", column=10)), Num(2.0))),
        ("avg(a) / (avg(b) / 2)", Bin("/", q("a"), Bin("/", q("b", column=11), Num(2.0)))),
        ("-avg(a) * 2", Bin("*", Neg(q("a", column=2)), Num(2.0))),
        ("2 - -avg(a)", Bin("-", Num(2.0), Neg(q("a", column=6)))),
        ("- - avg(a)", Neg(Neg(q("a", column=5)))),
        ("-(avg(a) + 1)", Neg(Bin("+", q("a", column=3), Num(1.0)))),
        ("1 + 2 * 3 - avg(a)", Bin("-", Num(7.0), q("a", column=13))),
        ("(1 + 2) * 3 * avg(a)", Bin("*", Num(9.0), q("a", column=15))),
        ("2 * 3 * avg(a)", Bin("*", Num(6.0), q("a", column=9))),
        ("avg(a) * 2 * 3", Bin("*", Bin("*", q("a"), Num(2.0)), Num(3.0))),  # left to right: not folded
        ("-2 * avg(a)", Bin("*", Num(-2.0), q("a", column=6))),
        ("1 / 0 + avg(a)", Bin("+", Num(math.nan), q("a", column=9))),
    ],
)
def test_precedence_and_folding(text, tree):
    assert repr(arith.parse(text).node) == repr(tree)  # repr: NaN != NaN


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e3", 1000.0),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("2E-3", 0.002),
        ("1.5e+2", 150.0),
        ("007", 7.0),
    ],
)
def test_numbers(text, value):
    assert arith.parse(f"{text} * avg(a)").node.left == Num(value)


def test_fold():
    assert fold("+", 1, 2) == 3 and fold("-", 1, 2) == -1 and fold("*", 2, 3) == 6 and fold("/", 1, 4) == 0.25
    assert math.isnan(fold("/", 1, 0)) and math.isnan(fold("/", 0, 0)) and math.isnan(fold("*", 1e308, 10))


@pytest.mark.parametrize(
    ("text", "k", "which"),
    [
        ("topk(3, avg(a) by (h))", 3, "top"),
        (" bottomk ( 1 , -avg(a) ) ", 1, "bottom"),
        (f"topk({MAX_K}, avg(a))", MAX_K, "top"),
    ],
)
def test_topk_and_bottomk_at_the_top(text, k, which):
    expr = arith.parse(text)
    assert (expr.k, expr.which) == (k, which)
    node, k2, which2 = expr  # unpacks as (node, k, which)
    assert (k2, which2) == (k, which) and arith.operands(node)[0].metric == "a"


def test_a_metric_named_like_a_keyword():
    assert arith.parse("avg(topk) + sum(by) by (by)").node == Bin("+", q("topk"), q("by", "sum", ("by",), 13))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expression: column 1: expected AGG(SELECTOR), a number, '(' or '-', got the end"),
        ("   ", "expression: column 4: expected AGG(SELECTOR), a number, '(' or '-', got the end"),
        ("avg(a", "expression: column 6: expected ')' closing avg(, got the end"),
        ("avg(a b)", "expression: column 7: expected ')' closing avg(, got 'b'"),
        ("(avg(a) + 1", "expression: column 12: expected ')' closing the '(' at column 1, got the end"),
        ("avg(a))", "expression: column 7: expected an operator or the end, got ')'"),
        ("avg(a) avg(b)", "expression: column 8: expected an operator or the end, got 'avg'"),
        ("avg(a) +", "expression: column 9: expected AGG(SELECTOR), a number, '(' or '-', got the end"),
        ("avg(a) * / 2", "expression: column 10: expected AGG(SELECTOR), a number, '(' or '-', got '/'"),
        ("+avg(a)", "expression: column 1: expected AGG(SELECTOR), a number, '(' or '-', got '+'"),
        ("avg(a) ^ 2", "expression: column 8: expected an operator or the end, got '^'"),
        ("foo(a)", f"expression: column 1: unknown aggregation 'foo'; one of {AGGS}"),
        ("AVG(a)", f"expression: column 1: unknown aggregation 'AVG'; one of {AGGS}"),
        ("1 + stddev(a)", f"expression: column 5: unknown aggregation 'stddev'; one of {AGGS}"),
        (
            "http.requests",
            "expression: column 1: expected AGG(SELECTOR) or a number, got 'http.requests'; "
            f"AGG is one of {AGGS}",
        ),
        (
            'avg(a) / b{c="1"}',
            f"expression: column 10: expected AGG(SELECTOR) or a number, got 'b'; AGG is one of {AGGS}",
        ),
        (
            "sum by (h) (a)",
            "expression: column 1: write sum(SELECTOR) by (L1, L2): the by clause comes after the selector",
        ),
        ("avg()", "expression: column 5: expected a metric name"),
        ('avg({a="1"})', "expression: column 5: expected a metric name"),
        ("avg(a{b=1})", "expression: column 9: expected a quoted value"),
        ('avg(a{b="1)', "expression: column 12: unterminated string"),
        ('avg(a{b~"1"})', "expression: column 8: expected one of =, !=, =~, !~"),
        ('avg(a{b="\\q"})', "expression: column 10: unknown escape \\q"),
        ("avg(a) by", "expression: column 10: expected '(' after by, got the end"),
        ("avg(a) by h", "expression: column 11: expected '(' after by, got 'h'"),
        ("avg(a) by (h", "expression: column 13: expected ',' or ')' in by (...), got the end"),
        ("avg(a) by (h k)", "expression: column 14: expected ',' or ')' in by (...), got 'k'"),
        ("avg(a) by (,)", "expression: column 12: expected a label name or ')' in by (...), got ','"),
        ("avg(a) by (9h)", "expression: column 12: by label '9h' does not match [A-Za-z_][A-Za-z0-9_.]*"),
        ("avg(a) by (h-1)", "expression: column 12: by label 'h-1' does not match [A-Za-z_][A-Za-z0-9_.]*"),
        ("avg(a) by (h, h)", "expression: column 15: by label 'h' is given twice"),
        ("avg(a) byh", "expression: column 8: expected an operator or the end, got 'byh'"),
        ("2avg(a)", "expression: column 2: unexpected 'a' after the number"),
        ("1e", "expression: column 2: unexpected 'e' after the number"),
        ("1e999 * avg(a)", "expression: column 1: number 1e999 is out of range"),
        ("1.2.3 * avg(a)", "expression: column 4: expected an operator or the end, got '.3'"),
        (
            "avg(a) + topk(2, avg(b))",
            "expression: column 10: topk is allowed only around the whole expression",
        ),
        ("(bottomk(2, avg(b)))", "expression: column 2: bottomk is allowed only around the whole expression"),
        ("topk(2, avg(a)) * 2", "expression: column 17: topk(...) must be the whole expression, got '*'"),
        ("topk(0, avg(a))", f"expression: column 6: topk's k must be an integer from 1 to {MAX_K}, got '0'"),
        (
            "topk(1.5, avg(a))",
            f"expression: column 6: topk's k must be an integer from 1 to {MAX_K}, got '1.5'",
        ),
        (
            f"topk({MAX_K + 1}, avg(a))",
            f"expression: column 6: topk's k must be an integer from 1 to {MAX_K}, got '{MAX_K + 1}'",
        ),
        ("topk(avg(a))", f"expression: column 6: topk's k must be an integer from 1 to {MAX_K}, got 'avg'"),
        ("topk(2 avg(a))", "expression: column 8: expected ',' after topk's k, got 'avg'"),
        ("topk(2, avg(a)", "expression: column 15: expected ')' closing topk(, got the end"),
        (
            "topk",
            f"expression: column 1: expected AGG(SELECTOR) or a number, got 'topk'; AGG is one of {AGGS}",
        ),
        ("1 + 2", "expression has no query"),
        ("-(1)", "expression has no query"),
        ("topk(1, 2)", "expression has no query"),
    ],
)
def test_errors_name_the_column(text, message):
    assert error(text) == message


def test_syntax_error_carries_its_column():
    with pytest.raises(arith.ExprSyntaxError) as exc:
        arith.parse("avg(a) + (")
    assert exc.value.column == 11 and isinstance(exc.value, QueryError)


def test_length_bound():
    longest = "avg(a)" + " " * (arith.MAX_CHARS - 6)
    assert arith.parse(longest).node == q("a")
    assert error(longest + " ") == f"expression of {arith.MAX_CHARS + 1} chars > 4096 allowed"
    assert error("x" * 1_000_000) == "expression of 1000000 chars > 4096 allowed"


def test_query_count_bound():
    sixteen = " + ".join(f"avg(m{i})" for i in range(16))
    assert len(arith.operands(arith.parse(sixteen).node)) == 16
    column = len(sixteen) + 4
    assert error(sixteen + " + avg(m16)") == f"expression: column {column}: 17 queries > 16 allowed"
    assert error(" + ".join(["avg(m)"] * 17)).endswith("17 queries > 16 allowed")  # identical ones count


def test_depth_bound():
    assert arith.parse("(" * 31 + "avg(a)" + ")" * 31).node == q("a", column=32)
    assert error("(" * 32 + "avg(a)" + ")" * 32) == (
        "expression: column 32: nesting depth 33 > 32 allowed "
        "(each operator, unary minus and pair of parentheses is a level)"
    )
    assert arith.parse("-" * 31 + "avg(a)").node is not None
    assert error("-" * 32 + "avg(a)").startswith("expression: column 32: nesting depth 33 > 32 allowed")
    chain = "avg(a)" + " + 1" * 31  # 31 additions over one another: 32 deep
    assert arith.parse(chain).node.right == Num(1.0)
    assert error(chain + " + 1").startswith(f"expression: column {len(chain) + 2}: nesting depth 33 > 32")
    # deep input is refused before the parser recurses through it
    assert "nesting depth 33 > 32" in error("(" * 4000)
    assert "nesting depth 33 > 32" in error("-" * 4000)


# ---- evaluation ------------------------------------------------------------------------------------


def ans(*groups: tuple[dict[str, str], dict[int, float]], resolution: str = "raw") -> Answer:
    """An Answer of groups (labels, {t: v}), rows sorted by (group, t) as the service gives."""
    g, t, v = [], [], []
    for i, (_labels, points) in enumerate(groups):
        for ts in sorted(points):
            g.append(i)
            t.append(ts)
            v.append(points[ts])
    return Answer(
        [dict(labels) for labels, _ in groups],
        np.array(g, dtype=np.int64),
        np.array(t, dtype=np.int64),
        np.array(v, dtype=np.float64),
        resolution,
    )


def rows(answer: Answer) -> list[tuple[dict[str, str], list[tuple[int, float]]]]:
    out = []
    for i, labels in enumerate(answer.labels):
        mask = answer.group == i
        out.append((labels, list(zip(answer.t[mask].tolist(), answer.v[mask].tolist(), strict=True))))
    assert answer.group.dtype == np.int64 and answer.t.dtype == np.int64 and answer.v.dtype == np.float64
    order = np.lexsort((answer.t, answer.group))
    assert (order == np.arange(len(answer))).all()  # rows sorted by (group, t)
    return out


class Runs:
    """A `run` answering operands by metric name, recording what it was asked."""

    def __init__(self, **answers: Answer):
        self.answers = answers
        self.asked: list[Operand] = []

    def __call__(self, op: Operand) -> Answer:
        self.asked.append(op)
        return self.answers[op.metric]


def evaluate(text: str, **answers: Answer) -> list:
    return rows(arith.evaluate(arith.parse(text), Runs(**answers)))


A, B = {"service": "a"}, {"service": "b"}


def test_equal_label_sets_combine_step_by_step():
    errors = ans((A, {0: 1.0, 60: 2.0}), (B, {0: 3.0, 60: 0.0}))
    requests = ans((B, {0: 30.0, 60: 10.0}), (A, {0: 10.0, 60: 4.0}))  # another group order
    got = evaluate(
        "rate(errors) by (service) / rate(requests) by (service) * 100", errors=errors, requests=requests
    )
    assert got == [(A, [(0, 10.0), (60, 50.0)]), (B, [(0, 10.0), (60, 0.0)])]


def test_one_sided_groups_and_steps_give_no_point():
    left = ans((A, {0: 1.0, 60: 2.0}), (B, {0: 5.0}), ({"service": "c"}, {0: 7.0}))
    right = ans((A, {60: 10.0, 120: 3.0}), (B, {0: 1.0}), ({"service": "d"}, {0: 1.0}))
    assert evaluate("sum(l) by (service) + sum(r) by (service)", l=left, r=right) == [
        (A, [(60, 12.0)]),
        (B, [(0, 6.0)]),
    ]


def test_label_sets_must_be_equal_not_overlapping():
    left = ans(({"service": "a", "zone": "z"}, {0: 1.0}))
    right = ans((A, {0: 1.0}))
    assert evaluate("sum(l) by (service, zone) - sum(r) by (service)", l=left, r=right) == []


def test_label_order_in_by_does_not_matter():
    left = ans(({"x": "1", "y": "2"}, {0: 4.0}))
    right = ans(({"y": "2", "x": "1"}, {0: 2.0}))
    assert evaluate("sum(l) by (x, y) / sum(r) by (y, x)", l=left, r=right) == [
        ({"x": "1", "y": "2"}, [(0, 2.0)])
    ]


def test_the_empty_label_group_matches_every_group_per_step():
    per_service = ans((A, {0: 1.0, 60: 2.0, 120: 3.0}), (B, {0: 4.0, 120: 6.0}))
    total = ans(({}, {0: 10.0, 60: 20.0}))
    assert evaluate("sum(s) by (service) / sum(t)", s=per_service, t=total) == [
        (A, [(0, 0.1), (60, 0.1)]),
        (B, [(0, 0.4)]),  # step 120: the total has no point there
    ]
    assert evaluate("sum(t) - sum(s) by (service)", s=per_service, t=total) == [
        (A, [(0, 9.0), (60, 18.0)]),
        (B, [(0, 6.0)]),
    ]
    # both sides {}: an ordinary match
    assert evaluate("sum(t) * sum(u)", t=total, u=ans(({}, {60: 3.0, 120: 1.0}))) == [({}, [(60, 60.0)])]
    # a parenthesised sub-expression of one {} group is scalar-like too
    got = evaluate(
        "sum(s) by (service) * (sum(t) / sum(u))", s=per_service, t=total, u=ans(({}, {0: 5.0, 60: 5.0}))
    )
    assert got == [(A, [(0, 2.0), (60, 8.0)]), (B, [(0, 8.0)])]


def test_one_group_with_labels_is_not_scalar_like():
    one = ans((A, {0: 2.0}))
    assert evaluate(
        "sum(s) by (service) * sum(o) by (service)", s=ans((A, {0: 3.0}), (B, {0: 4.0})), o=one
    ) == [(A, [(0, 6.0)])]


def test_numbers_apply_to_every_point():
    s = ans((A, {0: 1.0, 60: -2.0}), (B, {0: 4.0}))
    assert evaluate("2 * avg(s) by (service) + 1", s=s) == [(A, [(0, 3.0), (60, -3.0)]), (B, [(0, 9.0)])]
    assert evaluate("10 - avg(s) by (service)", s=s) == [(A, [(0, 9.0), (60, 12.0)]), (B, [(0, 6.0)])]
    assert evaluate("8 / avg(s) by (service)", s=s) == [(A, [(0, 8.0), (60, -4.0)]), (B, [(0, 2.0)])]
    assert evaluate("-avg(s) by (service)", s=s) == [(A, [(0, -1.0), (60, 2.0)]), (B, [(0, -4.0)])]
    assert evaluate("avg(s) by (service) * (2 - 3) * 1e3", s=s)[1] == (B, [(0, -4000.0)])


def test_division_by_zero_gives_no_point():
    s = ans((A, {0: 1.0, 60: 0.0, 120: -1.0}))
    z = ans((A, {0: 0.0, 60: 0.0, 120: 2.0}))
    assert evaluate("avg(s) by (service) / avg(z) by (service)", s=s, z=z) == [(A, [(120, -0.5)])]
    assert evaluate("avg(s) by (service) / 0", s=s) == []
    assert evaluate("avg(s) by (service) / (2 - 2)", s=s) == []
    assert evaluate("1 / avg(s) by (service)", s=s) == [(A, [(0, 1.0), (120, -1.0)])]
    assert evaluate("avg(s) by (service) + 1 / 0", s=s) == []  # a folded division by zero has no value
    assert evaluate("avg(s) by (service) / avg(t)", s=s, t=ans(({}, {0: 0.0, 60: 4.0}))) == [(A, [(60, 0.0)])]


def test_nan_and_inf_points_are_dropped():
    s = ans((A, {0: 1e308, 60: math.nan, 120: math.inf, 180: 1.0}))
    assert evaluate("avg(s) by (service) * 10", s=s) == [(A, [(180, 10.0)])]
    assert evaluate("avg(s) by (service) - avg(s) by (service)", s=s) == [(A, [(0, 0.0), (180, 0.0)])]


def test_identical_operands_run_once_and_by_is_always_a_tuple():
    runs = Runs(s=ans((A, {0: 3.0})), t=ans(({}, {0: 2.0})))
    expr = arith.parse(
        'avg(s{k="1"}) by (service) * avg(s{k="1"}) by (service) + avg(s{k="2"}) by (service) - sum(t)'
    )
    assert rows(arith.evaluate(expr, runs)) == [(A, [(0, 10.0)])]
    assert [(op.metric, [m.value for m in op.matchers], op.by) for op in runs.asked] == [
        ("s", ["1"], ("service",)),
        ("s", ["2"], ("service",)),
        ("t", [], ()),
    ]


def test_groups_with_no_point_left_are_not_in_the_answer_and_labels_are_sorted():
    c = {"service": "c"}
    s = ans((c, {0: 1.0}), (A, {0: 0.0}), (B, {0: 2.0}))
    got = arith.evaluate(arith.parse("1 / avg(s) by (service)"), Runs(s=s))
    assert got.labels == [B, c] and rows(got) == [(B, [(0, 0.5)]), (c, [(0, 1.0)])]


def test_empty_operands():
    s = ans((A, {0: 1.0}))
    assert evaluate("avg(s) by (service) + avg(e)", s=s, e=ans()) == []
    assert evaluate("-avg(e) * 2", e=ans()) == []


def test_resolution_is_each_distinct_one_in_order():
    def resolution(text, **answers):
        return arith.evaluate(arith.parse(text), Runs(**answers)).resolution

    raw, m1, h1, none = (ans((A, {0: 1.0}), resolution=r) for r in ("raw", "1m", "1h", ""))
    assert resolution("avg(a) + avg(b)", a=raw, b=raw) == "raw"
    assert resolution("avg(a) + avg(b) + avg(c)", a=m1, b=raw, c=m1) == "1m,raw"
    assert resolution("avg(a) + avg(b) * avg(c)", a=h1, b=none, c=raw) == "1h,raw"
    assert resolution("avg(a) * 2", a=none) == ""
