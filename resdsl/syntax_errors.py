"""Syntax errors as diagnostics: what was expected, in words, and a hint.

Lark reports the parser state an error happened in; `match_examples` tells
common mistakes apart by comparing that state with the states small broken
examples fail in.
"""

from __future__ import annotations

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import Diagnostic, Span

_FRIENDLY = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "STRING": "a quoted name or path",  # a quoted part of a label or group name, or what `use` takes
    "SHAPE": "a shape like 3x224x224",
    "SHORT": "an option like k3 or s2",
    "REPEAT": "a repeat like x3",
    "_NL": "end of line",
    "$END": "end of file",
    "SECTION": "`stem` or `head`",
    "CALL_OPEN": "`(`",
    "COMPARE": "a comparison",
    "MUL_OP": "`*` or `/`",
    "PLUS": "`+`",
    "MINUS": "`-`",
    "POW": "`**`",
}


def _describe(terminal: str, parser: Lark) -> str:
    if terminal in _FRIENDLY:
        return _FRIENDLY[terminal]
    try:
        pattern = parser.get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"`{pattern.value}`" if pattern.type == "str" else terminal.lower()


def _expected(names, parser: Lark) -> str:
    words = sorted({_describe(n, parser) for n in names})
    if len(words) > 8:
        words = words[:8] + ["…"]
    return ", ".join(words)


def syntax_diagnostic(exc: UnexpectedInput, text: str, path: str, parser: Lark) -> Diagnostic:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        assert pos is not None  # lark's lexer sets it on every UnexpectedCharacters
        ch = text[pos] if pos < len(text) else "?"
        shown = repr(ch)[1:-1] if not ch.isprintable() else ch
        return Diagnostic(
            "E0102",
            f"unexpected character `{shown}`",
            Span.point(path, exc.line, exc.column),
            notes=(f"expected {_expected(exc.allowed, parser)}",) if exc.allowed else (),
            help=_hint_for_character(ch),
        )
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text.split("\n")
        line = len(lines)
        span = Span.point(path, line, len(lines[-1]) + 1)
        return Diagnostic(
            "E0104",
            "unexpected end of file",
            span,
            notes=(f"expected {_expected(exc.expected, parser)}",),
            help="a `{` is probably not closed" if text.count("{") > text.count("}") else None,
        )
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    span = (
        Span(path, tok.line, tok.column, tok.end_line, tok.end_column)
        if tok.line is not None
        else Span.point(path, 1, 1)
    )
    shown = tok.value if len(tok.value) <= 40 else tok.value[:40] + "…"
    what = "end of line" if tok.type == "_NL" else f"`{shown}`"
    return Diagnostic(
        "E0103",
        f"unexpected {what}",
        span,
        notes=(f"expected {_expected(exc.expected, parser)}",),
        help=_hint_for_token(exc, tok, parser),
    )


def _hint_for_character(ch: str) -> str | None:
    if ch in "'":
        return "paths in `use` are written in double quotes"
    if ch == ";":
        return "statements end at the end of a line; chain ops with `->`"
    return None


# Common mistakes, recognised by the parser state they fail in (Lark's match_examples).
# match_examples compares stack depth too, and a body's first, second and later
# statements sit at different depths, so each body mistake is tried at all three.
_BODY_MISTAKES: dict[str, list[str]] = {
    "a chain cannot end with `->`: remove it or add the next op": ["fc 8 ->\n}", "fc 8 -> }"],
    "a repeat needs a count: `x3` or `x n`": ["b(1) x\n}", "b(1) x }"],
    "separate arguments with commas: `basic(64, stride=2)`": ["b(1 2)\n}"],
    "is a `}` missing before this line?": ["fc 8\nnetwork m {\n}", "fc 8\nblock c() {\n}"],
}
_TOP_MISTAKES: dict[str, list[str]] = {
    "a parameter needs a value after `=`": ["block b(w =) {\n}", "network n(w = ) {\n}"],
    "a block needs a parameter list, even an empty one: `block name() { ... }`": ["block b {\n}"],
    "ops belong inside `network name { ... }` or `block name() { ... }`": [
        "fc 8\n",
        "input 3x8x8\n",
        "conv 8 k3 -> relu\n",
    ],
}


def _mistakes() -> dict[str, list[str]]:
    examples = {label: list(texts) for label, texts in _TOP_MISTAKES.items()}
    for label, snippets in _BODY_MISTAKES.items():
        examples[label] = [
            head + " {\n" + "fc 8\n" * k + snippet
            for snippet in snippets
            for head in ("network n", "block b()")
            for k in range(3)
        ]
    return examples


_SHORTHANDS = {"k": "kernel", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}


def _hint_for_token(exc: UnexpectedToken, tok: Token, parser: Lark) -> str | None:
    if tok.type == "SHORT":  # `-> s1`, or `s2` on a line of its own: the shorthand out of place
        option, value = _SHORTHANDS[tok.value[0]], tok.value[1:]
        return (
            f"`{tok.value}` is the shorthand for `{option}={value}`: it follows an op's arguments on the "
            f"same line, as in `conv 64 k3 {tok.value}`, or a stage's repeat, as in `basic(64) x2 {tok.value}`; "
            f'as a name (timm\'s stage `{tok.value}`) it is quoted: `"{tok.value}"`'
        )
    try:
        label = exc.match_examples(
            lambda text: parser.parse(text, start="start"),
            _mistakes(),
            token_type_match_fallback=True,
            use_accepts=True,
        )
    except Exception:  # pragma: no cover - a hint is a nicety; never let it mask the error
        label = None
    if label:
        return label
    if tok.type == "SHAPE" and len(set(tok.value.split("x"))) == 1 and tok.value.count("x") == 1:
        k = tok.value.split("x")[0]
        return f"write a {k}×{k} kernel as `k{k}` (`conv 64 k{k}`); `{tok.value}` is a shape, as in `input 3x32x32`"
    if tok.value == "x" or tok.type == "REPEAT":
        return 'a repeat (`x3`) follows a block call, e.g. `layer1: basic(64) x3`; as a name it is quoted: `"x3"`'
    return None
