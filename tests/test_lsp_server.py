"""`resdsl lsp` end to end: a real client (pytest-lsp) drives the server process over stdio.

Each server start costs about a second, so each test walks through several steps on one server."""

from __future__ import annotations

import shutil

import pytest
import pytest_lsp
from lsp_client import SERVER, SPECS, diagnostics, edit, open_file, replace_all, start
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def _range(a: int, b: int, c: int, d: int) -> lsp.Range:
    return lsp.Range(start=lsp.Position(line=a, character=b), end=lsp.Position(line=c, character=d))


SHAPE_ERROR = """\
network n {
    input 3x32x32
    shortcut identity
    conv 16 k3
    residual {
        conv 32 k3 -> bn
    }
}
"""


@pytest.mark.asyncio
async def test_diagnostics_of_one_buffer(client: LanguageClient, tmp_path):
    """A bundled spec checks clean; a syntax error, a shape error and a warning each at its range,
    with its code, link and severity; an emoji before an error counts two UTF-16 units; close clears."""
    capabilities = client.initialize_result.capabilities
    assert capabilities.position_encoding == lsp.PositionEncodingKind.Utf16  # though UTF-8 was offered first
    assert capabilities.text_document_sync.change == lsp.TextDocumentSyncKind.Incremental
    shutil.copy(SPECS / "blocks.res", tmp_path / "blocks.res")
    resnet = tmp_path / "resnet.res"
    shutil.copy(SPECS / "resnet.res", resnet)
    uri = open_file(client, resnet)
    assert await diagnostics(client, uri, 1) == []
    bundled = open_file(client, SPECS / "resnet152.res")  # the bundled file itself: resnet152 checked
    assert await diagnostics(client, bundled, 1) == []

    path = tmp_path / "n.res"
    uri = open_file(client, path, SHAPE_ERROR)
    [found] = await diagnostics(client, uri, 1)
    assert (found.code, found.severity, found.source) == ("E0401", lsp.DiagnosticSeverity.Error, "resdsl")
    assert found.range == _range(4, 4, 6, 5)  # the whole `residual { ... }` (docs/errors.md: 5:5)
    assert "help: use `shortcut B`" in found.message
    assert found.code_description.href.endswith("docs/errors.md#e0401-shapes-of-a-residual-add-do-not-match")

    # a syntax error, typed in: `3x3` for `k3`
    edit(client, uri, 2, 3, 12, (3, 14), "3x3")
    [found] = await diagnostics(client, uri, 2)
    assert (found.code, found.range) == ("E0103", _range(3, 12, 3, 15))
    assert found.message.endswith(
        "help: write a 3×3 kernel as `k3` (`conv 64 k3`); `3x3` is a shape, as in `input 3x32x32`"
    )
    # a quoted label with an emoji before it: one character, two UTF-16 code units
    edit(client, uri, 3, 3, 4, None, '"🙂": ')
    [found] = await diagnostics(client, uri, 3)
    assert found.range == _range(3, 18, 3, 21)  # 12 + 6 units (17 in characters)

    # a warning is a warning
    replace_all(
        client,
        uri,
        4,
        "network n {\n    input 3x32x32\n    conv 16 k3\n    avgpool k8\n    head { avgpool -> fc 10 }\n}\n",
    )
    [found] = await diagnostics(client, uri, 4)
    assert (found.code, found.severity, found.range.start) == (
        "W0401",
        lsp.DiagnosticSeverity.Warning,
        lsp.Position(line=3, character=4),
    )

    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    await client.wait_for_notification(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert client.published[-1][:2] == (uri, None) and not client.diagnostics[uri]


LIB = """\
block unit(width) {
    conv width k3 -> bn -> relu
    conv width k3 g=2 -> bn
}
"""
MAIN = """\
use "lib.res"
network n {
    input 3x32x32
    conv 16 k3
    layer1: unit(16) x2
}
"""


@pytest.mark.asyncio
async def test_an_error_inside_a_used_block(client: LanguageClient, tmp_path):
    """An error in a block of another file shows at the stage that calls it, with the block's line as
    related information; the used file, open, shows it too; editing it refreshes the user's buffer."""
    (tmp_path / "lib.res").write_text(LIB)
    main = open_file(client, tmp_path / "main.res", MAIN)
    assert await diagnostics(client, main, 1) == []

    mark = len(client.published)
    lib = open_file(client, tmp_path / "lib.res", LIB.replace("g=2", "g=3"))  # unsaved: main reads the buffer
    await diagnostics(client, lib, 1)
    [found] = await diagnostics(client, main, 1, since=mark)  # main analysed again, same version
    assert found.code == "E0402"
    assert found.range == _range(4, 12, 4, 23)  # `unit(16) x2`, the call in main.res
    assert found.message.startswith(f"in {tmp_path / 'lib.res'}:3:5: groups=3")
    where = [(r.location.uri, r.location.range.start.line) for r in found.related_information]
    assert where[0] == (lib, 2)  # the error itself, then the calls that led there
    assert (main, 4) in where
    [in_lib] = await diagnostics(client, lib, 1, since=mark + 1)  # again, with what checking main found
    assert (in_lib.code, in_lib.range.start) == ("E0402", lsp.Position(line=2, character=4))

    mark = len(client.published)
    edit(client, lib, 2, 2, 20, (2, 21), "2")  # fixed in the editor: both files clear
    assert await diagnostics(client, lib, 2) == []
    assert await diagnostics(client, main, 1, since=mark) == []

    mark = len(client.published)
    edit(client, lib, 3, 2, 20, (2, 21), "3")  # broken again, unsaved ...
    [again] = await diagnostics(client, main, 1, since=mark)
    assert again.code == "E0402"
    mark = len(client.published)
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=lib)))
    assert await diagnostics(client, main, 1, since=mark) == []  # ... and closed: main reads the file on disk
    assert client.published[mark][:3] == (lib, None, [])

    [watch] = client.registrations  # the server asked to hear of .res files changed on disk
    assert watch.method == lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES
    assert watch.register_options["watchers"] == [{"globPattern": "**/*.res"}]
    (tmp_path / "lib.res").write_text(LIB.replace("g=2", "g=3"))  # changed on disk (a checkout)
    mark = len(client.published)
    client.workspace_did_change_watched_files(
        lsp.DidChangeWatchedFilesParams(changes=[lsp.FileEvent(uri=lib, type=lsp.FileChangeType.Changed)])
    )
    [found] = await diagnostics(client, main, 1, since=mark)
    assert found.code == "E0402"


QUICK_FIXES = """\
# a spec with two mistakes
network n {
    input 3x32x32
    conv 16 k3 -> rleu
    bottleneck(16)
}
"""


@pytest.mark.asyncio
async def test_quick_fixes_and_formatting(client: LanguageClient, tmp_path):
    uri = open_file(client, tmp_path / "q.res", QUICK_FIXES)
    found = await diagnostics(client, uri, 1)
    assert sorted(d.code for d in found) == ["E0202", "E0202"]
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=_range(0, 0, 6, 0),
            context=lsp.CodeActionContext(diagnostics=found),
        )
    )
    edits = {a.title: (a.is_preferred, a.edit.changes[uri]) for a in actions}
    [fix] = edits["Change to `relu`"][1]
    assert (fix.range, fix.new_text) == (_range(3, 18, 3, 22), "relu")
    [use] = edits['Add `use "blocks.res"`'][1]
    assert (use.range.start, use.new_text) == (lsp.Position(line=1, character=0), 'use "blocks.res"\n')
    assert all(a.kind == lsp.CodeActionKind.QuickFix and a.diagnostics for a in actions)

    # formatting: the lines that change; none for a buffer that does not parse
    replace_all(client, uri, 2, "# 🙂\nnetwork n {\n  input 3x8x8\n    conv 8 k3\n      fc 8\n}\n")
    await diagnostics(client, uri, 2)
    options = lsp.FormattingOptions(tab_size=4, insert_spaces=True)
    ident = lsp.TextDocumentIdentifier(uri=uri)
    edits = await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(text_document=ident, options=options)
    )
    assert [(e.range, e.new_text) for e in edits] == [
        (_range(2, 0, 3, 0), "    input 3x8x8\n"),
        (_range(4, 0, 5, 0), "    fc 8\n"),
    ]
    only_line_5 = lsp.DocumentRangeFormattingParams(text_document=ident, range=_range(4, 2, 4, 5), options=options)
    edits = await client.text_document_range_formatting_async(only_line_5)
    assert [(e.range, e.new_text) for e in edits] == [(_range(4, 0, 5, 0), "    fc 8\n")]
    replace_all(client, uri, 3, "network n {\n  input 3x8x8 ->\n")
    await diagnostics(client, uri, 3)
    assert not await client.text_document_formatting_async(
        lsp.DocumentFormattingParams(text_document=ident, options=options)
    )
    assert not client.messages  # no popup
