"""Where things are, in the editor's terms: file URIs and LSP positions for resdsl's paths and spans.

resdsl's spans count lines and columns from 1, in characters (Python str indices). The Language
Server Protocol counts from 0, and its default unit for a column is the UTF-16 code unit, in which a
character outside the Basic Multilingual Plane (an emoji in a comment) takes two. Everything that
turns one into the other is here, so the features never count columns themselves.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote, urlparse

from lsprotocol import types as lsp

from ..errors import Span


def path_of(uri: str) -> str:
    """The file path of a `file:` URI; any other URI (an unsaved `untitled:` buffer) as `<uri>`,
    a name resdsl treats as a file with no folder (its `use`s resolve against the bundled specs)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return f"<{uri}>"
    path = unquote(parsed.path)
    if os.name == "nt" and path.startswith("/") and len(path) > 2 and path[2] == ":":
        path = path[1:]  # file:///C:/x.res -> C:/x.res
    return os.path.normpath(path)


def uri_of(path: str) -> str:
    """The URI of a path a span carries (relative paths are relative to the server's working folder)."""
    if path.startswith("<") and path.endswith(">"):
        return path[1:-1]
    absolute = os.path.abspath(path).replace(os.sep, "/")
    if not absolute.startswith("/"):
        absolute = "/" + absolute
    return "file://" + quote(absolute)


def file_key(path: str) -> str:
    """One key per file, whichever path names it (relative or absolute, through a link); a `<...>`
    name (an unsaved buffer) is its own key."""
    return path if path.startswith("<") else os.path.normcase(os.path.realpath(path))


def same_file(a: str, b: str) -> bool:
    """Two paths name one file (a relative and an absolute path, a link)."""
    return file_key(a) == file_key(b)


def _utf16_column(line: str, characters: int) -> int:
    """The UTF-16 column of the first `characters` characters of `line`."""
    prefix = line[:characters]
    return characters + sum(1 for c in prefix if ord(c) > 0xFFFF)


def _character_column(line: str, utf16: int) -> int:
    """The character index at UTF-16 column `utf16` of `line` (clamped to the line)."""
    units = 0
    for index, c in enumerate(line):
        if units >= utf16:
            return index
        units += 2 if ord(c) > 0xFFFF else 1
    return len(line)


def to_position(lines: list[str], line: int, column: int) -> lsp.Position:
    """The LSP position of resdsl's (line, column), both from 1, in a text split into `lines`."""
    row = max(line - 1, 0)
    text = lines[row] if row < len(lines) else ""
    return lsp.Position(line=row, character=_utf16_column(text, max(column - 1, 0)))


def to_range(span: Span, text: str | list[str]) -> lsp.Range:
    """The LSP range of a span of `text` (the text of the span's file, or its lines)."""
    # resdsl's lexer counts lines at "\n" (a "\r" before it ends the line's text); str.splitlines would
    # also split at a form feed or "\u2028" in a comment and shift every later line
    lines = text.split("\n") if isinstance(text, str) else text
    return lsp.Range(
        start=to_position(lines, span.line, span.column),
        end=to_position(lines, span.end_line, span.end_column),
    )


def from_position(lines: list[str], position: lsp.Position) -> tuple[int, int]:
    """resdsl's (line, column), both from 1, of an LSP position in a text split into `lines`."""
    row = position.line
    text = lines[row] if 0 <= row < len(lines) else ""
    return row + 1, _character_column(text, position.character) + 1


def contains(span: Span, line: int, column: int) -> bool:
    """`(line, column)` (from 1) lies in the span, its end included (a cursor just after a name is on it)."""
    if (line, column) < (span.line, span.column):
        return False
    return (line, column) <= (span.end_line, span.end_column)
