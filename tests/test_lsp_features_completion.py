"""Completion and signature help of `resdsl lsp` (resdsl/lsp/completion.py, signatures.py), on half-typed
buffers that do not parse, with and without the last analysis of the buffer that did; and every feature
at every word of a few specs answers without raising."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from resdsl.functions import FUNCTIONS
from resdsl.library import bundled_names
from resdsl.lsp.analysis import ParseCache, analyse
from resdsl.lsp.completion import complete
from resdsl.lsp.hover import hover
from resdsl.lsp.inlay import inlay_hints
from resdsl.lsp.navigation import definition, document_symbols, find_references
from resdsl.lsp.signatures import signature_help
from resdsl.ops import OPS
from resdsl.values import NORMS, POLICIES

SPECS = Path(__file__).resolve().parent.parent / "specs"
RESNET = SPECS / "resnet.res"


@pytest.fixture(scope="module")
def good():
    return analyse(RESNET.read_text(), str(RESNET))


def typed(line: str, after: str = "    layer4: unit4(widths[3]) x layers[3] s2"):
    """resnet.res with `line` inserted after the line `after`, and the position at its end."""
    lines = RESNET.read_text().splitlines()
    row = lines.index(after) + 1
    lines.insert(row, line)
    text = "\n".join(lines) + "\n"
    return analyse(text, str(RESNET)), lsp.Position(line=row, character=len(line))


def labels(result) -> list[str]:
    return [item.label for item in result.items]


def test_a_half_typed_call_completes_the_blocks_parameters(good):
    analysis, position = typed("    layer5: bottleneck(64, str")
    assert analysis.errors and not analysis.module.definitions  # it does not parse
    found = complete(analysis, position, good)
    keywords = [label for label in labels(found) if label.endswith(" =")]
    bottleneck = good.library.definitions["bottleneck"]
    assert keywords == [f"{p.name} =" for p in bottleneck.params]
    item = next(i for i in found.items if i.label == "stride =")
    assert (item.insert_text, item.detail) == ("stride = ", "parameter of bottleneck = 1")
    # the parameters in scope come from the last good analysis: `depth` is resnet's
    assert "depth" in labels(found)
    # with no good analysis there is no library: no block parameters, but no error either
    assert not [label for label in labels(complete(analysis, position, None)) if label.endswith(" =")]


def test_an_op_call_completes_its_options(good):
    analysis, position = typed("    conv 64 ")
    found = labels(complete(analysis, position, good))
    assert found[:6] == ["kernel=", "stride=", "padding=", "dilation=", "groups=", "bias"]  # bias is a flag
    assert "out=" not in found  # the positional, required `out` is written already
    analysis, position = typed("    layer5: bottleneck(512) x 2 ")
    assert labels(complete(analysis, position, good))[:2] == ["stride=", "shortcut"]  # the stage options


def test_the_start_of_an_element_offers_ops_blocks_keywords_and_parameters(good):
    analysis, position = typed("    from layer3 -> ")
    found = complete(analysis, position, good)
    names = labels(found)
    assert set(OPS) <= set(names)
    assert {"bottleneck", "basic", "residual", "branches", "shortcut", "norm", "output", "defaults", "from"} <= set(
        names
    )
    assert "unit1" in names  # a parameter may name a block
    conv = next(i for i in found.items if i.label == "conv")
    assert conv.detail == OPS["conv"].summary and "`stride` (`s`)" in conv.documentation.value
    block = next(i for i in found.items if i.label == "bottleneck")
    assert block.insert_text == "bottleneck(${1:planes})$0" and block.insert_text_format == lsp.InsertTextFormat.Snippet
    assert "block bottleneck(" in block.documentation.value


def test_words_after_shortcut_and_norm_and_in_a_use_path(good):
    analysis, position = typed("    shortcut ")
    assert labels(complete(analysis, position, good))[: len(POLICIES)] == list(POLICIES)
    analysis, position = typed("    norm ")
    assert labels(complete(analysis, position, good))[: len(NORMS)] == list(NORMS)
    analysis, position = typed('use "', after='use "blocks.res"')
    paths = labels(complete(analysis, position, good))
    assert {f"{n}.res" for n in bundled_names()} <= set(paths)
    # a file next to the buffer is offered too
    assert "resnet50.res" in paths


def test_expressions_offer_parameters_builtins_and_top_level_keywords(good, tmp_path):
    analysis, position = typed("    conv (wid")
    found = labels(complete(analysis, position, good))
    assert "width" in found and set(FUNCTIONS) <= set(found) and "repetition" in found
    assert labels(complete(*_top("ne", tmp_path))) == ["use", "block", "network"]
    assert complete(*typed("    conv 64  # a comm"), good).items == []


def test_from_output_and_project_from_complete_the_labels(good):
    for line in (
        "    from lay",
        "    output layer1, lay",
        "    output 0: layer1, 1: la",
        "    residual(project_from = ",
    ):
        found = labels(complete(*typed(line), good))
        assert {"layer1", "layer2", "layer3", "layer4", "maxpool"} <= set(found), line
        assert "depth" not in found and "conv" not in found


def _top(text: str, tmp_path):
    analysis = analyse(text, str(tmp_path / "new.res"))
    return analysis, lsp.Position(line=0, character=len(text))


def test_signature_help_for_block_and_op_calls(good):
    analysis, position = typed("    layer5: bottleneck(64, max(1, 2), str")
    found = signature_help(analysis, position, good)
    assert found is not None
    [sig] = found.signatures
    names = [p.name for p in good.library.definitions["bottleneck"].params]
    assert found.active_parameter == 2 and len(sig.parameters) == len(names)
    start, end = sig.parameters[2].label
    assert sig.label[start:end] == "groups = 1" and sig.label.startswith("bottleneck(planes, stride = 1, ")

    # a parameter that holds a block: the block the network gave it (resnet's unit4 is bottleneck)
    analysis, position = typed("    layer5: unit4(64, str")
    assert signature_help(analysis, position, good).signatures[0].label == sig.label
    assert "stride =" in labels(complete(analysis, position, good))

    # a bracket in a comment above is no call
    analysis, position = typed("    # a note (unclosed\n    conv 64 k3 s")
    assert signature_help(analysis, lsp.Position(line=position.line + 1, character=16), good) is not None
    analysis, position = typed("    # bottleneck(64, \n    relu -> bn")
    assert signature_help(analysis, lsp.Position(line=position.line + 1, character=14), good) is None

    analysis, position = typed("    layer5: bottleneck(64, zero_init_last = tr")
    assert signature_help(analysis, position, good).active_parameter == names.index("zero_init_last")

    analysis, position = typed("    conv 64 k3 s")
    found = signature_help(analysis, position, good)
    [sig] = found.signatures
    start, end = sig.parameters[found.active_parameter].label
    assert sig.label[start:end] == "stride" and sig.label.startswith("conv out kernel stride")
    analysis, position = typed("    conv ")
    found = signature_help(analysis, position, good)
    assert found.active_parameter == 0  # `out`, the positional one
    assert signature_help(*typed("    relu -> bn"), good) is None


@pytest.mark.parametrize("name", ["resnet.res", "fpn.res", "unet.res", "blocks.res", "resnet50.res"])
def test_every_feature_answers_at_every_word_without_raising(name):
    """Each feature at the start, middle and end of every word of a spec: an answer or None, never an
    exception (a handler that raised would fail the editor's request)."""
    path = SPECS / name
    text = path.read_text()
    analysis = analyse(text, str(path), cache=ParseCache())
    inlay_hints(analysis)
    document_symbols(analysis)
    for row, line in enumerate(text.splitlines()):
        for match in re.finditer(r'[A-Za-z_]\w*|"[^"]*"|[(,]', line):
            for column in {match.start(), (match.start() + match.end()) // 2, match.end()}:
                position = lsp.Position(line=row, character=column)
                hover(analysis, position)
                definition(analysis, position)
                find_references(analysis, position)
                signature_help(analysis, position)
                complete(analysis, position)


@pytest.mark.parametrize("fraction", [0.3, 0.62, 0.85])
def test_every_feature_answers_on_a_half_typed_buffer(good, fraction):
    """resnet.res cut mid-way (mid-word, mid-call): no syntax tree; each feature answers or gives None."""
    text = RESNET.read_text()
    text = text[: int(len(text) * fraction)]
    analysis = analyse(text, str(RESNET))
    assert analysis.errors
    assert inlay_hints(analysis) == [] and document_symbols(analysis) == []
    lines = text.splitlines()
    for row in range(0, len(lines), 3):
        for column in range(0, len(lines[row]) + 1, 7):
            position = lsp.Position(line=row, character=column)
            assert hover(analysis, position) is None and definition(analysis, position) == []
            find_references(analysis, position)
            signature_help(analysis, position, good)
            complete(analysis, position, good)
    # at the cut itself, completion still knows the library and the parameters; in a comment, nothing
    end = lsp.Position(line=len(lines) - 1, character=len(lines[-1]))
    assert bool(complete(analysis, end, good).items) == ("#" not in lines[-1])
