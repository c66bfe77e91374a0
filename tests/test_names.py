"""Any module name a reference uses can be written (issue 19, section 5), and what would break the compiled
module is still refused, where it is written.

- the two reference models the issue names load their reference's state dict with strict=True and give
  its outputs: torchvision's regnet_x_400mf (`trunk_output.block1.block1-0.f.a.0`, `stem.0`) and timm's
  gernet_s (`stages.0.0.shortcut.conv`, `final_conv.bn`), and their static parameters, MACs and output
  shape are the runtime ones;
- each naming construct, accepted: quoted names (a hyphen, a keyword, a shorthand-looking word, digits),
  the keywords timm names modules with (`shortcut.conv`), several indices in a row, dotted group names,
  groups reopened (numbering goes on), a container of labels made a group;
- and each refused form, with its code and place: an empty or dotted or unwritable quoted name and a
  reserved one (E0210), a path through an op, a block call or a stage and a name used twice (E0206),
  a lone keyword before `{` and a malformed index (E0103), an index out of range (E0303);
- the grammar stays LALR with no conflict but the ones it had (juxtaposed op arguments and an index).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from test_family import randomise_norms
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.cli import main
from resdsl.errors import render

ROOT = Path(__file__).resolve().parent.parent


def errors(text: str) -> list[resdsl.Diagnostic]:
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text, path="n.res")
    return info.value.diagnostics


def where(text: str) -> list[tuple[str, int, int]]:
    """(code, line, column) of each error of a network whose body is `text` (from line 3)."""
    network = "block unit(w) { conv w k3 }\nnetwork n {\n input 3x8x8\n" + text + "\n}\n"
    return [(d.code, d.line - 3, d.column) for d in errors(network)]


def nodes(body: str, blocks: str = "") -> list[str]:
    return list(resdsl.loads(f"{blocks}\nnetwork n {{\n input 3x8x8\n{body}\n}}\n", path="n.res").ops.nodes)


# ---- the reference models, at strict parity -------------------------------------------------------

REFERENCES = {
    "regnet_x_400mf": lambda: torchvision.models.regnet_x_400mf(weights=None),
    "gernet_s": lambda: timm.create_model("gernet_s", pretrained=False),
}


@pytest.mark.parametrize("name", REFERENCES)
def test_the_reference_weights_load_strictly_and_the_outputs_are_the_references(name):
    net = resdsl.load(name, input_shape=(3, 64, 64))
    torch.manual_seed(0)
    reference = REFERENCES[name]().eval()
    randomise_norms(reference)  # a misplaced BN shows in the outputs
    model = net.to_torch().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = reference(x)
    with torch.no_grad():
        got = model(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert net.params == sum(p.numel() for p in reference.parameters()) == sum(p.numel() for p in model.parameters())
    assert 2 * net.macs * 2 == counter.get_total_flops()  # FLOPs = 2 × MACs, per example of the batch of 2
    assert (2,) + net.output_shape == tuple(got.shape) == tuple(expected.shape)


@pytest.mark.parametrize("name", REFERENCES)
def test_the_bundled_spec_checks_by_name_with_the_references_figures(name, capsys):
    """At 3×224×224, the figures docs/family.md gives, which the test above proves at 64×64."""
    assert main(["check", name]) == 0
    net = resdsl.load(name)
    assert f"ok {name}: 3x224x224 -> 1000, {net.params:,} params, {net.macs:,} MACs" in capsys.readouterr().out
    page = (ROOT / "docs" / "family.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| `{name}` \| [^|]+ \| ([\d,]+) \| ([\d,]+) \|$", page, re.M)
    assert row is not None and (row[1], row[2]) == (f"{net.params:,}", f"{net.macs:,}")


def test_the_gernet_family_defaults_are_timms_gernet_m():
    net = resdsl.load("gernet")
    with torch.device("meta"):
        reference = timm.create_model("gernet_m", pretrained=False)
        ours = net.to_torch()
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in reference.state_dict().items()
        }


def test_the_ejected_regnet_is_torchvisions(tmp_path):
    out = tmp_path / "regnet.py"
    assert main(["compile", "regnet_x_400mf", "--emit", "python", "-o", str(out)]) == 0
    spec = importlib.util.spec_from_file_location("ejected_regnet", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    reference = torchvision.models.regnet_x_400mf().eval()
    randomise_norms(reference)
    ejected = module.build().eval()
    ejected.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ejected(x) - reference(x)).abs().max() <= 1e-5


# ---- each naming construct, accepted ---------------------------------------------------------------


@pytest.mark.parametrize(
    "label, name",
    [
        ('"block1-0"', "block1-0"),  # torchvision's RegNet
        ('"s1"', "s1"),  # timm's RegNet: a stride shorthand to the lexer
        ('"x2"', "x2"),  # a repeat to the lexer
        ('"k3".conv', "k3.conv"),
        ('"defaults"', "defaults"),  # a keyword of the language (not of Python)
        ('"residual"', "residual"),
        ('"0"', "0"),  # digits, as an index makes
        ('"a b"', "a b"),  # PyTorch takes a space
        ("shortcut.conv", "shortcut.conv"),  # timm's ByobNet: `shortcut` bare, as `stem`, `head` and `norm`
        ("norm", "norm"),
        ("stem.conv", "stem.conv"),
        ('trunk_output.block1."block1-0"', "trunk_output.block1.block1-0"),
        ("inner_blocks[3][0]", "inner_blocks.3.0"),  # torchvision's FPN
        ('"inner"[1 + 1][0].conv', "inner.2.0.conv"),
    ],
)
def test_a_label_can_be_any_module_name(label, name):
    assert nodes(f" conv 8 k3 -> {label}: relu")[-1] == name


def test_the_names_compile_and_a_state_dict_loads_by_them():
    text = """
block unit(w) {
    residual { "c-1": conv w k3 -> bn } shortcut { shortcut.conv: conv w k1 -> shortcut.bn: bn }
    relu
}
network n {
    input 8x8x8
    "stem" { conv 8 k3 -> bn -> relu }
    trunk."s1" { "b-0": unit(8) }
    inner_blocks[3][0]: conv 8 k1
    trunk."s1" { "b-1": unit(8) }
    head { avgpool -> head.fc: fc 4 }
}"""
    model = resdsl.loads(text).to_torch().eval()
    keys = set(model.state_dict())
    assert {
        "stem.0.weight",
        "trunk.s1.b-0.c-1.weight",
        "trunk.s1.b-1.shortcut.bn.bias",
        "inner_blocks.3.0.weight",
    } <= keys
    again = resdsl.loads(text).to_torch().eval()
    again.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 8, 8, 8)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
        # a block named by a quoted name is callable on its own, as every container that is a chain
        h = model.stem(x)
        block = getattr(model.trunk.s1, "b-0")
        by_hand = block.bn1(block.get_submodule("c-1")(h)) + block.shortcut.bn(block.shortcut.conv(h))
        assert torch.allclose(block(h), torch.relu(by_hand), atol=1e-6)


def test_a_dotted_group_name_makes_its_containers_and_reopening_goes_on_numbering():
    assert nodes(
        " trunk.b1 { conv 8 k3 -> relu }\n trunk.b2 { relu }\n trunk.b1 { relu -> named: relu }\n g.extra: relu\n"
        " g { relu }\n g { relu }"
    ) == [
        "input",
        "trunk.b1.0",
        "trunk.b1.1",
        "trunk.b2.0",
        "trunk.b1.2",  # the group reopened: its children are numbered on from where it stopped
        "trunk.b1.named",
        "g.extra",  # a container of labels ...
        "g.0",  # ... becomes a group, whose numbering skips the labels' names
        "g.1",
    ]


def test_indexed_groups_and_labels_with_several_indices_in_branches():
    names = nodes(
        " branches(2, merge = sum) { paths[branch][0] { conv: conv 8 k3 } -> convs[branch][1]: conv 8 k1 }",
    )
    assert {"paths.0.0.conv", "paths.1.0.conv", "convs.0.1", "convs.1.1"} <= set(names)


def test_a_lone_stem_or_head_is_a_section_and_a_quoted_one_a_group():
    assert nodes(" stem { conv 8 k3 }\n head { relu }") == ["input", "conv1", "relu"]
    assert nodes(' "stem" { conv 8 k3 }\n "head" { relu }') == ["input", "stem.0", "head.0"]


def test_a_quoted_group_name_is_not_taken_for_a_misspelt_keyword():
    net = resdsl.loads('network n {\n input 3x8x8\n "shortcut" { conv 8 k3 }\n Residual { relu }\n}')
    assert [w.code for w in net.warnings] == ["W0201"]  # `Residual`, not the quoted name


# ---- each refused form, with its code and place ---------------------------------------------------


@pytest.mark.parametrize(
    "text, found",
    [
        (' "": conv 8 k3', ("E0210", 1, 2)),  # PyTorch refuses an empty module name
        (' "a.b": conv 8 k3', ("E0210", 1, 2)),  # and a dot in one: write a."b" or a.b
        (" s1: conv 8 k3", ("E0103", 1, 2)),  # the stride shorthand to the lexer, as `x1` is a repeat: quote them
        (" x1.a: conv 8 k3", ("E0103", 1, 2)),
        (' "a\\\\b": conv 8 k3', ("E0210", 1, 2)),  # fx writes the name in a Python string
        (' "a\tb": conv 8 k3', ("E0210", 1, 2)),
        (' g."": conv 8 k3', ("E0210", 1, 4)),
        (' "a.b" { relu }', ("E0210", 1, 2)),
        (' "forward": conv 8 k3', ("E0210", 1, 2)),  # an attribute of every torch.nn.Module
        (' "class": conv 8 k3', ("E0210", 1, 2)),  # fx writes `self.class`
        (' "_modules".a: conv 8 k3', ("E0210", 1, 2)),
        (' a."training" { relu }', ("E0210", 1, 2)),
        (" a: conv 8 k3\n a { relu }", ("E0206", 2, 2)),  # a group cannot go into an op ...
        (" a: conv 8 k3\n a.b { relu }", ("E0206", 2, 2)),
        (" b: unit(8)\n b.c { relu }", ("E0206", 2, 2)),  # ... nor a block call ...
        (" l: unit(8) x2\n l.c: relu", ("E0206", 2, 7)),  # ... nor a stage
        (" g { relu -> r: relu }\n g { r: relu }", ("E0206", 2, 9)),  # a reopened group keeps its names
        (" g { relu }\n g: relu", ("E0206", 2, 5)),
        (" shortcut { relu }", ("E0103", 1, 2)),  # most likely a residual's shortcut on the next line
        (" norm { relu }", ("E0103", 1, 2)),
        (" a b: relu", ("E0103", 1, 4)),
        (" a[1, 2]: relu", ("E0103", 1, 3)),
        (" a (1,): relu", ("E0103", 1, 4)),
        (" a[0][-1]: relu", ("E0303", 1, 7)),
        (" a[0][0.5] { relu }", ("E0302", 1, 7)),
    ],
)
def test_a_name_that_would_break_the_compiled_module_is_refused_where_it_is_written(text, found):
    assert where(text) == [found]


def test_the_diagnostic_shows_the_quoted_name_under_a_caret():
    [d] = errors('network n {\n    input 3x8x8\n    trunk."a.b": conv 8 k3\n}\n')
    shown = render(d, {"n.res": 'network n {\n    input 3x8x8\n    trunk."a.b": conv 8 k3\n}\n'})
    assert shown.splitlines()[:5] == [
        'error[E0210]: "a.b" cannot name a module: a dot separates the parts of a path, and one part cannot hold one',
        " --> n.res:3:11",
        "  |",
        '3 |     trunk."a.b": conv 8 k3',
        "  |           ^^^^^",
    ]
    assert d.help is not None and 'trunk_output."block1-0"' in d.help


def test_a_bad_quoted_name_is_reported_with_the_specs_other_errors():
    codes = [d.code for d in errors('network n {\n input 3x8x8\n "": conv 8 k3\n "forward": relu\n conv 8 k3 g3\n}')]
    assert codes == ["E0210", "E0210", "E0402"]


# ---- the grammar ------------------------------------------------------------------------------------


def test_the_grammar_has_no_conflict_but_the_juxtaposed_arguments_it_had():
    """Lark resolves a shift/reduce conflict as a shift, silently: list them, and allow only the kinds the
    grammar had before names were extended (an op's arguments side by side: `conv a [1]` is `a[1]`,
    `conv a -1` is `a - 1`, `conv a not in b`), each resolved as it was."""
    from lark import Lark
    from lark.parsers import lalr_analysis

    from resdsl.parse import NewlineFilter, data_dir

    found = set()
    original = lalr_analysis.LALR_Analyzer.compute_lalr1_states

    def record(self):
        for state in self.lr0_itemsets:
            for terminal, rules in state.lookaheads.items():
                assert len(rules) == 1, f"reduce/reduce on {terminal}"
                if terminal in state.transitions:
                    found.add((terminal.name, str(next(iter(rules)))))
        return original(self)

    lalr_analysis.LALR_Analyzer.compute_lalr1_states = record
    try:
        grammar = (data_dir("grammars") / "resdsl.lark").read_text(encoding="utf-8")
        Lark(grammar, parser="lalr", lexer="basic", start=["start", "expr"], postlex=NewlineFilter())
    finally:
        lalr_analysis.LALR_Analyzer.compute_lalr1_states = original
    assert found <= {
        ("LSQB", "<power : postfix>"),
        ("MINUS", "<comparison : sum>"),
        ("MINUS", "<comparison : sum COMPARE sum>"),
        ("MINUS", "<comparison : sum IN sum>"),
        ("MINUS", "<comparison : sum NOT IN sum>"),
        ("NOT", "<comparison : sum>"),
    }, found


def test_an_op_argument_that_looks_like_an_index_is_still_one():
    """After an op's name, `[8][0]` is an argument, as before: the label's indices share the expression
    grammar, and only a `:` or `{` after them makes them a label's."""
    net = resdsl.loads("network n {\n input 8\n fc [8][0] -> fc [4, 6][1]\n a[0][1]: fc [2][0]\n}")
    assert [(name, data.shape) for name, data in net.ops.nodes.items()] == [
        ("input", (8,)),
        ("fc", (8,)),
        ("fc2", (6,)),
        ("a.0.1", (2,)),
    ]
