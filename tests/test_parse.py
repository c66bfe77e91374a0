import pytest

from resdsl import SpecError
from resdsl import syntax as ast
from resdsl.parse import parse_expression, parse_module


def first_body(text):
    return parse_module(text, "t.res").definitions[0].body


def test_spans_point_at_source():
    module = parse_module('use "blocks.res"\nnetwork n {\n  input 3x8x8\n  conv 8 k3 s2\n}\n', "t.res")
    assert module.uses[0].path == "blocks.res"
    call = module.definitions[0].body.statements[1].links[0].element
    assert isinstance(call, ast.Call) and call.name == "conv"
    assert (call.span.line, call.span.column) == (4, 3)
    assert [a.name for a in call.args] == [None, "k", "s"]


def test_newlines_continue_after_arrow_and_inside_brackets():
    body = first_body("network n(a = [1,\n 2]) {\n input 4\n fc 8 ->\n relu\n -> fc 2\n}\n")
    chain = body.statements[1]
    assert [link.element.name for link in chain.links] == ["fc", "relu", "fc"]


def test_stage_with_repeat_and_options():
    body = first_body("network n {\n input 3x8x8\n layer2: basic(128) x4 s2 shortcut A\n}")
    link = body.statements[1].links[0]
    assert link.label == "layer2"
    repeat = link.element.repeat
    assert repeat.count.value == 4 and repeat.options[0].name == "s" and repeat.shortcuts[0].id == "A"


def test_shape_literal_and_spaced_dims():
    body = first_body("network n(c = 3) {\n input c x 32 x 32\n}")
    assert [type(d).__name__ for d in body.statements[0].dims] == ["Name", "Number", "Number"]
    body = first_body("network n {\n input 3x224x224\n}")
    assert [d.value for d in body.statements[0].dims] == [3, 224, 224]


def test_expression_precedence():
    e = parse_expression("1 + 2 * 3 if a > 2 and not b else 4")
    assert isinstance(e, ast.Ternary)
    assert isinstance(e.then, ast.Binary) and e.then.op == "+"


@pytest.mark.parametrize(
    "text,code",
    [
        ("network n {", "E0104"),
        ("network n { input 3x8x8\n conv 8 k3 ; }", "E0102"),
        ("network n { ) }", "E0103"),
        ("(" * 5000, "E0105"),
    ],
)
def test_syntax_errors_are_located(text, code):
    with pytest.raises(SpecError) as e:
        parse_module(text, "t.res")
    d = e.value.diagnostics[0]
    assert d.code == code and d.line >= 1 and d.column >= 1


@pytest.mark.parametrize(
    "text,hint",
    [
        ("network n {\n input 8\n fc 8\n relu ->\n}", "cannot end with `->`"),
        ("network n {\n input 8\n b(1) x\n}", "a repeat needs a count"),
        ("block b(w =) {\n}", "needs a value after `=`"),
        ("block q(w) {\n relu\n relu\n relu\n b(1 2)\n}", "separate arguments with commas"),
        ("block b {\n}", "parameter list"),
        ("network n {\n input 8\n fc 8\nnetwork m {\n}", "`}` missing"),
        ("conv 8 k3\n", "ops belong inside"),
    ],
)
def test_common_mistakes_get_a_hint(text, hint):
    with pytest.raises(SpecError) as e:
        parse_module(text, "t.res")
    assert hint in (e.value.diagnostics[0].help or "")
