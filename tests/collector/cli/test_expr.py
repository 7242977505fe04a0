"""ferry.collector.cli.expr: selector parsing and error columns."""

from __future__ import annotations

import pytest

from ferry.collector.cli.expr import ExprError, Selector, parse
from ferry.v1 import query_pb2

EQ, NEQ, RE, NRE = query_pb2.EQ, query_pb2.NEQ, query_pb2.RE, query_pb2.NRE


def ms(sel: Selector) -> list[tuple[str, int, str]]:
    return [(m.label, m.op, m.value) for m in sel.matchers]


def error(text: str, require_name: bool = True) -> ExprError:
    with pytest.raises(ExprError) as exc:
        parse(text, require_name=require_name)
    return exc.value


# ---- accepted -------------------------------------------------------------------------------------


def test_bare_name():
    sel = parse("system.cpu.time")
    assert sel == Selector("system.cpu.time", [])


@pytest.mark.parametrize("name", ["up", "_x", "a.b:c-d_9", "Up9"])
def test_name_charset(name):
    assert parse(name).metric == name


@pytest.mark.parametrize("text", ["up{}", "up {}", "  up{ }  ", "up\t{\n}"])
def test_name_with_empty_braces(text):
    sel = parse(text)
    assert sel.metric == "up"
    assert sel.matchers == []


def test_all_four_operators():
    sel = parse('m{a="1",b!="2",c=~"3.*",d!~"4|5"}')
    assert sel.metric == "m"
    assert ms(sel) == [("a", EQ, "1"), ("b", NEQ, "2"), ("c", RE, "3.*"), ("d", NRE, "4|5")]
    assert (EQ, NEQ, RE, NRE) == (0, 1, 2, 3)


def test_both_quote_styles():
    sel = parse("""m{a='single',b="double",c='say "hi"',d="it's"}""")
    assert ms(sel) == [("a", EQ, "single"), ("b", EQ, "double"), ("c", EQ, 'say "hi"'), ("d", EQ, "it's")]


def test_escapes():
    sel = parse(r"""m{a="q\"b\\c\nd\te\'f",b='\'x\''}""")
    assert ms(sel) == [("a", EQ, "q\"b\\c\nd\te'f"), ("b", EQ, "'x'")]


def test_empty_value_and_unicode():
    sel = parse('m{a="",b=~"ключ ✓"}')
    assert ms(sel) == [("a", EQ, ""), ("b", RE, "ключ ✓")]


def test_whitespace_everywhere():
    sel = parse('  m  {  a  =  "1"  ,  b !=\t\'2\'  ,\n c =~ "x"  }  ')
    assert sel.metric == "m"
    assert ms(sel) == [("a", EQ, "1"), ("b", NEQ, "2"), ("c", RE, "x")]


def test_trailing_comma_is_accepted():
    assert ms(parse('m{a="1",}')) == [("a", EQ, "1")]


def test_value_containing_braces_commas_and_operators():
    assert ms(parse('m{a="}{,=~!="}')) == [("a", EQ, "}{,=~!=")]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ('{job="x"}', [("job", EQ, "x")]),
        ('  { job =~ "a.*" }', [("job", RE, "a.*")]),
        ("{}", []),
    ],
)
def test_braces_without_name_when_name_not_required(text, want):
    sel = parse(text, require_name=False)
    assert sel.metric == ""
    assert ms(sel) == want


def test_name_still_parsed_when_not_required():
    sel = parse('up{a="1"}', require_name=False)
    assert sel.metric == "up"
    assert ms(sel) == [("a", EQ, "1")]


# ---- errors with columns --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "require_name", "column", "message"),
    [
        # missing name
        ('{a="1"}', True, 0, "expected a metric name"),
        ('   {a="1"}', True, 3, "expected a metric name"),
        ("9up", True, 0, "expected a metric name"),
        ("", True, 0, "expected a metric name"),
        ("", False, 0, "expected a metric name"),
        ('"x"', False, 0, "expected a metric name"),
        ("  ", True, 2, "expected a metric name"),
        # bad label
        ('up{="1"}', True, 3, "expected a label name or '}'"),
        ('up{a="1",,b="2"}', True, 9, "expected a label name or '}'"),
        ('up{1a="1"}', True, 3, "expected a label name or '}'"),
        ("up{", True, 3, "expected a label name or '}'"),
        # bad operator
        ('up{job>"x"}', True, 6, "expected one of =, !=, =~, !~"),
        ('up{job ~ "x"}', True, 7, "expected one of =, !=, =~, !~"),
        ("up{job}", True, 6, "expected one of =, !=, =~, !~"),
        ('up{job!"x"}', True, 6, "expected one of =, !=, =~, !~"),
        # value not quoted
        ("up{job=x}", True, 7, "expected a quoted value"),
        ('up{job == "x"}', True, 8, "expected a quoted value"),
        ("up{job=", True, 7, "expected a quoted value"),
        # unterminated string: the column is where the closing quote was expected (end of input)
        ('up{job="abc', True, 11, "unterminated string"),
        ('up{job="abc}', True, 12, "unterminated string"),
        ("up{job='abc\"}", True, 13, "unterminated string"),
        ('up{job="abc\\', True, 12, "unterminated string"),
        # missing comma
        ('up{a="1" b="2"}', True, 9, "expected ',' or '}'"),
        ('up{a="1"', True, 8, "expected ',' or '}'"),
        ('up{a="1";b="2"}', True, 8, "expected ',' or '}'"),
        # trailing junk
        ('up{a="1"} x', True, 10, "unexpected 'x'"),
        ("up x", True, 3, "unexpected 'x'"),
        ("up{}}", True, 4, "unexpected '}'"),
        ('up="x"', True, 2, "unexpected '='"),
        ('{a="1"} {', False, 8, "unexpected '{'"),
        # unknown escape: the column is the backslash
        ('up{a="x\\qy"}', True, 7, "unknown escape \\q"),
        ("up{a='\\0'}", True, 6, "unknown escape \\0"),
    ],
)
def test_error_column(text, require_name, column, message):
    err = error(text, require_name)
    assert str(err) == message
    assert err.column == column
    assert err.text == text


def test_pointer_places_caret_under_column():
    text = 'up{job>"x"}'
    err = error(text)
    assert err.pointer() == '  up{job>"x"}\n        ^ expected one of =, !=, =~, !~'
    first, second = err.pointer().split("\n")
    caret = second.index("^")
    assert first[caret] == ">"


@pytest.mark.parametrize(
    ("text", "char"),
    [
        ('up{a="1" b="2"}', "b"),
        ('up{a="x\\qy"}', "\\"),
        ('   {a="1"}', "{"),
        ("up x", "x"),
    ],
)
def test_pointer_caret_is_under_the_failing_character(text, char):
    err = error(text)
    first, second = err.pointer().split("\n")
    assert first == "  " + text
    assert second == " " * (2 + err.column) + "^ " + str(err)
    assert first[second.index("^")] == char


def test_pointer_at_end_of_input():
    err = error('up{job="abc')
    assert err.pointer() == '  up{job="abc\n' + " " * 13 + "^ unterminated string"


def test_expr_error_is_value_error():
    assert issubclass(ExprError, ValueError)
