"""Source spans, diagnostics and their rustc-style rendering.

Every error resdsl reports, syntax or semantic, is a `Diagnostic`: a stable
code (listed in docs/errors.md), a message, the span it points at, optional
`note:` / `help:` lines, and the chain of block instantiations that led there.
`SpecError` carries one or more of them together with the source texts needed
to draw the caret lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# One line per code: docs/errors.md has an example and the fix for each, and a
# test checks that every code listed here is documented and reachable.
CODES: dict[str, str] = {
    "E0101": "file is not UTF-8 text",
    "E0102": "unexpected character",
    "E0103": "unexpected token",
    "E0104": "unexpected end of file",
    "E0105": "input too large or too deeply nested",
    "E0201": "unknown name",
    "E0202": "unknown op or block",
    "E0203": "unknown parameter or option",
    "E0204": "wrong number of arguments",
    "E0205": "duplicate definition",
    "E0206": "duplicate name in scope",
    "E0207": "network not found",
    "E0208": "construct not allowed here",
    "E0209": "missing or repeated input statement",
    "E0210": "name reserved by PyTorch or Python",
    "E0211": "a requirement of a block or network does not hold",
    "E0212": "an op whose result reaches no output",
    "E0213": "a construct `--emit python` cannot write yet",
    "E0301": "result is not a whole number",
    "E0302": "wrong type of value",
    "E0303": "value out of range",
    "E0304": "division by zero",
    "E0305": "index out of range",
    "E0306": "argument outside a function's domain",
    "E0401": "shapes of a residual add do not match",
    "E0402": "groups do not divide channels",
    "E0403": "spatial size below 1",
    "E0404": "concat with different spatial sizes",
    "E0405": "fully connected layer on a feature map",
    "E0406": "op needs a feature map but got a vector",
    "E0407": "the shortcut's stride does not land on the main path's size",
    "E0408": "channels do not split into equal branches",
    "E0409": "branches cannot be merged",
    "E0410": "a standardised filter of one weight",
    "E0411": "a per-axis argument does not fit the spatial axes",
    "E0412": "a resampling mode for another rank",
    "E0413": "a channel slice or split beyond the input's channels",
    "E0414": "a spatial size that the block size does not divide",
    "E0501": "import cycle",
    "E0502": "imported file not found",
    "E0503": "recursion among blocks",
    "E0504": "network too large",
    "E0505": "more parameters than --max-params",
    "E0506": "tensors too large for memory",
    "E0601": "checkpoint does not match the spec",
    "E0602": "not a readable checkpoint",
    "E0603": "the deployed network is not proven equal to the trained one",
}

# Warnings: the spec is valid and compiles, but probably does not say what was meant. A warning
# never fails a command; `check` prints it after the network's line (docs/errors.md, "Warnings").
WARNINGS: dict[str, str] = {
    "W0201": "a group named like a keyword",
    "W0202": "an argument replaces a value an alias binds",
    "W0401": "a non-overlapping pool pads its input",
}


# The bundled library (resdsl/specs in the wheel, specs/ in the source tree): a file of it is shown by
# its name, as `use "blocks.res"` writes it, never as a path of the machine it is installed on.
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_BUNDLED = tuple(os.path.join(root, "specs") + os.sep for root in (_PACKAGE, os.path.dirname(_PACKAGE)))


def shown_path(path: str) -> str:
    """`path` as diagnostics show it: a bundled spec by its file name, anything else as it is."""
    if not path.startswith("<") and os.path.abspath(path).startswith(_BUNDLED):
        return os.path.basename(path)
    return path


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; lines and columns count from 1."""

    path: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{shown_path(self.path)}:{self.line}:{self.column}"

    @staticmethod
    def point(path: str, line: int, column: int) -> Span:
        return Span(path, line, column, line, column + 1)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    notes: tuple[str, ...] = ()
    help: str | None = None
    # (span, description) of each block call that led here, outermost first.
    trace: tuple[tuple[Span, str], ...] = ()

    @property
    def severity(self) -> str:
        return "warning" if self.code in WARNINGS else "error"

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.span.path if self.span else None,
            "line": self.line,
            "column": self.column,
            "notes": list(self.notes),
            "help": self.help,
        }


class ResdslError(Exception):
    """The base of every error resdsl raises on purpose: catch this one to catch them all."""


class Problem(ResdslError):
    """A problem found while working something out (a value, a shape), not yet reported.

    The stage that catches it turns it into a Diagnostic: at `span` where the problem knows its
    place (an argument: EvalError), else at the graph node it was raised for (ShapeError).
    """

    def __init__(
        self, code: str, message: str, span: Span | None = None, help: str | None = None, notes: tuple[str, ...] = ()
    ):
        assert code in CODES, code
        super().__init__(message)
        self.code, self.message, self.span, self.help, self.notes = code, message, span, help, notes


class EvalError(Problem):
    """A located evaluation failure (an expression, an argument, a requirement)."""

    span: Span  # always located, unlike a ShapeError

    def __init__(self, code: str, message: str, span: Span, help: str | None = None, notes: tuple[str, ...] = ()):
        super().__init__(code, message, span, help, notes)


class ShapeError(Problem):
    """A shape rule that does not hold; located at the op it was raised for."""

    def __init__(self, code: str, message: str, help: str | None = None, notes: tuple[str, ...] = ()):
        super().__init__(code, message, None, help, notes)


class UsageError(ResdslError):
    """A command-line mistake (exit code 2), not a spec error."""


class RunError(ResdslError):
    """Bad data, device or run directory for `resdsl train` (exit 1, with this message)."""


class SpecError(ResdslError):
    """Raised by `resdsl.load` / `resdsl.loads` when a spec has errors."""

    def __init__(
        self,
        diagnostics: list[Diagnostic],
        sources: dict[str, str] | None = None,
        warnings: list[Diagnostic] | tuple[Diagnostic, ...] = (),
        total: int | None = None,
    ):
        self.diagnostics = list(diagnostics)  # the errors (at most a limit of them: `total` counts all)
        self.warnings = list(warnings)  # shown after them: a warning can be the cause (`Residual {`)
        self.sources = dict(sources or {})
        self.total = max(total or 0, len(self.diagnostics))
        super().__init__(self.render())

    def render(self) -> str:
        return render_all(self.diagnostics + self.warnings, self.sources, self.total)


@dataclass
class Reporter:
    """Collects diagnostics during one load; de-duplicates repeats.

    A block template with an error is usually instantiated many times (every
    repetition of a stage); the user wants to hear about the line once.
    """

    sources: dict[str, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)  # never fail the load
    limit: int = 50
    attempts: int = 0  # calls of error(), repeats included: tells a caller whether anything went wrong
    _seen: set = field(default_factory=set)

    def error(
        self,
        code: str,
        message: str,
        span: Span | None,
        *,
        notes: tuple[str, ...] | list[str] = (),
        help: str | None = None,
        trace: tuple[tuple[Span, str], ...] = (),
    ) -> None:
        assert code in CODES, code
        self.attempts += 1
        key = (code, span, message)
        if key in self._seen:
            return
        self._seen.add(key)  # counted beyond the limit too: "50 of 312 errors shown"
        if len(self.diagnostics) >= self.limit:
            return
        self.diagnostics.append(Diagnostic(code, message, span, tuple(notes), help, tuple(trace)))

    def warn(
        self,
        code: str,
        message: str,
        span: Span | None,
        *,
        notes: tuple[str, ...] | list[str] = (),
        help: str | None = None,
        trace: tuple[tuple[Span, str], ...] = (),
    ) -> None:
        assert code in WARNINGS, code
        # Once per place, as errors: a pool in a block repeated 20 times is one warning.
        if len(self.warnings) < self.limit and not any(
            (w.code, w.span, w.message) == (code, span, message) for w in self.warnings
        ):
            self.warnings.append(Diagnostic(code, message, span, tuple(notes), help, tuple(trace)))

    @property
    def failed(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_failed(self) -> None:
        if self.diagnostics:
            raise SpecError(
                sorted_by_position(self.diagnostics),
                self.sources,
                sorted_by_position(self.warnings),
                total=len(self._seen),
            )


def sorted_by_position(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """In reading order: files in the order they first appear, then line and column. Diagnostics
    without a place (a command-line mistake) come first; equal places keep the order found."""
    files: dict[str, int] = {}
    for d in diagnostics:
        if d.span is not None:
            files.setdefault(d.span.path, len(files))

    def key(d: Diagnostic) -> tuple:
        if d.span is None:
            return (-1, 0, 0)
        return (files[d.span.path], d.span.line, d.span.column)

    return sorted(diagnostics, key=key)


def render(diag: Diagnostic, sources: dict[str, str]) -> str:
    """Render one diagnostic in the rustc style:

        error[E0401]: message
          --> path:line:col
           |
        12 |     layer2: basic(128) x4 s2
           |     ^^^^^^^^^^^^^^^^^^^^^^^^
           = note: ...
           = help: ...

    A diagnostic raised inside a block template also shows the outermost call
    site (usually the stage line in the user's own file).
    """
    spans = [diag.span] + ([diag.trace[0][0]] if diag.trace else [])
    gutter = max((len(str(s.line)) for s in spans if s is not None), default=1)
    pad = " " * gutter
    out = [f"{diag.severity}[{diag.code}]: {diag.message}"]
    if diag.span is not None:
        out += _snippet(diag.span, sources, gutter)
    for i, (call_span, what) in enumerate(diag.trace):
        out.append(f"{pad} = note: in {what}, instantiated at {call_span}")
        if i == 0:
            out += _snippet(call_span, sources, gutter, arrow=False)
    for note in diag.notes:
        out.append(f"{pad} = note: {note}")
    if diag.help:
        out.append(f"{pad} = help: {diag.help}")
    return "\n".join(out)


def _snippet(span: Span, sources: dict[str, str], gutter: int, arrow: bool = True) -> list[str]:
    pad = " " * gutter
    out = [f"{pad}--> {span}"] if arrow else []
    text = _source_line(sources.get(span.path), span.line)
    if text is None:
        return out
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(text.rstrip())
    end = max(min(end, len(text)), start + 1)
    # Columns count characters of the raw line; re-measure after expanding tabs.
    lead = len(text[:start].expandtabs(4))
    width = max(len(text[:end].expandtabs(4)) - lead, 1)
    out.append(f"{pad} |")
    out.append(f"{span.line:>{gutter}} | {_printable(text.expandtabs(4))}")
    out.append(f"{pad} | {' ' * lead}{'^' * min(width, 200)}")
    return out


def render_all(diagnostics: list[Diagnostic], sources: dict[str, str], total: int | None = None) -> str:
    """The diagnostics and a count; `total` is the number of errors found when fewer are shown."""
    body = "\n\n".join(render(d, sources) for d in diagnostics)
    n = sum(d.severity == "error" for d in diagnostics)
    if total is not None and total > n:
        return f"{body}\n\n{n} of {total:,} errors shown"
    return f"{body}\n\n{n} error{'s' if n != 1 else ''} found" if n else body


def _source_line(text: str | None, line: int) -> str | None:
    if text is None or line < 1:
        return None
    lines = text.split("\n")
    if line > len(lines):
        return None
    return lines[line - 1].rstrip("\r")[:400]


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() or ch == " " else "\N{REPLACEMENT CHARACTER}" for ch in text)
