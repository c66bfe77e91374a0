"""textDocument/formatting: the buffer laid out as `resdsl fmt` lays it out.

resdsl/format_edits.py turns `format_text`'s result into edits of the lines that change only (an
editor keeps its cursor and marks on the others), in LSP positions (UTF-16, lines broken at \\n, \\r\\n
or \\r). A buffer that does not parse is left alone (no edits, no error popup): its syntax error is
already among its diagnostics.
"""

from __future__ import annotations

from lsprotocol import types as lsp

from ..errors import SpecError


def format_document(text: str, path: str) -> list[lsp.TextEdit]:
    from ..format_edits import formatting_edits  # the formatter, imported when a client first asks for it

    try:
        edits = formatting_edits(text, path)
    except SpecError:
        return []
    return [
        lsp.TextEdit(
            range=lsp.Range(
                start=lsp.Position(line=e.start_line, character=e.start_character),
                end=lsp.Position(line=e.end_line, character=e.end_character),
            ),
            new_text=e.new_text,
        )
        for e in edits
    ]


def format_range(text: str, path: str, wanted: lsp.Range) -> list[lsp.TextEdit]:
    """The edits of `format_document` that touch the lines of `wanted` (each replaces whole lines, so
    any subset of them is a valid edit on its own)."""
    last = wanted.end.line - (1 if wanted.end.character == 0 and wanted.end.line > wanted.start.line else 0)
    return [
        e
        for e in format_document(text, path)
        if e.range.start.line <= last and max(e.range.end.line - 1, e.range.start.line) >= wanted.start.line
    ]
