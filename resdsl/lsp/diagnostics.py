"""resdsl's diagnostics as the editor shows them: LSP `Diagnostic`s, one file at a time.

A resdsl `Diagnostic` has a code, a message, a span, notes, a help line and the chain of block calls
(`trace`, outermost first) that led to it. In LSP terms:

* range: the span, converted by positions.to_range with the text of the span's own file;
* severity: Error, or Warning for the W codes; source "resdsl"; code and a link to docs/errors.md;
* relatedInformation: every note that names a place (`also defined at blocks.res:3:7`) and every
  block call of the trace, each a location the editor can jump to;
* message: the message, the notes that name no place, and the help line (`help: ...`); the help
  also goes in `data`, where the quick fixes (actions.py) find it.

A diagnostic whose span lies in another file (an error inside a `use`d block, met while checking
this buffer's network) is shown in this buffer too: at the outermost block call of its trace that
lies in this buffer, else at the `use` line that leads to the file, its message starting with the
place it really is (`in blocks.res:57:5: ...`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lsprotocol import types as lsp

from ..errors import CODES, WARNINGS, Diagnostic, Span, shown_path
from .analysis import Analysis
from .positions import same_file, to_range, uri_of

SOURCE = "resdsl"
ERRORS_PAGE = "https://github.com/resdsl/resdsl/blob/main/docs/errors.md"
ISSUES_PAGE = "https://github.com/resdsl/resdsl/issues"

# A note that names a place ends with it: "also defined at blocks.res:3:7", "first given at x.res:4:12".
_LOCATED_NOTE = re.compile(r"^(?P<text>.*?)\s*\bat (?P<path>\S+):(?P<line>\d+):(?P<column>\d+)$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def anchor(code: str) -> str:
    """The anchor GitHub gives docs/errors.md's heading `## E0401: shapes of a residual add do not match`:
    lower case, punctuation but `-` and `_` dropped, spaces as `-`."""
    title = f"{code}: {CODES.get(code) or WARNINGS.get(code, '')}".strip().rstrip(":")
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def code_link(code: str) -> str:
    return f"{ERRORS_PAGE}#{anchor(code)}"


def diagnostics_for(analysis: Analysis, path: str) -> list[lsp.Diagnostic]:
    """Every diagnostic of `analysis` the file at `path` shows: those in it, and, when `path` is the
    analysed buffer, those in other files that checking it met, placed where this buffer led to them."""
    shown: list[lsp.Diagnostic] = []
    is_buffer = same_file(path, analysis.path)
    for d in analysis.diagnostics:
        if d.span is not None and same_file(d.span.path, path):
            shown.append(convert(d, analysis))
        elif is_buffer:
            shown.append(convert_foreign(d, analysis))
    return shown


def convert(d: Diagnostic, analysis: Analysis) -> lsp.Diagnostic:
    """A diagnostic in its own file (its span's)."""
    assert d.span is not None
    related, plain_notes = _related(d, analysis)
    return _diagnostic(d, _range(d.span, analysis), _message(d, plain_notes), related)


def convert_foreign(d: Diagnostic, analysis: Analysis) -> lsp.Diagnostic:
    """A diagnostic in another file (or in none), shown in the analysed buffer where it led there."""
    related, plain_notes = _related(d, analysis)
    if d.span is None:
        where = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))
        return _diagnostic(d, where, _message(d, plain_notes), related)
    related.insert(0, _location(d.span, analysis, "the error is here"))
    return _diagnostic(d, _range(place_in_buffer(d, analysis), analysis), _message(d, plain_notes, d.span), related)


def place_in_buffer(d: Diagnostic, analysis: Analysis) -> Span:
    """Where the buffer shows a diagnostic of another file: the outermost block call of its trace in
    this buffer (the stage that uses the block), else the `use` line that reads that file, else 1:1."""
    for call, _ in d.trace:
        if same_file(call.path, analysis.path):
            return call
    uses = analysis.module.uses
    if d.span is not None and uses:
        from ..library import _resolve_use  # where `use "blocks.res"` leads, as the library resolved it

        for use in uses:
            target = _resolve_use(analysis.path, use.path)
            if target is not None and same_file(target, d.span.path):
                return use.span
        return uses[0].span
    return Span.point(analysis.path, 1, 1)


def _diagnostic(d: Diagnostic, where: lsp.Range, message: str, related: list) -> lsp.Diagnostic:
    known = d.code in CODES or d.code in WARNINGS
    return lsp.Diagnostic(
        range=where,
        message=message,
        severity=lsp.DiagnosticSeverity.Warning if d.severity == "warning" else lsp.DiagnosticSeverity.Error,
        code=d.code,
        code_description=lsp.CodeDescription(href=code_link(d.code)) if known else None,
        source=SOURCE,
        related_information=related or None,
        data={"help": d.help} if d.help else None,
    )


def _message(d: Diagnostic, notes: Iterable[str], elsewhere: Span | None = None) -> str:
    lines = [f"in {elsewhere}: {d.message}" if elsewhere is not None else d.message]
    lines += [f"note: {note}" for note in notes]
    if d.help:
        lines.append(f"help: {d.help}")
    return "\n".join(lines)


def _related(d: Diagnostic, analysis: Analysis) -> tuple[list[lsp.DiagnosticRelatedInformation], list[str]]:
    """The notes and block calls that name a place, as locations; and the notes that name none."""
    related, plain = [], []
    for note in d.notes:
        found = _LOCATED_NOTE.match(note)
        span = _note_span(found, analysis) if found else None
        if span is None:
            plain.append(note)
        else:
            related.append(_location(span, analysis, note))
    for call, what in d.trace:
        related.append(_location(call, analysis, f"in {what}, instantiated here"))
    return related, plain


def _note_span(found: re.Match, analysis: Analysis) -> Span | None:
    """The place a note names, as a span over the word there (`also defined at blocks.res:3:7`)."""
    shown, line, column = found["path"], int(found["line"]), int(found["column"])
    path = next((p for p in analysis.sources if p == shown or shown_path(p) == shown), None)
    if path is None:
        return None
    lines = analysis.sources[path].split("\n")
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    word = _WORD.match(text, column - 1) if column >= 1 else None
    end = word.end() + 1 if word else column + 1
    return Span(path, line, column, line, end)


def _location(span: Span, analysis: Analysis, message: str) -> lsp.DiagnosticRelatedInformation:
    return lsp.DiagnosticRelatedInformation(
        location=lsp.Location(uri=uri_of(span.path), range=_range(span, analysis)), message=message
    )


def _range(span: Span, analysis: Analysis) -> lsp.Range:
    text = analysis.sources.get(span.path)
    if text is None:
        text = analysis.text if same_file(span.path, analysis.path) else ""
    return to_range(span, text)


def internal_error(reason: str) -> lsp.Diagnostic:
    """The one diagnostic of a buffer resdsl's checker failed on (a bug of resdsl, not of the spec)."""
    return lsp.Diagnostic(
        range=lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=1)),
        message=f"resdsl's checker failed on this file ({reason}); please report it at {ISSUES_PAGE} "
        "with the file, as this is a bug of resdsl, not of the spec",
        severity=lsp.DiagnosticSeverity.Error,
        source=SOURCE,
    )
