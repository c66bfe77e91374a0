"""Text -> AST. One cached LALR parser, positions propagated (as miniwdl does).

`parse_module(text, path)` returns a `syntax.SourceFile` or raises `SpecError`
with a located diagnostic. Input that is not text, too large or nested
beyond reason is refused here, before Lark sees it, so nothing downstream can
hang or overflow the Python stack.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from lark import Lark, Token, v_args
from lark.exceptions import UnexpectedInput, VisitError

from . import syntax as ast
from .errors import Diagnostic, Span, SpecError
from .labels import LabelTransformer
from .syntax_errors import syntax_diagnostic

MAX_SOURCE_BYTES = 256 * 1024  # 100x the largest bundled spec (2.7 KB)
# Lark's LALR parser takes ~11 µs a token on the 2-core machine: 256 KiB of `1,1,1,...` is 260,000
# tokens and 3 s of parsing. A 256 KiB spec of ordinary lines has ~75,000 tokens (the largest bundled
# spec, 500), so 100,000 tokens bound a parse to about a second; comments and blank lines cost nothing.
MAX_TOKENS = 100_000
MAX_NESTING = 64


class _TooManyTokens(Exception):
    def __init__(self, token: Token):
        super().__init__(token)
        self.token = token


_HERE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """`grammars/` or `specs/`: inside the installed wheel, else the source tree."""
    for candidate in (_HERE / name, _HERE.parent / name):
        if candidate.is_dir():
            return candidate
    return _HERE / name


class NewlineFilter:
    """Post-lexer that makes newlines mean "end of statement" only where useful.

    Drops a newline inside () or [] brackets, after a token that cannot end a
    statement (`->`, `,`, `=`, `(`), and before a line starting with `->` or
    `else`; collapses runs of newlines into one. (It looks one token ahead,
    which is safe with Lark's basic lexer, whose tokens never depend on the
    parser state.)
    """

    always_accept = ("_NL",)
    _continues = {"->", ",", "=", "(", "["}

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        pending: Token | None = None  # a newline waiting to see the next token
        previous = ""
        for count, token in enumerate(stream):
            if count >= MAX_TOKENS:  # raised from inside the parse, so the cost stays bounded
                raise _TooManyTokens(token)
            if token.type == "_NL":
                if depth == 0 and previous not in self._continues and previous != "":
                    pending = pending or token
                continue
            if pending is not None and token.value not in ("->", "else"):
                yield pending
            pending = None
            if token.value in ("(", "["):
                depth += 1
            elif token.value in (")", "]") and depth > 0:
                depth -= 1
            previous = token.value
            yield token
        if pending is not None:
            yield pending


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = data_dir("grammars") / "resdsl.lark"
    return Lark(
        grammar.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=NewlineFilter(),
        start=["start", "expr"],
        cache=True,
    )


# ---- tree -> AST --------------------------------------------------------------


def _span(path: str, meta) -> Span:
    if getattr(meta, "empty", False) or not hasattr(meta, "line"):
        return Span.point(path, 1, 1)
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def _token_span(path: str, token: Token) -> Span:
    line, column, end_line, end_column = token.line, token.column, token.end_line, token.end_column
    # lark types them optional for tokens built by hand; the lexer positions every token it makes
    assert line is not None and column is not None and end_line is not None and end_column is not None
    return Span(path, line, column, end_line, end_column)


def _integer(digits: str) -> int | float:
    """An integer literal; absurdly long ones become inf, which evaluation reports (E0303)."""
    return int(digits) if len(digits) <= 40 else float("inf")


@v_args(meta=True)
class _ToAst(LabelTransformer):
    """The tree -> AST methods; those of labels, groups and sections are labels.py's."""

    def __init__(self, path: str, text: str = ""):
        super().__init__()
        self.path = path
        self.lines = text.split("\n")

    def s(self, meta) -> Span:
        return _span(self.path, meta)

    def expression_at(self, text: str, line: int, column: int) -> ast.Expr:
        return parse_expression_at(text, self.path, line, column, self.lines)

    # top level
    def start(self, meta, items):
        uses = tuple(i for i in items if isinstance(i, ast.Use))
        defs = tuple(i for i in items if not isinstance(i, ast.Use))
        return ast.SourceFile(self.path, uses, defs)

    def use(self, meta, c):
        return ast.Use(c[0][1:-1], self.s(meta))

    def _template(self, kind, meta, c):
        name, params, body = c
        return ast.Template(kind, str(name), params or (), body, self.s(meta), _token_span(self.path, name))

    def block(self, meta, c):
        return self._template("block", meta, c)

    def network(self, meta, c):
        return self._template("network", meta, c)

    def _alias(self, kind, meta, c):
        name, target, args = c
        return ast.Alias(
            kind,
            str(name),
            str(target),
            _token_span(self.path, target),
            args or (),
            self.s(meta),
            _token_span(self.path, name),
        )

    def block_alias(self, meta, c):
        return self._alias("block", meta, c)

    def network_alias(self, meta, c):
        return self._alias("network", meta, c)

    def params(self, meta, c):
        return tuple(p for p in c if isinstance(p, ast.Param))

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], self.s(meta))

    def body(self, meta, c):
        return ast.Body(tuple(x for x in c if x is not None), self.s(meta))

    # statements
    def input(self, meta, c):
        return ast.Input(c[0], self.s(meta))

    def dims(self, meta, c):
        if len(c) == 1 and isinstance(c[0], Token) and c[0].type == "SHAPE":
            tok = c[0]
            sp = _token_span(self.path, tok)
            return tuple(ast.Number(_integer(part), sp) for part in tok.value.split("x"))
        return tuple(c)

    def shortcut(self, meta, c):
        return ast.Shortcut(c[0], self.s(meta))

    def norm(self, meta, c):
        return ast.Norm(c[0], self.s(meta))

    def chain(self, meta, c):
        return ast.Chain(tuple(c), self.s(meta))

    def call(self, meta, c):
        name, call_args, *rest = c
        repeat = rest.pop() if rest and isinstance(rest[-1], ast.Repeat) else None
        rest = [r for r in rest if r is not None]
        args = tuple(call_args or ()) + tuple(rest)
        return ast.Call(str(name), _token_span(self.path, name), args, repeat, self.s(meta))

    def call_args(self, meta, c):
        return tuple(a for a in c[1:] if a is not None)  # c[0] is the CALL_OPEN token

    def positional(self, meta, c):
        return ast.Arg(None, c[0], self.s(meta))

    def keyword(self, meta, c):
        return ast.Arg(str(c[0]), c[1], self.s(meta))

    def short(self, meta, c):
        tok = c[0]
        sp = _token_span(self.path, tok)
        return ast.Arg(tok.value[0], ast.Number(_integer(tok.value[1:]), sp), sp)

    def oparg(self, meta, c):  # pragma: no cover - every alternative is aliased
        return c[0]

    def repeat(self, meta, c):
        first, *options = c
        if isinstance(first, Token) and first.type == "CALL_OPEN":  # `x(n + 1)`
            count = options.pop(0)
        elif isinstance(first, Token):  # `x3`
            count = ast.Number(_integer(first.value[1:]), _token_span(self.path, first))
        else:  # `x n`
            count = first
        shortcuts = tuple(opt[1] for opt in options if isinstance(opt, tuple))
        args = tuple(opt for opt in options if not isinstance(opt, tuple))
        return ast.Repeat(count, args, shortcuts, self.s(meta))

    def stage_shortcut(self, meta, c):
        return ("shortcut", c[0])

    def stage_option(self, meta, c):  # pragma: no cover - aliased
        return c[0]

    def branches(self, meta, c):
        return ast.Branches(tuple(c[0]), c[1], c[2], self.s(meta))

    def residual(self, meta, c):
        return ast.Residual("add", c[1], self.s(meta), tuple(c[0] or ()), c[2])

    def dense(self, meta, c):
        return ast.Residual("concat", c[1], self.s(meta), tuple(c[0] or ()))

    def defaults(self, meta, c):
        *names, args = c
        return ast.Defaults(tuple((str(n), _token_span(self.path, n)) for n in names), tuple(args), self.s(meta))

    def require(self, meta, c):
        test, message = c
        return ast.Require(test, str(message)[1:-1] if message is not None else None, self.s(meta))

    def cond(self, meta, c):
        return ast.Cond(c[0], c[1], c[2], self.s(meta))

    def tap(self, meta, c):  # `from layer3`
        parts, _ = c[0]
        return ast.Tap(parts, self.s(meta))

    def output(self, meta, c):
        return ast.Output(tuple(c), self.s(meta))

    def output_item(self, meta, c):  # `[KEY:] point`
        key, (parts, span) = c
        return ast.OutputItem(None if key is None else str(key), parts, span, self.s(meta))

    # expressions
    def int(self, meta, c):
        return ast.Number(_integer(c[0]), self.s(meta))

    def float(self, meta, c):
        return ast.Number(float(c[0]) if len(c[0]) <= 400 else float("inf"), self.s(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), self.s(meta))

    def true(self, meta, c):
        return ast.Boolean(True, self.s(meta))

    def false(self, meta, c):
        return ast.Boolean(False, self.s(meta))

    def list(self, meta, c):
        return ast.ListExpr(tuple(x for x in c if x is not None), self.s(meta))

    def binary(self, meta, c):
        return ast.Binary(str(c[1]), c[0], c[2], self.s(meta))

    def compare(self, meta, c):
        return ast.Binary(str(c[1]), c[0], c[2], self.s(meta))

    def contains(self, meta, c):
        return ast.Binary("in", c[0], c[1], self.s(meta))

    def not_contains(self, meta, c):
        return ast.Binary("not in", c[0], c[1], self.s(meta))

    def or_op(self, meta, c):
        return ast.Binary("or", c[0], c[1], self.s(meta))

    def and_op(self, meta, c):
        return ast.Binary("and", c[0], c[1], self.s(meta))

    def not_op(self, meta, c):
        return ast.Unary("not", c[0], self.s(meta))

    def negate(self, meta, c):
        return ast.Unary("-", c[1], self.s(meta))

    def index(self, meta, c):
        return ast.Index(c[0], c[1], self.s(meta))

    def power(self, meta, c):  # `a ** b`: right-associative, the grammar nests it
        return ast.Binary("**", c[0], c[2], self.s(meta))

    def function(self, meta, c):  # `round(x)`: c is NAME, CALL_OPEN, then the arguments (None: none)
        name, _, *args = c
        return ast.Function(
            str(name), _token_span(self.path, name), tuple(a for a in args if a is not None), self.s(meta)
        )

    def comprehension(self, meta, c):  # `[item for a, b in iterable if condition]`
        item, *variables, iterable, condition = c
        return ast.Comprehension(item, tuple(str(v) for v in variables), iterable, condition, self.s(meta))

    def ternary(self, meta, c):
        return ast.Ternary(c[0], c[1], c[2], self.s(meta))


# ---- entry points -------------------------------------------------------------


def read_source(path: str, shown: str | None = None) -> bytes:
    """The bytes of a spec file, refusing one over the size limit before reading it whole.

    At most MAX_SOURCE_BYTES + 1 bytes are read, so a 3 GiB file (or a device that never
    ends) costs no memory and no time. Raises OSError as open() does.
    """
    with open(path, "rb") as handle:
        data = handle.read(MAX_SOURCE_BYTES + 1)
        if len(data) > MAX_SOURCE_BYTES:
            try:  # the real size where the file has one (a regular file); a pipe or device has none
                size = os.fstat(handle.fileno()).st_size
            except OSError:  # pragma: no cover - fstat of an open file does not fail in practice
                size = 0
            raise _too_large(shown or path, size if size > MAX_SOURCE_BYTES else None)
    return data


def _too_large(path: str, size: int | None = None) -> SpecError:
    what = f"is {size:,} bytes" if size is not None else f"holds more than {MAX_SOURCE_BYTES:,} bytes"
    return SpecError(
        [
            Diagnostic(
                "E0105",
                f"file {what}; specs are limited to {MAX_SOURCE_BYTES:,} bytes",
                Span.point(path, 1, 1),
                help="a spec this long is almost certainly not one; split it into files joined by `use`",
            )
        ]
    )


def check_size(text: str, path: str) -> None:
    """The size limit for text given directly (`resdsl.loads`, `--set`), as for files."""
    # UTF-8 takes at least one byte a character: a cheap check first, then the exact one.
    if len(text) > MAX_SOURCE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise _too_large(path, len(text.encode("utf-8", "surrogatepass")))


def decode(data: bytes, path: str) -> str:
    """Bytes -> text, or a located E0101/E0105."""
    if len(data) > MAX_SOURCE_BYTES:
        raise _too_large(path, len(data))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            [
                Diagnostic(
                    "E0101",
                    f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8",
                    Span.point(path, line, column),
                    help="a .res spec is UTF-8 text; is this the right file?",
                )
            ],
            {path: data.decode("utf-8", "replace")},
        ) from None


def parse_module(text: str, path: str) -> ast.SourceFile:
    return _parse(text, path, "start")


def parse_expression(text: str, path: str = "<expr>") -> ast.Expr:
    """Parse one expression (used for `--set key=value`)."""
    return _parse(text, path, "expr")


def parse_expression_at(text: str, path: str, line: int, column: int, lines: list[str]) -> ast.Expr:
    """An expression written at (line, column) of a file, inside a quoted name (`"b{repetition + 1}"`):
    parsed with the file's positions, so that its spans, and a syntax error in it, point into the file."""
    padded = "\n" * (line - 1) + " " * (column - 1) + text  # leading newlines and blanks are dropped
    try:
        return _ToAst(path, padded).transform(parser().parse(padded, start="expr"))
    except UnexpectedInput as exc:
        found = syntax_diagnostic(exc, padded, path, parser())
        if found.code == "E0104":  # the end of the braces, not of the file
            found = replace(found, code="E0103", message="the expression in `{...}` ends too early")
        raise SpecError([found], {path: "\n".join(lines)}) from None


def _parse(text: str, path: str, start: str):
    check_size(text, path)
    _check_nesting(text, path)
    try:
        return _ToAst(path, text).transform(parser().parse(text, start=start))
    except UnexpectedInput as exc:
        raise SpecError([syntax_diagnostic(exc, text, path, parser())], {path: text}) from None
    except _TooManyTokens as exc:
        token = exc.token
        raise SpecError(
            [
                Diagnostic(
                    "E0105",
                    f"more than {MAX_TOKENS:,} tokens",
                    _token_span(path, token),
                    help="a spec this long is almost certainly generated: use a stage "
                    "(`x N`) or a block parameter instead of writing it out",
                )
            ],
            {path: text},
        ) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, SpecError):  # a mistake only the tree shows (labels.py)
            raise exc.orig_exc from None
        _too_deep(exc, text, path)
    except RecursionError as exc:
        _too_deep(exc, text, path)


def _too_deep(exc: Exception, text: str, path: str):
    """Lark recurses once per tree level; a chain of ~300 unbracketed `if`/`else` or
    operators can exhaust the stack (Lark wraps that RecursionError in a VisitError)."""
    if isinstance(exc, VisitError) and not isinstance(exc.orig_exc, RecursionError):
        raise exc
    lines = text.split("\n")  # once: the longest line is where the chain most likely is
    longest = max(range(len(lines)), key=lambda i: len(lines[i]), default=0)
    raise SpecError(
        [
            Diagnostic(
                "E0105",
                "expression too long or too deeply nested to parse",
                Span.point(path, longest + 1, 1),
                help="split it up, e.g. into block parameters, or add brackets to shorten chains",
            )
        ],
        {path: text},
    ) from None


def _check_nesting(text: str, path: str) -> None:
    """Refuse absurd bracket nesting up front (Lark and the AST walk recurse). One pass over the text."""
    depth = 0
    line, line_start = 1, 0
    in_comment = False
    for index, ch in enumerate(text):
        if ch == "\n":
            line, line_start, in_comment = line + 1, index + 1, False
        elif in_comment:
            continue
        elif ch == "#":
            in_comment = True
        elif ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise SpecError(
                    [
                        Diagnostic(
                            "E0105",
                            f"brackets nested more than {MAX_NESTING} deep",
                            Span.point(path, line, index - line_start + 1),
                            help="flatten the expression or split the network into blocks",
                        )
                    ],
                    {path: text},
                )
        elif ch in ")]}":
            depth = max(depth - 1, 0)
