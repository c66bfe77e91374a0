"""Quick fixes: the edits a diagnostic's help line proposes, where the help says exactly what to write.

| help (where resdsl says it)                                         | the fix                                   |
|---------------------------------------------------------------------|-------------------------------------------|
| did you mean `X`? (values.suggest: names, ops, blocks, options,      | the misspelt word, replaced by `X`        |
|   parameters, functions, choices; W0201's keyword)                  |                                           |
| `bottleneck` is defined in the bundled blocks.res: add `use "..."`  | `use "blocks.res"` after the `use` lines  |
| write a 3×3 kernel as `k3` (syntax_errors)                          | `3x3` replaced by `k3`                    |
| paths in `use` are written in double quotes                         | `'blocks.res'` becomes `"blocks.res"`     |
| a chain cannot end with `->`: remove it ...                         | the trailing `->` removed                 |
| separate arguments with commas                                      | `,` after the argument before             |
| a block needs a parameter list, even an empty one                   | `()` after the block's name               |
| is a `}` missing before this line?                                  | `}` before the line (not preferred)       |
| `s2` ... as a name it is quoted: `"s2"`                             | `"s2"` (not preferred: maybe an option)   |

A fix is `isPreferred` when it is the one obvious edit (the editor's "fix all" applies it). Every
other help (a value to choose, a file to restructure) asks for a decision, and has no quick fix.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from lsprotocol import types as lsp

from ..errors import Diagnostic, Span
from .analysis import Analysis
from .diagnostics import convert
from .positions import same_file, to_position, to_range

_DID_YOU_MEAN = re.compile(r"did you mean `([^`]+)`\?")
_ADD_USE = re.compile(r'add `use "([^"`]+)"` at the top of this file')
_KERNEL = re.compile(r"write a (\d+)×\1 kernel as `(k\d+)`")
_QUOTED_SHORT = re.compile(r'it is quoted: `("[a-z]\d+")`')
_BACKTICKED = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def code_actions(
    analysis: Analysis, uri: str, wanted: lsp.Range, sent: Sequence[lsp.Diagnostic] = ()
) -> list[lsp.CodeAction]:
    """The quick fixes for the diagnostics of this buffer whose range meets `wanted`; each action
    carries the client's own copy of its diagnostic when the client sent one."""
    lines = analysis.text.split("\n")
    actions: list[lsp.CodeAction] = []
    for d in analysis.diagnostics:
        if d.span is None or not same_file(d.span.path, analysis.path) or not d.help:
            continue
        shown = convert(d, analysis)
        if not _meets(shown.range, wanted):
            continue
        mine = next((s for s in sent if s.range == shown.range and s.code == d.code), shown)
        for title, edits, preferred in fixes(d, analysis, lines):
            actions.append(
                lsp.CodeAction(
                    title=title,
                    kind=lsp.CodeActionKind.QuickFix,
                    diagnostics=[mine],
                    is_preferred=preferred or None,
                    edit=lsp.WorkspaceEdit(changes={uri: edits}),
                )
            )
    return actions


def fixes(d: Diagnostic, analysis: Analysis, lines: list[str]) -> list[tuple[str, list[lsp.TextEdit], bool]]:
    """(title, edits, preferred) for each textual fix the help of `d` proposes."""
    assert d.span is not None and d.help is not None
    span, help = d.span, d.help
    found: list[tuple[str, list[lsp.TextEdit], bool]] = []
    if match := _ADD_USE.search(help):
        found.append((f'Add `use "{match[1]}"`', [_add_use(match[1], analysis, lines)], True))
    elif match := _DID_YOU_MEAN.search(help):
        edit = _replace_word(d, match[1], lines)
        if edit is not None:
            found.append((f"Change to `{match[1]}`", [edit], True))
    if match := _KERNEL.search(help):
        found.append((f"Write `{match[2]}`", [_edit(span, lines, match[2])], True))
    if help == "paths in `use` are written in double quotes":
        edit = _double_quotes(span, lines)
        if edit is not None:
            found.append(("Use double quotes", [edit], True))
    if help.startswith("a chain cannot end with `->`"):
        edit = _remove_trailing_arrow(span, lines)
        if edit is not None:
            found.append(("Remove the trailing `->`", [edit], True))
    if help.startswith("separate arguments with commas"):
        found.append(("Add a comma", [_insert_after_previous(span, lines, ",")], True))
    if help.startswith("a block needs a parameter list"):
        found.append(("Add an empty parameter list `()`", [_insert_after_previous(span, lines, "()")], True))
    if help == "is a `}` missing before this line?":
        start = lsp.Position(line=span.line - 1, character=0)
        brace = lsp.TextEdit(range=lsp.Range(start=start, end=start), new_text="}\n")
        found.append(("Insert `}` before this line", [brace], False))
    if match := _QUOTED_SHORT.search(help):
        found.append((f"Quote it as a name: {match[1]}", [_edit(span, lines, match[1])], False))
    return found


def _meets(a: lsp.Range, b: lsp.Range) -> bool:
    """The ranges share a line: the cursor anywhere on a diagnostic's line offers its fixes."""
    return a.start.line <= b.end.line and b.start.line <= a.end.line


def _edit(span: Span, lines: list[str], new_text: str) -> lsp.TextEdit:
    return lsp.TextEdit(range=to_range(span, lines), new_text=new_text)


def _replace_word(d: Diagnostic, suggestion: str, lines: list[str]) -> lsp.TextEdit | None:
    """`did you mean `X`?`: the word of the span that was misspelt (the one the message names, else
    the span's word nearest `X`), replaced by `X`."""
    span = d.span
    assert span is not None
    row = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    end = span.end_column - 1 if span.end_line == span.line else len(row)
    words = [(m.start(), m.group()) for m in _WORD.finditer(row, span.column - 1, max(end, span.column))]
    named = set(_BACKTICKED.findall(d.message))
    candidates = [w for w in words if w[1] in named and w[1] != suggestion] or [
        w for w in words if w[1] != suggestion and difflib.SequenceMatcher(None, w[1], suggestion).ratio() >= 0.5
    ]
    if not candidates:
        return None
    start, word = max(candidates, key=lambda w: difflib.SequenceMatcher(None, w[1], suggestion).ratio())
    where = Span(span.path, span.line, start + 1, span.line, start + 1 + len(word))
    return _edit(where, lines, suggestion)


def _add_use(file: str, analysis: Analysis, lines: list[str]) -> lsp.TextEdit:
    """`use "blocks.res"` on a line of its own: after the last `use`, else after the file's opening
    comment, else at the top."""
    uses = analysis.module.uses
    if uses:
        row = max(u.span.end_line for u in uses)
    else:
        row = 0
        while row < len(lines) and lines[row].lstrip().startswith("#"):
            row += 1
    at = lsp.Position(line=row, character=0)
    return lsp.TextEdit(range=lsp.Range(start=at, end=at), new_text=f'use "{file}"\n')


def _double_quotes(span: Span, lines: list[str]) -> lsp.TextEdit | None:
    row = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    start = span.column - 1
    end = row.find("'", start + 1)
    if start >= len(row) or row[start] != "'" or end < 0:
        return None
    where = Span(span.path, span.line, start + 1, span.line, end + 2)
    return _edit(where, lines, '"' + row[start + 1 : end] + '"')


def _remove_trailing_arrow(span: Span, lines: list[str]) -> lsp.TextEdit | None:
    """The last `->` before the error (on its line or the line before), with the spaces before it."""
    for row in (span.line - 1, span.line - 2):
        if not 0 <= row < len(lines):
            continue
        text = lines[row][: span.column - 1] if row == span.line - 1 else lines[row]
        arrow = text.rstrip().rfind("->")
        if arrow >= 0 and text.rstrip().endswith("->"):
            first = len(text[:arrow].rstrip())
            where = Span(span.path, row + 1, first + 1, row + 1, arrow + 3)
            return _edit(where, lines, "")
    return None


def _insert_after_previous(span: Span, lines: list[str], inserted: str) -> lsp.TextEdit:
    """`inserted` just after the last character before the error on its line (`b(1| 2)`)."""
    row = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
    column = len(row[: span.column - 1].rstrip())
    at = to_position(lines, span.line, column + 1)
    return lsp.TextEdit(range=lsp.Range(start=at, end=at), new_text=inserted)
