"""What the language server answers to `textDocument/formatting`: `format_text` as a few line edits.

Only the lines that change are replaced, so that an editor keeps its cursor, marks and undo history on
the others. Positions follow the Language Server Protocol: 0-based lines and characters, lines broken
at `\\n`, `\\r\\n` or `\\r`, characters counted in UTF-16 code units (the protocol's default encoding).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .format import format_text

_LSP_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class TextEdit:
    """Replace the text from (start_line, start_character) to (end_line, end_character) with `new_text`."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int
    new_text: str


def formatting_edits(text: str, path: str = "<string>") -> list[TextEdit]:
    """The edits, in document order and not overlapping, that turn `text` into `format_text(text, path)`.

    No edits when it is formatted already. Raises SpecError where the text does not parse: a server answers
    that with no edits (the diagnostics already show the syntax error)."""
    formatted = format_text(text, path)
    if formatted == text:
        return []
    old, new = _lines(text), _lines(formatted)
    starts = [0]
    for line in old:
        starts.append(starts[-1] + len(line))
    edits = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            start, end = _position(text, starts[i1]), _position(text, starts[i2])
            edits.append(TextEdit(*start, *end, "".join(new[j1:j2])))
    return edits


def _lines(text: str) -> list[str]:
    """The lines of `text`, each with its `\\n` (the parser's line break; str.splitlines would also break
    at form feeds and Unicode separators, which a comment may hold)."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _position(text: str, offset: int) -> tuple[int, int]:
    """The LSP (line, character) of an offset of `text`."""
    before = text[:offset]
    line, line_start = 0, 0
    for match in _LSP_BREAK.finditer(before):
        line, line_start = line + 1, match.end()
    return line, len(before[line_start:].encode("utf-16-le")) // 2
