"""A spec that checks must compile, eject and mean what it says (issue 17, section 4).

- every name a spec can give (labels of ops, merges, stages, block calls, dotted labels, groups,
  block and network names and parameters) is either a located E0210 or compiles, runs and ejects;
- an empty block body is the identity, compiled and ejected; `b(8)` and `b(8.0)` eject working code;
- a group named like a keyword (`Residual {`, `residul {`) warns, W0201, "did you mean";
- an alias's binding wins over a `defaults` statement; conflicts are located (E0205, W0202);
- the ejected forward tests nothing twice, and the flat class takes `num_classes`.
"""

from __future__ import annotations

import ast

import pytest
import torch

import resdsl
from resdsl import SpecError
from resdsl.backend.eject import eject


def run_ejected(net: resdsl.Network, **build) -> torch.nn.Module:
    namespace: dict = {}
    exec(compile(eject(net), "<ejected>", "exec", dont_inherit=True), namespace)
    return namespace["build"](**build)


def assert_same_computation(ejected: torch.nn.Module, compiled: torch.nn.Module, shape: tuple[int, ...]) -> None:
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn((2,) + tuple(shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(ejected.eval()(x), compiled.eval()(x), atol=1e-5)


# ---- names --------------------------------------------------------------------------------

FORMS = {
    "op label": "network n {\n input 3x8x8\n conv 8 k3\n NAME: relu\n avgpool -> fc 4\n}",
    "dotted label": "network n {\n input 3x8x8\n conv 8 k3\n a.NAME: relu\n avgpool -> fc 4\n}",
    "dotted label, first part": "network n {\n input 3x8x8\n conv 8 k3\n NAME.a: relu\n avgpool -> fc 4\n}",
    "residual merge": "network n {\n input 3x8x8\n conv 8 k3\n NAME: residual { conv 8 k3 }\n avgpool -> fc 4\n}",
    "dense merge": "network n {\n input 3x8x8\n conv 8 k3\n NAME: dense { conv 4 k3 }\n avgpool -> fc 4\n}",
    "branches merge": "network n {\n input 3x8x8\n conv 8 k3\n NAME: branches(2) { conv 8 k3 d=(branch + 1) }\n"
    " avgpool -> fc 4\n}",
    "merge in a block": "block b(w) {\n NAME: residual { conv w k3 }\n}\n"
    "network n {\n input 3x8x8\n conv 8 k3\n b(8)\n avgpool -> fc 4\n}",
    "group": "network n {\n input 3x8x8\n conv 8 k3\n NAME { relu }\n avgpool -> fc 4\n}",
    "stage": "block b(w, stride = 1) {\n conv w k3 s=stride\n}\n"
    "network n {\n input 3x8x8\n NAME: b(8) x2 s2\n avgpool -> fc 4\n}",
    "block call label": "block b(w) {\n conv w k3\n}\nnetwork n {\n input 3x8x8\n NAME: b(8)\n avgpool -> fc 4\n}",
    "block name": "block NAME(w) {\n conv w k3\n}\nnetwork n {\n input 3x8x8\n NAME(8)\n avgpool -> fc 4\n}",
    "labelled block name": "block NAME(w) {\n conv w k3\n}\nnetwork n {\n input 3x8x8\n a: NAME(8)\n"
    " avgpool -> fc 4\n}",
    "block parameter": "block b(NAME) {\n residual { conv NAME k3 }\n}\n"
    "network n {\n input 3x8x8\n conv 8 k3\n b(8)\n avgpool -> fc 4\n}",
    "network parameter": "network n(NAME = 8) {\n input 3x8x8\n conv NAME k3\n avgpool -> fc 4\n}",
    "network name": "network NAME {\n input 3x8x8\n conv 8 k3\n avgpool -> fc 4\n}",
}
NAMES = [
    "self",
    "forward",
    "training",
    "class",
    "None",
    "_x",
    "torch",
    "nn",
    "none",
    "in_channels",
    "identity",
    "out",
    "downsample",
    "add",
    "build",
]


@pytest.mark.parametrize("form", list(FORMS))
def test_every_name_a_spec_accepts_compiles_runs_and_ejects(form):
    accepted = 0
    for name in NAMES:
        text = FORMS[form].replace("NAME", name)
        try:
            net = resdsl.loads(text, name if form == "network name" else "n")
        except SpecError as exc:
            if any(d.code == "E0103" for d in exc.diagnostics):
                continue  # not a name in this place at all
            assert [d.code for d in exc.diagnostics] == ["E0210"], (form, name, exc.render())
            assert exc.diagnostics[0].span is not None and exc.diagnostics[0].span.line > 1
            continue
        accepted += 1
        x = torch.randn(2, 3, 8, 8)
        compiled = net.to_torch()
        with torch.no_grad():
            assert compiled(x).shape == (2, 4), (form, name)
        assert_same_computation(run_ejected(net), compiled, (3, 8, 8))
    assert accepted, form


# ---- empty blocks, ints and floats ----------------------------------------------------------


def test_an_empty_block_is_the_identity_compiled_and_ejected():
    net = resdsl.loads("""
block nothing() { }
block maybe(w, on = false) { if on { conv w k3 } }
network n {
    input 3x8x8
    conv 8 k3 -> bn -> relu
    nothing()
    maybe(8)
    empties: nothing() x3
    residual { conv 8 k3 -> nothing() -> relu }
    avgpool -> fc 4
}
""")
    assert (
        net.params
        == resdsl.loads(
            "network n {\n input 3x8x8\n conv 8 k3 -> bn -> relu\n residual { conv 8 k3 -> relu }\n avgpool -> fc 4\n}"
        ).params
    )
    assert_same_computation(run_ejected(net), net.to_torch(), (3, 8, 8))


def test_whole_floats_and_ints_given_to_one_block_eject_working_code():
    for calls in (["b(8)", "b(8.0)"], ["b(8.0)", "b(8)"], ["b(9.0)", "b(8)"]):
        net = resdsl.loads(
            "block b(w) {\n conv (w / 2 * 2) k3 -> bn -> relu\n}\n"
            "network n {\n input 3x8x8\n conv 8 k3\n" + "".join(f" {c}\n" for c in calls) + " avgpool -> fc 4\n}"
        )
        assert_same_computation(run_ejected(net), net.to_torch(), (3, 8, 8))


# ---- keywords misspelt as groups --------------------------------------------------------------


@pytest.mark.parametrize(
    "written, meant",
    [
        ("Residual", "residual"),
        ("residul", "residual"),
        ("RESIDUAL", "residual"),
        ("resdiual", "residual"),
        ("Dense", "dense"),
        ("dens", "dense"),
        ("branchs", "branches"),
        ("Branches", "branches"),
        ("atend", "attend"),
        ("shortcat", "shortcut"),
        ("els", "else"),
        ("Else", "else"),
        ("Stem", "stem"),
        ("stme", "stem"),
        ("haed", "head"),
    ],
)
def test_a_group_named_like_a_keyword_warns(written, meant):
    net = resdsl.loads(f"network n {{\n input 3x8x8\n conv 8 k3\n {written} {{ conv 8 k3 }}\n}}")
    [warning] = net.warnings
    assert warning.code == "W0201" and warning.help == f"did you mean `{meant}`?"
    assert (warning.span.line, warning.span.column, warning.span.end_column) == (4, 2, 2 + len(written))


def test_groups_named_on_purpose_do_not_warn():
    for name in ("features", "attn", "inner", "paths", "down", "dense1", "step", "stage", "densenet", "conv1"):
        assert not resdsl.loads(f"network n {{\n input 3x8x8\n {name} {{ conv 8 k3 }}\n}}").warnings, name


# ---- aliases and `defaults` ---------------------------------------------------------------


def test_an_alias_binding_wins_over_defaults_and_matches_timm():
    import timm

    net = resdsl.loads('use "resnet.res"\nnetwork n = resnet(unit = se_bottleneck)\n')
    reference = timm.create_model("seresnet50", pretrained=False)
    assert net.params == sum(p.numel() for p in reference.parameters()) == 28_088_024
    assert not net.warnings
    # a `defaults` value equal to the alias's, or the template's own default, is no conflict
    assert (
        resdsl.loads('use "resnet.res"\nnetwork n = resnet(unit = se_bottleneck, se_ratio = 16)\n').params == 28_088_024
    )


def test_a_defaults_value_against_an_alias_binding_is_a_located_e0205():
    with pytest.raises(SpecError) as info:
        resdsl.loads('use "resnet.res"\nnetwork n = resnet(unit = se_bottleneck, se_ratio = 8)\n')
    [error] = info.value.diagnostics
    assert error.code == "E0205" and error.span.path.endswith("resnet.res")
    assert "`se_ratio` has two values" in error.message and "se_bottleneck" in error.message
    assert any("blocks.res:68" in note for note in error.notes)


def test_a_call_argument_replacing_an_alias_binding_wins_with_a_warning():
    text = 'use "blocks.res"\nnetwork n {\n input 64x8x8\n se_bottleneck(16, se_ratio = 0)\n}\n'
    net = resdsl.loads(text)
    [warning] = net.warnings
    assert warning.code == "W0202" and (warning.span.line, warning.span.column) == (4, 20)
    assert net.params == resdsl.loads(text.replace("se_bottleneck(16, se_ratio = 0)", "bottleneck(16)")).params


def test_a_unit_lacking_the_shared_options_is_one_error_naming_them():
    with pytest.raises(SpecError) as info:
        resdsl.loads(
            'use "resnet.res"\nblock mine(width, stride = 1) { conv width k3 s=stride }\n'
            "network n = resnet(unit = mine, depth = 18)\n"
        )
    [error] = info.value.diagnostics
    assert error.code == "E0203" and "`groups`" in error.message and "`down_kernel`" in error.message
    assert "a `defaults` statement" in error.message


# ---- the ejected source -----------------------------------------------------------------------


def test_the_ejected_forward_tests_nothing_an_enclosing_test_decided():
    source = eject(resdsl.load("seresnetaa50d", input_shape=(3, 64, 64)))
    tree = ast.parse(source)

    def walk(node: ast.AST, tests: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If):
                test = ast.unparse(child.test)
                opposite = test[: -len(" is not None")] + " is None" if test.endswith(" is not None") else None
                assert test not in tests and opposite not in tests, test
                for part in child.body + child.orelse:
                    walk(ast.Module([part], []), tests + (test,))
            else:
                walk(child, tests)

    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name == "forward":
            walk(function, ())
    bottleneck = source.split("class Bottleneck", 1)[1].split("\nclass ", 1)[0]
    forward = bottleneck.split("def forward", 1)[1]
    assert forward.count("self.aa is not None") == 1 and "self.se is not None" not in forward  # every call has SE


def test_branches_in_the_network_class_take_num_classes():
    spec = """
network n(classes = 10) {
    input 3x16x16
    conv 16 k3 -> bn -> relu
    branches(2, merge = sum) { convs[branch]: conv 16 k3 d=(branch + 1) -> bns[branch]: bn }
    avgpool -> fc classes
}
"""
    source = eject(resdsl.loads(spec))
    assert "Flat(nn.Module)" not in source and "def build(num_classes=10)" in source
    assert "self.convs = nn.ModuleList([" in source  # the branches as one loop
    for classes in (10, 3):
        namespace: dict = {}
        exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
        assert_same_computation(
            namespace["build"](num_classes=classes), resdsl.loads(spec, classes=classes).to_torch(), (3, 16, 16)
        )
