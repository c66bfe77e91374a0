"""Expressions of issue 20: builtin functions, `**`, list comprehensions, `{expr}` in quoted names, and a
stage's label naming its repetitions (docs/language.md §23 and §24).

- each function and operator gives what Python (and, for rounding, numpy and torch) gives;
- function names are a namespace of their own, `**` binds as Python's, comprehensions scope as Python's;
- every mistake is a located error with its code, `resdsl check` exits 1 on it without a traceback, and no
  expression can run for long (`10 ** 10 ** 10`, nested ranges);
- quoted names with values, and stages that name their blocks: the names, the errors, the compiled module,
  its state dict and the ejected source.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
import torch

import resdsl
from resdsl.cli import main
from resdsl.errors import EvalError
from resdsl.evaluation import evaluate
from resdsl.functions import FUNCTIONS
from resdsl.parse import parse_expression


def value(text: str, **env):
    return evaluate(parse_expression(text), env, frozenset())


def failure(text: str, **env) -> EvalError:
    with pytest.raises(EvalError) as info:
        value(text, **env)
    return info.value


def errors(text: str) -> list[tuple[str, int, int]]:
    """(code, line, column) of each error of the spec `text`."""
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text, path="n.res")
    return [(d.code, d.line, d.column) for d in info.value.diagnostics]


def network(body: str, params: str = "") -> resdsl.Network:
    return resdsl.loads(f'use "blocks.res"\nnetwork n({params}) {{\n    input 3x16x16\n{body}\n}}\n', path="n.res")


# ---- functions: Python's meaning --------------------------------------------------------------------

HALVES = [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.675, 1e15 + 0.5, -7.0, 0.49999999999999994]


@pytest.mark.parametrize("x", HALVES)
def test_round_is_half_to_even_as_python_numpy_and_torch(x):
    got = value("round(v)", v=x)
    assert isinstance(got, int)
    assert got == round(x) == int(np.round(x)) == int(torch.round(torch.tensor(x, dtype=torch.float64)))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("round(2.675, 2)", round(2.675, 2)),
        ("round(1234.5, -2)", round(1234.5, -2)),
        ("round(7)", 7),
        ("floor(-2.5)", -3),
        ("ceil(-2.5)", -2),
        ("ceil(2.000001)", 3),
        ("int(-2.7)", -2),
        ("int(2.7)", 2),
        ("int(5)", 5),
        ("float(3)", 3.0),
        ("abs(-3)", 3),
        ("abs(-2.5)", 2.5),
        ("min([3, 1, 2])", 1),
        ("max(3, 1.5)", 3),
        ("max([2, 7, 7])", 7),
        ("sum([1, 2, 3])", 6),
        ("sum([0.5, 0.25], 1)", 1.75),
        ("sum([])", 0),
        ("len([1, [2, 3]])", 2),
        ("len([])", 0),
        ("range(4)", (0, 1, 2, 3)),
        ("range(2, 9, 3)", (2, 5, 8)),
        ("range(5, 0, -2)", (5, 3, 1)),
        ("range(3, 1)", ()),
        ("log(8)", math.log(8)),
        ("log(8, 2)", math.log(8, 2)),
        ("log(0.5, 10)", math.log(0.5, 10)),
        ("exp(1.5)", math.exp(1.5)),
        ("sqrt(2)", math.sqrt(2)),
        ("unique([3, 1, 3, 2, 1])", (3, 1, 2)),
        ("unique([1, 1.0, true])", (1, 1.0, True)),  # three values of the language, as `==` says
        ("count([1, 2, 1, [1]], 1)", 2),
        ("count([[1, 2], [1, 2]], [1, 2])", 2),
        ("zip([1, 2, 3], [4, 5])", ((1, 4), (2, 5))),
        ("max(max, 8)", 9),  # the parameter `max` and the function `max`
    ],
)
def test_each_function_gives_pythons_result(text, expected):
    got = value(text, max=9)
    assert got == expected and type(got) is type(expected)


def test_every_function_is_documented_and_tested():
    page = (pytest.importorskip("pathlib").Path(__file__).parent.parent / "docs" / "language.md").read_text()
    section = page[page.index("## 23.") : page.index("## 24.")]
    tested = test_each_function_gives_pythons_result.pytestmark[0].args[1]
    for name in FUNCTIONS:
        assert f"`{name}(" in section, name
        assert any(text.startswith(f"{name}(") for text, _ in tested), name


# ---- `**` -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "2 ** 3 ** 2",
        "-2 ** 2",
        "2 ** -1",
        "(-2) ** 2",
        "-2 ** -2",
        "2 * 3 ** 2",
        "10 ** 2 // 7",
        "2.5 ** 2",
        "4 ** 0.5",
        "(-8) ** 3",
        "0 ** 0",
        "[2, 3][1] ** 2",
        "-(2 ** 2) ** 2",
        "2 ** 62 + (2 ** 62 - 1)",
    ],
)
def test_power_binds_and_computes_as_pythons(text):
    assert value(text) == eval(text) and type(value(text)) is type(eval(text))


# ---- comprehensions ---------------------------------------------------------------------------------


def test_comprehensions_make_lists_as_pythons():
    assert value("[w * 2 for w in widths]", widths=(1, 2, 3)) == (2, 4, 6)
    assert value("[i for i in range(10) if i % 3 == 0]") == (0, 3, 6, 9)
    assert value("[a * b for a, b in zip([1, 2], [3, 4])]") == (3, 8)
    assert value("[[j for j in range(i)] for i in range(3)]") == ((), (0,), (0, 1))
    assert value("[w if w > 2 else 0 for w in [1, 3]]") == (0, 3)
    assert value("[]") == ()


def test_a_comprehensions_name_hides_a_parameter_inside_the_brackets_only():
    assert value("[w for w in [7, 8]] + [w]", w=1) == (7, 8, 1)
    net = network("    conv sum([c for c in range(4)]) + c k1", params="c = 2")  # 0+1+2+3 + 2
    assert net.output_shape == (8, 16, 16)


# ---- errors: located, with their code ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, code, column, words",
    [
        ("rund(2)", "E0201", 1, "did you mean `round`?"),
        ("zzz(2)", "E0201", 1, "functions: round"),
        ("round(1, 2, 3)", "E0302", 1, "takes 1 or 2 arguments, not 3"),
        ("len()", "E0302", 1, "takes 1 argument, not 0"),
        ("max(3)", "E0302", 5, "of one number"),
        ("round([1])", "E0302", 7, "takes numbers, not a list"),
        ("int(true)", "E0302", 5, "not a boolean"),
        ("len(3)", "E0302", 5, "takes a list"),
        ("sum([1, true])", "E0302", 5, "not a boolean"),
        ("range(1.5)", "E0302", 7, "expected an integer"),
        ("log(0)", "E0306", 5, "log(0) is not defined"),
        ("log(-1.5)", "E0306", 5, "not defined"),
        ("log(8, 1)", "E0306", 8, "base 1"),
        ("sqrt(-1)", "E0306", 6, "not a real number"),
        ("min([])", "E0306", 5, "empty list"),
        ("range(0, 10, 0)", "E0306", 14, "step is 0"),
        ("(-8) ** 0.5", "E0306", 1, "fractional power"),
        ("0 ** -1", "E0304", 1, "division by zero"),
        ("2 ** 63", "E0303", 1, "too large"),
        ("10 ** 10 ** 10", "E0303", 1, "too large"),
        ("2.0 ** 5000", "E0303", 1, "too large"),
        ("0.5 ** -5000", "E0303", 1, "too large"),
        ("exp(1000)", "E0303", 1, "too large"),
        ("round(1e300)", "E0303", 1, "too large"),
        ("int(-1e19)", "E0303", 1, "too large"),
        ("sum([1e308, 1e308])", "E0303", 1, "too large"),
        ("range(1000000)", "E0303", 1, "100,000"),
        ("[i for i in 3]", "E0302", 13, "goes over a list"),
        ("[a for a, b in [1, 2]]", "E0302", 16, "2 names"),
        ("[[j for j in range(10000)] for i in range(10000)]", "E0303", 1, "1,000,000 steps"),
        ("[sum(range(100000)) for i in range(100)]", "E0303", 1, "1,000,000 steps"),
        ("[[0] * 100000 for i in range(100)]", "E0303", 1, "1,000,000 steps"),
    ],
)
def test_a_mistake_is_a_located_error(text, code, column, words):
    exc = failure(text)
    assert (exc.code, exc.span.column) == (code, column), exc.message
    assert words in exc.message + " " + (exc.help or "")


def test_a_mistake_in_a_spec_exits_1_from_the_cli_without_a_traceback(tmp_path, capsys):
    bad = {
        "a.res": "network a(w = 0) {\n    input 3x8x8\n    conv round(16 * log(w)) k1\n}\n",
        "b.res": "network b(w = 2.5) {\n    input 3x8x8\n    conv rnd(w) k1\n}\n",
        "c.res": "network c {\n    input 3x8x8\n    conv [i for i in range(2)][5] k1\n}\n",
        "d.res": 'use "blocks.res"\nnetwork d {\n    input 3x8x8\n    "s1"."b{repetition +}": basic(8) x 2\n}\n',
    }
    expected = {
        "a.res": "error[E0306]: log(0) is not defined\n --> ",
        "b.res": "error[E0201]: unknown function `rnd`\n --> ",
        "c.res": "error[E0305]: index 5 is out of range for a list of 2\n --> ",
        "d.res": "error[E0103]: the expression in `{...}` ends too early\n --> ",
    }
    where = {"a.res": ":3:25", "b.res": ":3:10", "c.res": ":3:32", "d.res": ":4:25"}
    for name, text in bad.items():
        (tmp_path / name).write_text(text)
        assert main(["check", str(tmp_path / name)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(expected[name]) and where[name] in err.splitlines()[1], err
        assert "Traceback" not in err


# ---- `{expr}` in quoted names -----------------------------------------------------------------------


def test_a_quoted_name_holds_values_evaluated_in_its_scope():
    net = network(
        '    "c{w}-{w // 2}": conv w k3\n    "t{{{len(ks)}}}" { relu }\n    g."{true}{{y}}": relu',
        params="w = 8, ks = [3, 5]",
    )
    assert list(net.ops.nodes)[1:] == ["c8-4", "t{2}.0", "g.true{y}"]


def test_quoted_names_with_only_doubled_braces_are_plain_names():
    assert list(network('    "{{a}}": conv 8 k1').ops.nodes)[1:] == ["{a}"]


@pytest.mark.parametrize(
    "body, found",
    [
        ('    "c{w": conv 8 k1', ("E0103", 4, 7)),  # unmatched {
        ('    "c}": conv 8 k1', ("E0103", 4, 7)),  # unmatched }
        ('    "c{}": conv 8 k1', ("E0103", 4, 7)),  # empty
        ('    "c{w +}": conv 8 k1', ("E0103", 4, 11)),  # the expression ends too early, located in the file
        ('    "c{w *+ 2}": conv 8 k1', ("E0103", 4, 11)),
        ('    "c{nosuch}": conv 8 k1', ("E0201", 4, 8)),
        ('    "c{w / 3}": conv 8 k1', ("E0301", 4, 8)),
        ('    "c{0.5}": conv 8 k1', ("E0210", 4, 5)),  # c0.5: a dot
        ('    "_c{w}": conv 8 k1', ("E0210", 4, 5)),  # a private attribute of torch.nn.Module
        ('    "r{repetition}": relu', ("E0201", 4, 8)),  # `repetition` outside a stage
        ('    "c{w}": conv 8 k1\n    "c8": relu', ("E0206", 5, 11)),
    ],
)
def test_a_bad_quoted_name_with_values_is_located(body, found):
    assert errors(f"network n(w = 8) {{\n    input 3x16x16\n\n{body}\n}}\n") == [found]


# ---- a stage naming its repetitions -----------------------------------------------------------------


def test_a_stages_last_label_part_names_each_block():
    net = network(
        '    trunk_output.block1."block1-{repetition}": basic(8) x 3\n    "s2"."b{repetition + 1}": basic(16) x 2 s2\n'
        "    layer3: basic(16) x 2"
    )
    assert [b.path for b in net.instances] == [
        "trunk_output.block1.block1-0",
        "trunk_output.block1.block1-1",
        "trunk_output.block1.block1-2",
        "s2.b1",
        "s2.b2",
        "layer3.0",  # without such a part, numbered as before
        "layer3.1",
    ]
    assert [s.name for s in net.stages] == ["trunk_output.block1", "s2", "layer3"]
    keys = set(net.to_torch().state_dict())
    assert {"trunk_output.block1.block1-2.conv2.weight", "s2.b1.downsample.0.weight", "layer3.1.bn2.bias"} <= keys


@pytest.mark.parametrize(
    "body, found",
    [
        ('    "s1"."b{repetition // 2}": basic(8) x 3', ("E0206", 4, 10)),  # b0 twice
        ('    "b{repetition}": basic(8) x 3', ("E0208", 4, 5)),  # no path for the stage itself
        ('    "s1"."_b{repetition}": basic(8) x 2', ("E0210", 4, 10)),
        ('    "s1"."b{repetition / 2}": basic(8) x 2', ("E0301", 4, 13)),  # 1 / 2 in the second
        ('    "s{repetition}".b: basic(8) x 2', ("E0201", 4, 8)),  # only the last part names blocks
        ("    s[repetition]: basic(8) x 2", ("E0201", 4, 7)),
    ],
)
def test_a_stages_naming_mistakes_are_located(body, found):
    assert errors(f'use "blocks.res"\nnetwork n {{\n    input 3x16x16\n{body}\n}}\n') == [found]


def test_a_stage_with_named_blocks_compiles_ejects_and_loads_by_its_names(tmp_path):
    spec = tmp_path / "named.res"
    spec.write_text(
        'use "blocks.res"\nnetwork named {\n    input 3x16x16\n    conv 8 k3 -> bn -> relu\n'
        '    trunk."block1-{repetition}": basic(8) x 2\n    "s2"."b{repetition + 1}": basic(16) x 3 s2\n'
        "    head { avgpool -> fc 4 }\n}\n"
    )
    out = tmp_path / "named.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    source = out.read_text()
    assert '("block1-0", ' in source and '("b3", ' in source
    loaded = importlib.util.spec_from_file_location("ejected_named", out)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    compiled = resdsl.load(str(spec)).to_torch().eval()
    ejected = module.build().eval()
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ejected(x), compiled(x))
