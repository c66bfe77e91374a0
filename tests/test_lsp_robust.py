"""`resdsl lsp` takes anything an editor can send: every buffer gets diagnostics for its version, the
server keeps answering, and a bug inside resdsl's checker or a handler becomes a diagnostic or a log
line, never a crash."""

from __future__ import annotations

import random

import pytest
import pytest_lsp
from lsp_client import SERVER, SPECS, diagnostics, edit, open_file, replace_all, start
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from resdsl.cli import build_parser
from resdsl.lsp import documents as documents_module
from resdsl.lsp.analysis import ParseCache, analyse
from resdsl.lsp.documents import Buffer, Documents
from resdsl.lsp.server import build_server, guarded
from resdsl.parse import MAX_SOURCE_BYTES


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient):
    await start(lsp_client)
    yield
    await lsp_client.shutdown_session()


def _junk() -> list[tuple[str, str]]:
    """(what, text) for the buffers nobody means to write."""
    rng = random.Random(21)
    return [
        ("binary", bytes(rng.randrange(256) for _ in range(4096)).decode("latin-1")),
        ("NULs", "network n {\x00\n    input 3x8x8\x00\n}\n"),
        ("5 MB", ("# " + "x" * 78 + "\n") * 65536),
        ("deep brackets", "network n(a = " + "(" * 20000 + "1" + ")" * 20000 + ") {\n}\n"),
        ("deep blocks", "network n {\n" + "residual {\n" * 3000 + "}\n" * 3000 + "}\n"),
        ("unclosed", "[" * 100000),
        ("separators", "# \x0c\u2028\x1c a comment\nnetwork n {\n    input 3x8x8\n    conv 8 k3 -> rleu\n}\n"),
    ]


@pytest.mark.asyncio
async def test_junk_and_half_typed_buffers(client: LanguageClient, tmp_path):
    """Junk gets located diagnostics; a spec typed character by character (50 of its prefixes) gets
    diagnostics for every version; the server still answers afterwards."""
    uri = open_file(client, tmp_path / "junk.res", "")
    assert await diagnostics(client, uri, 1) == []
    version = 1
    for what, text in _junk():
        version += 1
        replace_all(client, uri, version, text)
        found = await diagnostics(client, uri, version)
        assert found and all(d.code and d.code.startswith("E") for d in found), what
    # the form feed and the line separator end no line: `rleu` is on line 4
    assert [(d.code, d.range.start.line) for d in found] == [("E0202", 3)]
    assert [d.code for d in await diagnostics(client, uri, 4)] == ["E0105"]  # 5 MB: too large

    # typed: each edit inserts the next few characters at the end (incremental sync, as an editor sends)
    spec = (SPECS / "resnet.res").read_text()
    ends = sorted(random.Random(1).sample(range(1, len(spec)), 50)) + [len(spec)]
    version += 1
    replace_all(client, uri, version, "")
    typed = ""
    for end in ends:
        version += 1
        lines = typed.split("\n")
        edit(
            client, uri, version, len(lines) - 1, len(lines[-1].encode("utf-16-le")) // 2, None, spec[len(typed) : end]
        )
        typed = spec[:end]
    for number in range(version - len(ends) + 1, version + 1):
        await diagnostics(client, uri, number)  # every version answered
    assert await diagnostics(client, uri, version) == []  # the whole spec: in the bundled folder's terms

    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=1, character=0)),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert list(actions) == []  # answered: the server is alive
    assert not client.messages  # nothing went wrong enough for a popup


def test_a_checker_bug_is_one_diagnostic(monkeypatch):
    """An exception inside resdsl's checker: one diagnostic at 1:1 that asks for a report, the
    traceback in the log, an empty analysis for the features, and the next keystroke checked again."""
    logged: list[str] = []
    open_now = {"file:///tmp/a.res": Buffer("file:///tmp/a.res", "network n {\n}\n", 1)}
    docs = Documents(lambda: open_now, logged.append)

    def broken(*args, **kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(documents_module, "analyse", broken)
    docs.changed("file:///tmp/a.res")
    [(version, [shown])] = docs.publishable().values()
    assert version == 1 and (shown.range.start.line, shown.range.start.character) == (0, 0)
    assert "resdsl's checker failed on this file (KeyError: 'oops')" in shown.message
    assert "please report it" in shown.message
    assert "Traceback" in logged[0] and "KeyError" in logged[0]
    assert docs.analysis_of("file:///tmp/a.res").networks == {}

    monkeypatch.undo()
    open_now["file:///tmp/a.res"] = Buffer("file:///tmp/a.res", "network n {\n}\n", 2)
    docs.changed("file:///tmp/a.res")
    [(version, found)] = docs.publishable().values()
    assert version == 2 and [d.code for d in found] == ["E0209"]  # no `input`: checked again


def test_a_handler_that_raises_answers_empty():
    server = build_server()
    logged: list[lsp.LogMessageParams] = []
    server.window_log_message = logged.append  # type: ignore[method-assign]

    @guarded(server, empty=[])
    def hover(ls, params):
        raise ValueError("bad")

    assert hover(server, None) == []
    [entry] = logged
    assert entry.type == lsp.MessageType.Error
    assert "hover failed" in entry.message and "ValueError: bad" in entry.message and "Traceback" in entry.message


def test_the_command_line_takes_what_clients_pass():
    """vscode-languageclient passes `--stdio`; `--log-file` is optional."""
    args = build_parser().parse_args(["lsp", "--stdio", "--log-file", "lsp.log"])
    assert (args.command, args.stdio, args.log_file) == ("lsp", True, "lsp.log")
    assert build_parser().parse_args(["lsp"]).log_file is None


def test_a_buffer_too_large_is_refused_and_not_remembered():
    cache = ParseCache()
    text = "# " + "x" * (MAX_SOURCE_BYTES + 10) + "\n"
    for version in (1, 2):
        analysis = analyse(text + "#" * version, "/tmp/big.res", version=version, cache=cache)
        assert [d.code for d in analysis.diagnostics] == ["E0105"]
    assert len(cache._trees) == 0  # 128 versions of a 10 MB buffer would hold 1.3 GB


def test_a_conversion_bug_still_answers_the_version(monkeypatch):
    logged: list[str] = []
    open_now = {"file:///tmp/a.res": Buffer("file:///tmp/a.res", "network n {\n}\n", 7)}
    docs = Documents(lambda: open_now, logged.append)
    docs.changed("file:///tmp/a.res")

    def broken(*args):
        raise IndexError("off the end")

    monkeypatch.setattr(documents_module, "diagnostics_for", broken)
    [(version, [shown])] = docs.publishable().values()
    assert version == 7 and "IndexError: off the end" in shown.message and "Traceback" in logged[0]


def test_an_edit_after_a_form_feed_lands_on_its_line():
    """LSP ends lines at \\n, \\r\\n and \\r only; pygls's str.splitlines would also end one at the form
    feed and the line separator of this comment, and apply the edit a line too early."""
    from pygls.workspace.position_codec import PositionCodec

    from resdsl.lsp.server import _Document

    text = "# a \x0c comment \u2028 here\nnetwork n {\r\n    input 3x8x8\n}\n"
    document = _Document("file:///tmp/a.res", source=text, version=1, position_codec=PositionCodec())
    start = lsp.Position(line=2, character=4)
    document.apply_change(
        lsp.TextDocumentContentChangePartial(range=lsp.Range(start=start, end=start), text="conv 8 k3\n    ")
    )
    assert document.source == text.replace("    input", "    conv 8 k3\n    input")
