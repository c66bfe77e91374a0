"""The editor features of `resdsl lsp` as pure functions: hover, definition, references, symbols,
inlay hints (resdsl/lsp/hover.py, navigation.py, inlay.py) on `analyse()` of real specs.

Every figure a hover or hint shows is compared with what `resdsl.load` (what `check` and
`summary` print) gives for the same spec, not with text this code wrote before."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsprotocol import types as lsp

import resdsl
from resdsl.graph import show_shape
from resdsl.lsp.analysis import analyse
from resdsl.lsp.hover import hover
from resdsl.lsp.inlay import inlay_hints
from resdsl.lsp.navigation import definition, document_symbols, find_references, workspace_symbols

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _analysis(name: str):
    path = SPECS / name
    return analyse(path.read_text(), str(path))


@pytest.fixture(scope="module")
def resnet():
    return _analysis("resnet.res")


@pytest.fixture(scope="module")
def resnet_net():
    return resdsl.load(SPECS / "resnet.res")


def where(text: str, line_text: str, word: str, nth: int = 0) -> lsp.Position:
    """The LSP position of the `nth` `word` on the first line that contains `line_text`."""
    lines = text.splitlines()
    row = next(i for i, line in enumerate(lines) if line_text in line)
    column = [m.start() for m in re.finditer(re.escape(word), lines[row])][nth]
    return lsp.Position(line=row, character=column + 1)


def hover_text(analysis, line_text: str, word: str, nth: int = 0) -> str:
    found = hover(analysis, where(analysis.text, line_text, word, nth))
    assert found is not None, f"no hover on {word!r}"
    assert isinstance(found.contents, lsp.MarkupContent) and found.contents.kind == lsp.MarkupKind.Markdown
    return found.contents.value


def figures(in_shape, out_shape, params: int, macs: int) -> str:
    return f"{show_shape(in_shape)} -> {show_shape(out_shape)}, {params:,} params, {macs:,} MACs"


# ---- hover ---------------------------------------------------------------------------------------


def test_hover_op_call_shows_shapes_costs_label_and_options(resnet, resnet_net):
    text = hover_text(resnet, "conv width k7 s2", "conv")
    conv1 = resnet_net.ops.nodes["conv1"]
    assert figures(conv1.in_shape, conv1.shape, conv1.params, conv1.macs) in text
    assert text.startswith("**conv**: convolution")
    assert "conv 7×7, 64, /2" in text  # the label summary and draw give it
    assert "- `stride` = 2" in text and "- `padding` = 3" in text and "- `out` = 64" in text
    text = hover_text(resnet, "conv width k7 s2", "s2")  # a shorthand: the option and its value
    assert text.startswith("option of `conv`: `stride` (`s`): int") and text.endswith("`stride` = 2")


TWO_STAGES = """\
block unit(w, stride = 1) {
    residual {
        conv w k3 s=stride -> bn -> relu
        conv w k3 -> bn
    }
    relu
}

network tiny(classes = 10) {
    input 3 x 32 x 32
    shortcut B
    conv 16 k3 -> bn -> relu
    stage1: unit(16) x 2
    stage2: unit(32) x 3 s2
    avgpool -> fc classes
}
"""


def test_hover_op_in_a_block_groups_its_instances_by_stage(tmp_path):
    path = tmp_path / "tiny.res"
    analysis = analyse(TWO_STAGES, str(path))
    net = resdsl.loads(TWO_STAGES, path=str(path))
    text = hover_text(analysis, "conv w k3 s=stride", "conv")

    def fig(name: str) -> str:
        n = net.ops.nodes[name]
        return figures(n.in_shape, n.shape, n.params, n.macs)

    assert fig("stage1.0.conv1") == fig("stage1.1.conv1")
    assert f"in stage1 (2 instances): {fig('stage1.0.conv1')}" in text
    assert f"in stage2, stage2.0.conv1: {fig('stage2.0.conv1')}" in text  # the strided first block differs
    assert f"in stage2, stage2.1.conv1, stage2.2.conv1 (2): {fig('stage2.1.conv1')}" in text
    assert "- `stride` = 1 | 2" in text


def test_hover_stage_line_shows_the_block_the_stage_and_its_instances(resnet, resnet_net):
    for word in ("layer2", "unit2"):  # the label and the call
        text = hover_text(resnet, "layer2: unit2(widths[1])", word)
        part = next(p for p in resnet_net.record.parts if p.name == "layer2")
        assert "stage `layer2`: bottleneck ×4, stride 2, shortcut B" in text
        assert f"{show_shape(part.output_shape)} out, {part.params:,} params, {part.macs:,} MACs in all" in text
        first = resnet_net.record.blocks["layer2.0"]
        rest = resnet_net.record.blocks["layer2.1"]
        assert f"layer2.0: {figures(first.in_shape, first.out_shape, first.params, first.macs)}" in text
        assert f"layer2.1, layer2.2, … (3): {figures(rest.in_shape, rest.out_shape, rest.params, rest.macs)}" in text
        line = _line_of("blocks.res", r"^block bottleneck\(")
        assert f"block `bottleneck` (blocks.res, line {line})" in text
        # every parameter bound, in the signature's order
        assert "bound arguments:\n```res\nplanes = 128\nstride = 2 (layer2.0), 1 (layer2.1, layer2.2, … (3))\n" in text


def test_hover_definition_shows_signature_and_the_checked_figures(resnet, resnet_net):
    text = hover_text(resnet, "network resnet(", "resnet")
    net = resnet_net
    assert f"{show_shape(net.input_shape)} -> {show_shape(net.output_shape)}" in text
    assert f"{net.params:,} params, {net.macs:,} MACs" in text
    assert "network resnet(\n    depth = 50," in text

    alias = _analysis("resnet50.res")
    text = hover_text(alias, "network resnet50", "resnet50")
    net50 = resdsl.load("resnet50")
    assert "network resnet50 = resnet(depth = 50)" in text
    assert f"-> 1000, {net50.params:,} params, {net50.macs:,} MACs" in text
    assert net50.params == 25_557_032  # torchvision's resnet50 (tests/test_family.py checks it at runtime)


def test_hover_parameters_and_names_show_where_and_the_value(resnet):
    assert "value: `50`" in hover_text(resnet, "network resnet(depth = 50", "depth")
    text = hover_text(resnet, "layer1: unit1(widths[0])", "widths")
    assert "widths = [width, width * 2, width * 4, width * 8]" in text
    assert "parameter of `resnet`, line 35" in text and "value: `[64, 128, 256, 512]`" in text
    # a keyword of a `defaults` line, for blocks chosen by parameters: the block the network calls
    text = hover_text(resnet, "defaults unit1, unit2", "groups")
    assert "groups = 1" in text and "parameter of `bottleneck`" in text
    assert "shortcut policy" in hover_text(resnet, "policy = B,", "B")


def test_hover_label_read_by_from_and_output(tmp_path):
    fpn = _analysis("fpn.res")
    net = resdsl.load("fpn")
    text = hover_text(fpn, "from top2 -> top1", "top2")
    assert "label `top2`, defined on line 22" in text
    assert f"output: {show_shape(net.ops.nodes['top2'].shape)}" in text
    text = hover_text(fpn, "output 0: fpn.layer_blocks[0]", "fpn.layer_blocks", 3)
    assert "defined on line 21" in text


def test_hover_keyword_argument_shows_the_value_at_that_call(tmp_path):
    text = TWO_STAGES.replace("stage2: unit(32) x 3 s2", "stage2: unit(32, stride = 2)\n    unit(32, stride = 1)")
    analysis = analyse(text, str(tmp_path / "tiny.res"))
    assert "value: `2`" in hover_text(analysis, "stage2: unit(32, stride = 2)", "stride")
    assert "value: `1`" in hover_text(analysis, "unit(32, stride = 1)", "stride")
    assert "values: `1`, `2`" in hover_text(analysis, "block unit(w, stride = 1)", "stride")


def test_hover_input_and_output_statements():
    fpn = _analysis("fpn.res")
    net = resdsl.load("fpn")
    assert hover_text(fpn, "    input 3 x image_size", "input") == f"`fpn` takes {show_shape(net.input_shape)}"
    shapes = ", ".join(f"{o.key}: {show_shape(o.shape)}" for o in net.outputs)
    assert hover_text(fpn, "    output 0:", "output") == f"`fpn` returns a dict: {{{shapes}}}"
    assert shapes.startswith("0: 256x56x56, 1: 256x28x28")


def test_hover_use_path_and_nothing_in_a_comment(resnet):
    text = hover_text(resnet, 'use "blocks.res"', "blocks")
    assert "`bottleneck`" in text and "blocks.res" in text
    assert hover(resnet, where(resnet.text, "# The ImageNet ResNet family", "ImageNet")) is None


# ---- go to definition, references ----------------------------------------------------------------


def _places(locations) -> list[tuple[str, int, int]]:
    return [
        (Path(resdsl_path(loc.uri)).name, loc.range.start.line + 1, loc.range.start.character + 1) for loc in locations
    ]


def resdsl_path(uri: str) -> str:
    from resdsl.lsp.positions import path_of

    return path_of(uri)


def _line_of(name: str, pattern: str) -> int:
    lines = (SPECS / name).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if re.search(pattern, line))


def test_definition_across_files_parameters_labels_and_use(resnet):
    bottleneck_line = _line_of("blocks.res", r"^block bottleneck\(")
    # `unit1(...)`: the parameter, and the block the network calls through it
    assert _places(definition(resnet, where(resnet.text, "layer1: unit1", "unit1"))) == [
        ("resnet.res", 34, 33),
        ("blocks.res", bottleneck_line, 7),
    ]
    assert _places(definition(resnet, where(resnet.text, "layer1: unit1(widths", "widths"))) == [("resnet.res", 35, 16)]
    assert _places(definition(resnet, where(resnet.text, 'use "blocks.res"', "blocks"))) == [("blocks.res", 1, 1)]
    fpn = _analysis("fpn.res")
    assert _places(definition(fpn, where(fpn.text, "body.layer1: bottleneck", "bottleneck"))) == [
        ("blocks.res", bottleneck_line, 7)
    ]
    assert _places(definition(fpn, where(fpn.text, "from fpn.layer_blocks[3]", "fpn"))) == [("fpn.res", 21, 5)]
    assert _places(definition(fpn, where(fpn.text, "from top2", "top2"))) == [("fpn.res", 22, 33)]
    alias = _analysis("resnet50.res")
    assert _places(definition(alias, where(alias.text, "= resnet(", "resnet("))) == [
        ("resnet.res", _line_of("resnet.res", r"^network resnet\("), 9)
    ]


def test_references_of_a_parameter_are_its_uses_in_its_definition(resnet):
    expected = []
    for number, line in enumerate(resnet.text.splitlines(), 1):
        code = line.split("#")[0]
        expected += [(number, m.start() + 1) for m in re.finditer(r"\bwidth\b", code)]
    found = find_references(resnet, where(resnet.text, "width = 64,", "width"))
    assert [(loc.range.start.line + 1, loc.range.start.character + 1) for loc in found] == expected
    assert len(expected) == 7
    without = find_references(resnet, where(resnet.text, "width = 64,", "width"), include_declaration=False)
    assert len(without) == len(expected) - 1


def code_of(line: str) -> str:
    """A line without its comment, its strings blanked (columns kept)."""
    line = re.sub(r'"[^"]*"', lambda m: " " * len(m.group(0)), line)
    return line.split("#")[0]


def test_references_of_a_block_span_the_buffer_and_the_used_files():
    fpn = _analysis("fpn.res")
    found = _places(find_references(fpn, where(fpn.text, "body.layer1: bottleneck", "bottleneck")))
    blocks = (SPECS / "blocks.res").read_text().splitlines()
    in_blocks = [
        ("blocks.res", i, m.start() + 1)
        for i, line in enumerate(blocks, 1)
        for m in re.finditer(r"\bbottleneck\b", code_of(line))
    ]
    in_fpn = [
        ("fpn.res", i, m.start() + 1)
        for i, line in enumerate(fpn.text.splitlines(), 1)
        for m in re.finditer(r"\bbottleneck\(", line)
    ]
    assert sorted(found) == sorted(in_blocks + in_fpn)
    assert len(in_fpn) == 4


# ---- symbols -------------------------------------------------------------------------------------


def test_document_symbols_nest_parameters_sections_and_stages(resnet, resnet_net):
    [network] = document_symbols(resnet)
    assert (network.name, network.kind, network.detail) == ("resnet", lsp.SymbolKind.Class, "3x224x224 -> 1000")
    children = network.children or []
    params = [c.name for c in children if c.kind == lsp.SymbolKind.Variable]
    assert params == [p.name for p in resnet_net.template.params] and params[:3] == ["depth", "unit", "layers"]
    rest = {c.name: c.detail for c in children if c.kind != lsp.SymbolKind.Variable}
    parts = {p.name: p for p in resnet_net.record.parts}
    assert list(rest) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert rest["stem"] == show_shape(parts["stem"].output_shape)
    assert rest["layer2"] == f"bottleneck ×4 /2 → {show_shape(parts['layer2'].output_shape)}"
    assert rest["head"] == "1000"
    blocks = {s.name: s for s in document_symbols(_analysis("blocks.res"))}
    assert blocks["bottleneck"].kind == lsp.SymbolKind.Function and blocks["bottleneck"].detail == "block"


def test_workspace_symbols_match_substrings_and_letters_in_order():
    files = [(str(p), p.read_text()) for p in sorted(SPECS.glob("*.res"))]
    names = {(s.name, s.container_name) for s in workspace_symbols("bottle", files)}
    assert ("bottleneck", "blocks.res") in names and ("se_bottleneck", "blocks.res") in names
    assert all("bottle" in n.lower() for n, _ in names)
    fuzzy = {s.name for s in workspace_symbols("rsnt50", files)}
    assert "resnet50" in fuzzy
    [found] = [s for s in workspace_symbols("resnet50", files) if s.name == "resnet50"]
    assert found.kind == lsp.SymbolKind.Class and found.location.range.start.line == 2


# ---- inlay hints ---------------------------------------------------------------------------------


def test_inlay_hints_follow_the_stem_each_stage_and_the_head(resnet, resnet_net):
    hints = inlay_hints(resnet)
    lines = resnet.text.splitlines()
    shown = [(lines[h.position.line].strip(), h.label) for h in hints]
    parts = {p.name: show_shape(p.output_shape) for p in resnet_net.record.parts}
    assert shown == [
        ("}", f"→ {parts['stem']}"),
        ("layer1: unit1(widths[0]) x layers[0]", f"→ {parts['layer1']}"),
        ("layer2: unit2(widths[1]) x layers[1] s2", f"→ {parts['layer2']}"),
        ("layer3: unit3(widths[2]) x layers[2] s2", f"→ {parts['layer3']}"),
        ("layer4: unit4(widths[3]) x layers[3] s2", f"→ {parts['layer4']}"),
        ("}", f"→ {parts['head']}"),
    ]
    assert hints[1].position.character == len(lines[hints[1].position.line])  # at the end of the line
    assert inlay_hints(resnet, enabled=False) == []
    only_layer2 = lsp.Range(start=hints[2].position, end=hints[2].position)
    assert [h.label for h in inlay_hints(resnet, only_layer2)] == [f"→ {parts['layer2']}"]


def test_no_inlay_hints_for_a_network_that_does_not_check(tmp_path):
    broken = TWO_STAGES.replace("stage2: unit(32) x 3 s2", "stage2: unit(32) x 3 s2\n    conv 8 k3 groups=3")
    analysis = analyse(broken, str(tmp_path / "tiny.res"))
    assert analysis.failed and not analysis.networks
    assert inlay_hints(analysis) == []


def test_references_of_a_block_in_the_other_files_of_the_workspace(tmp_path):
    """Workspace files that call the block count; one that defines its own block of that name does not."""
    from resdsl.parse import parse_module

    main = 'use "blocks.res"\nnetwork m {\n    input 3x32x32\n    conv 64 k3\n    stage: bottleneck(16) x2\n}\n'
    other = 'use "blocks.res"\nnetwork o {\n    input 3x32x32\n    conv 64 k3 -> bottleneck(16)\n}\n'
    own = "block bottleneck(w) {\n    conv w k3\n}\nnetwork p {\n    input 3x8x8\n    bottleneck(4)\n}\n"
    analysis = analyse(main, str(tmp_path / "main.res"))
    workspace = [
        (str(tmp_path / n), parse_module(t, str(tmp_path / n))) for n, t in [("other.res", other), ("own.res", own)]
    ]
    found = find_references(analysis, where(main, "stage: bottleneck", "bottleneck"), True, workspace)
    places = {(Path(resdsl_path(loc.uri)).name, loc.range.start.line + 1) for loc in found}
    assert ("main.res", 5) in places and ("other.res", 4) in places
    assert not any(name == "own.res" for name, _ in places)
    assert ("blocks.res", _line_of("blocks.res", r"^block bottleneck\(")) in places


def test_hover_sections_and_residual_show_the_summary_rows_and_the_shortcuts(resnet, resnet_net, tmp_path):
    parts = {p.name: p for p in resnet_net.record.parts}
    for word, line_text in (("stem", "    stem {"), ("head", "head {")):
        part = parts[word]
        text = hover_text(resnet, line_text, word)
        assert f"{show_shape(part.output_shape)} out, {part.params:,} params, {part.macs:,} MACs" in text
    path = tmp_path / "tiny.res"
    net = resdsl.loads(TWO_STAGES, path=str(path))
    [projection] = net.projections()
    text = hover_text(analyse(TWO_STAGES, str(path)), "    residual {", "residual")
    shape = show_shape(net.ops.nodes["stage2.0.add"].shape)
    assert (
        f"in stage2, stage2.0.add: add -> {shape}, shortcut projection "
        f"({projection['params']:,} params, {projection['macs']:,} MACs)"
    ) in text
    assert "in stage1 (2 instances): add -> 16x32x32, shortcut identity" in text


def test_workspace_files_folders_first_then_the_library_and_handlers_never_raise(tmp_path, caplog):
    from types import SimpleNamespace

    from resdsl.library import specs_dir
    from resdsl.lsp.features import LastGood, _workspace_texts, guarded

    (tmp_path / "a.res").write_text("block a(w) {\n    conv w k3\n}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.res").write_text("network b {\n")  # does not parse: still listed
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.res").write_text("block c(w) {\n    conv w k3\n}\n")
    folder = SimpleNamespace(uri=tmp_path.as_uri())
    server = SimpleNamespace(workspace=SimpleNamespace(folders={folder.uri: folder}, root_path=None))
    paths = [Path(p) for p, _ in _workspace_texts(server)]
    bundled = sorted(specs_dir().glob("*.res"))
    assert paths[:2] == [tmp_path / "a.res", tmp_path / "sub" / "b.res"]
    assert [p.name for p in paths[2:]] == [p.name for p in bundled]
    names = {s.name for s in workspace_symbols("", _workspace_texts(server))}
    assert {"a", "b", "bottleneck"} <= names and "c" not in names

    def broken() -> str:
        raise ValueError("a bug in a feature")

    assert guarded(broken, None, "hover") is None
    assert "hover failed" in caplog.text and "a bug in a feature" in caplog.text

    last = LastGood()
    good = _analysis("resnet.res")
    assert last.update("u", good) is good
    half = analyse(good.text + "\nnetwork x {\n", good.path)
    assert last.update("u", half) is good  # a buffer that does not parse keeps the last good one


def test_cifar_resnet_option_a_shortcuts_and_the_resnet20_alias():
    """CIFAR ResNets (option A: zero-padded identity shortcuts, no parameters): the residual's hover
    names the zero-pad shortcut at the strided blocks; resnet20's alias line gets the network's figures."""
    family = _analysis("cifar_resnet.res")
    net = resdsl.load("cifar_resnet")
    adds = {n: node for n, node in net.ops.nodes.items() if node.is_merge}
    kinds = {node.shortcut for node in adds.values()}
    assert kinds == {"identity", "zeropad"}
    hint = {h.label for h in inlay_hints(family)}
    assert f"→ {show_shape(net.record.blocks['layer3.2'].out_shape)}" in hint
    text = hover_text(family, "layer2: unit(width * 2)", "layer2")
    assert "stage `layer2`: basic ×3, stride 2, shortcut A" in text
    resnet20 = _analysis("resnet20.res")
    net20 = resdsl.load("resnet20")
    [alias_hint] = inlay_hints(resnet20)
    assert alias_hint.label == f"→ 10, {net20.params:,} params, {net20.macs:,} MACs"
    assert net20.params == 269_722  # 0.27M (He et al. 2015, table 6); option A adds no parameters


def test_a_library_buffer_borrows_the_networks_of_the_open_buffers_that_use_it(resnet, resnet_net):
    """blocks.res checks no network; with resnet.res open, an op of `bottleneck` shows resnet's figures."""
    from resdsl.lsp.facts import with_networks_of

    blocks = _analysis("blocks.res")
    assert not blocks.networks
    line = _line_of("blocks.res", r"^block bottleneck\(")
    first_conv = next(
        i for i, text in enumerate(blocks.text.splitlines(), 1) if i > line and text.strip().startswith("conv")
    )
    position = lsp.Position(line=first_conv - 1, character=blocks.text.splitlines()[first_conv - 1].index("conv") + 1)
    alone = hover(blocks, position).contents.value
    assert "(no checked network in this file made this op)" in alone
    unrelated = _analysis("cifar_resnet.res")  # uses blocks.res too, but calls `basic` only
    text = hover(with_networks_of(blocks, [("r", resnet), ("c", unrelated)]), position).contents.value
    c1, c2 = resnet_net.ops.nodes["layer1.0.conv1"], resnet_net.ops.nodes["layer4.1.conv1"]
    assert f"in layer1, layer1.0.conv1: {figures(c1.in_shape, c1.shape, c1.params, c1.macs)}" in text
    assert (
        f"in layer4, layer4.1.conv1, layer4.2.conv1 (2): {figures(c2.in_shape, c2.shape, c2.params, c2.macs)}" in text
    )
    assert "- `out` = 64 | 128 | 256 | 512" in text
    assert with_networks_of(resnet, [("b", blocks)]) is resnet  # a buffer with networks keeps its own
