"""The editor features of `resdsl lsp` end to end: a real client (pytest-lsp) asks the server process
for hover, definition, references, symbols, completion, signature help and inlay hints.

A server start costs about a second, so one test walks through every feature on one server, and a
second checks that `inlayHints: false` turns the hints off."""

from __future__ import annotations

import shutil

import pytest
import pytest_lsp
from lsp_client import SERVER, SPECS, diagnostics, edit, open_file, start
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

import resdsl
from resdsl.graph import show_shape


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, request):
    await start(lsp_client, getattr(request, "param", None))
    yield
    await lsp_client.shutdown_session()


def _at(line: int, character: int) -> lsp.Position:
    return lsp.Position(line=line, character=character)


def _doc(uri: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri)


@pytest.mark.asyncio
async def test_every_feature_through_the_server(client: LanguageClient, tmp_path):
    shutil.copy(SPECS / "blocks.res", tmp_path / "blocks.res")
    resnet = tmp_path / "resnet.res"
    shutil.copy(SPECS / "resnet.res", resnet)
    uri = open_file(client, resnet)
    assert await diagnostics(client, uri, 1) == []
    lines = resnet.read_text().splitlines()
    stage = next(i for i, line in enumerate(lines) if line.startswith("    layer2: unit2("))
    net = resdsl.load(resnet)
    part = next(p for p in net.record.parts if p.name == "layer2")

    found = await client.text_document_hover_async(lsp.HoverParams(text_document=_doc(uri), position=_at(stage, 6)))
    assert "stage `layer2`: bottleneck ×4, stride 2, shortcut B" in found.contents.value
    assert f"{part.params:,} params, {part.macs:,} MACs in all" in found.contents.value
    assert found.range == lsp.Range(start=_at(stage, 4), end=_at(stage, 10))

    # definition: the parameter `unit2`, and the block of the copied blocks.res the network calls
    found = await client.text_document_definition_async(
        lsp.DefinitionParams(text_document=_doc(uri), position=_at(stage, 13))
    )
    assert [(loc.uri.rsplit("/", 1)[-1], loc.range.start.line) for loc in found] == [
        ("resnet.res", 33),
        ("blocks.res", 37),
    ]
    assert found[1].uri == (tmp_path / "blocks.res").as_uri()

    width = next(i for i, line in enumerate(lines) if "width = 64," in line)
    found = await client.text_document_references_async(
        lsp.ReferenceParams(
            text_document=_doc(uri),
            position=_at(width, lines[width].index("width = 64") + 1),
            context=lsp.ReferenceContext(include_declaration=True),
        )
    )
    assert len(found) == 7 and all(loc.uri == uri for loc in found)

    symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=_doc(uri)))
    [network] = symbols
    layer2 = next(s for s in network.children if s.name == "layer2")
    assert layer2.detail == f"bottleneck ×4 /2 → {show_shape(part.output_shape)}"

    found = await client.workspace_symbol_async(lsp.WorkspaceSymbolParams(query="bottleneck"))
    assert ("bottleneck", "blocks.res") in {(s.name, s.container_name) for s in found}

    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(text_document=_doc(uri), range=lsp.Range(start=_at(0, 0), end=_at(len(lines), 0)))
    )
    assert f"→ {show_shape(part.output_shape)}" in [h.label for h in hints] and len(hints) == 6

    # blocks.res open beside it: its hovers show the figures of resnet.res's network
    blocks_path = tmp_path / "blocks.res"
    blocks = open_file(client, blocks_path)
    await diagnostics(client, blocks, 1)
    block_lines = blocks_path.read_text().splitlines()
    start = next(i for i, line in enumerate(block_lines) if line.startswith("block bottleneck("))
    conv = next(i for i in range(start, len(block_lines)) if block_lines[i].strip().startswith("conv"))
    found = await client.text_document_hover_async(
        lsp.HoverParams(text_document=_doc(blocks), position=_at(conv, block_lines[conv].index("conv") + 1))
    )
    c1 = net.ops.nodes["layer1.0.conv1"]
    assert f"in layer1, layer1.0.conv1: {show_shape(c1.in_shape)} -> {show_shape(c1.shape)}" in found.contents.value

    # a half-typed line: completion and signature help from the last analysis that parsed
    edit(client, uri, 2, stage + 1, 0, None, "    layer5: bottleneck(64, str\n")
    await diagnostics(client, uri, 2)
    found = await client.text_document_completion_async(
        lsp.CompletionParams(text_document=_doc(uri), position=_at(stage + 1, 30))
    )
    assert "stride =" in [i.label for i in found.items]
    found = await client.text_document_signature_help_async(
        lsp.SignatureHelpParams(text_document=_doc(uri), position=_at(stage + 1, 30))
    )
    [signature] = found.signatures
    start, end = signature.parameters[found.active_parameter].label
    assert signature.label[start:end] == "stride = 1"
    # the hints of a buffer that does not check: none
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(text_document=_doc(uri), range=lsp.Range(start=_at(0, 0), end=_at(len(lines), 0)))
    )
    assert not hints
    assert not client.messages  # no error popup from any handler


@pytest.mark.asyncio
@pytest.mark.parametrize("client", [{"inlayHints": False}], indirect=True)
async def test_inlay_hints_off_by_setting(client: LanguageClient):
    uri = open_file(client, SPECS / "resnet50.res")
    await diagnostics(client, uri, 1)
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(text_document=_doc(uri), range=lsp.Range(start=_at(0, 0), end=_at(3, 0)))
    )
    assert not hints
    found = await client.text_document_hover_async(lsp.HoverParams(text_document=_doc(uri), position=_at(2, 10)))
    assert "network resnet50 = resnet(depth = 50)" in found.contents.value
