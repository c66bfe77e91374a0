"""`resdsl fmt`: the one canonical layout of a .res spec (docs/language.md, "Formatting").

`format_text(text, path)` refuses text that does not parse (the `SpecError` of `parse_module`), then
re-emits the spec's tokens line by line: the author's line breaks are kept (so line numbers, and every
diagnostic that points at one, stay where they were), everything else is decided by rules
(resdsl/format_layout.py): the indentation, the spacing between tokens, the trailing comments' column,
blank lines. Comments and strings are copied unchanged.

The formatter never guesses: it works on the lexer's tokens, and before returning it lexes its own
output and checks that the parser would see the very same tokens and the very same significant
newlines (NewlineFilter's stream). A difference would be a bug here; it raises `FormatterBug` rather
than return text that means something else.
"""

from __future__ import annotations

import bisect
import functools

from lark import Lark, Token, Tree

from .format_layout import Marks, SourceLine, layout
from .parse import NewlineFilter, data_dir, parse_module, parser


class FormatterBug(RuntimeError):
    """The formatted text would lex differently from the input: never returned, always a bug to report."""


def format_text(text: str, path: str = "<string>") -> str:
    """The canonical layout of `text`; raises SpecError (located) if it does not parse."""
    parse_module(text, path)  # the usual located syntax errors; nothing is formatted that does not parse
    tokens = _all_tokens(text)
    marks = _marks(parser().parse(text, start="start"), [t for t in tokens if _kind(t) == "token"])
    formatted = layout(source_lines(tokens), marks)
    _check_same_tokens(tokens, _all_tokens(formatted))
    return formatted


# ---- the input's lines ---------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _raw_lexer() -> Lark:
    """The grammar's lexer without NewlineFilter, so that blanks, comments and `\\` newlines come out too."""
    grammar = (data_dir("grammars") / "resdsl.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="basic", cache=True)


def _all_tokens(text: str) -> list[Token]:
    return list(_raw_lexer().lex(text, dont_ignore=True))


def _kind(token: Token) -> str:
    """The kind of a token: "newline", "comment", "backslash", "blank" (spaces, tabs, form feeds) or "token"."""
    if token.type == "_NL":
        return "newline"
    if token.type == "COMMENT":
        return "comment"
    if token.type.startswith("__IGNORE"):
        return "backslash" if token.value.startswith("\\") else "blank"
    return "token"


def source_lines(tokens: list[Token]) -> list[SourceLine]:
    """The physical lines that hold something (a token or a comment), in order.

    A `\\` continuation that a blank or comment line follows (or the end of the file) is dropped: the
    newline after it ends the statement anyway, so the `\\` means nothing there."""
    lines: list[SourceLine] = []
    current = SourceLine()
    pending_blank = False

    def finish(backslash: bool, newlines: int) -> None:
        nonlocal current, pending_blank
        current.backslash = backslash
        if current.tokens or current.comment is not None:
            current.blank_before = pending_blank
            lines.append(current)
            pending_blank = newlines > 1
        elif not backslash:  # an empty line: it and the newlines after it are blank lines
            pending_blank = pending_blank or newlines > 0
        current = SourceLine()

    for token in tokens:
        kind = _kind(token)
        if kind == "token":
            current.tokens.append(token)
        elif kind == "comment":
            current.comment = token.value.rstrip()
        elif kind == "backslash":
            finish(True, 1)
        elif kind == "newline":
            finish(False, token.value.count("\n"))
    finish(False, 0)
    for line, following in zip(lines, lines[1:] + [None]):
        if line.backslash and (following is None or following.blank_before or not following.tokens):
            line.backslash = False
    return lines


# ---- the parse tree's marks ------------------------------------------------------

_LABEL_PARTS = ("label_part", "quoted_part", "section_part", "norm_part", "shortcut_part")


def _marks(tree: Tree, tokens: list[Token]) -> Marks:
    starts = {t.start_pos: t for t in tokens}
    opens = sorted(t.start_pos for t in tokens if t.value == "[" and t.start_pos is not None)
    unary: set[int] = set()
    index: set[int] = set()
    for node in tree.iter_subtrees():
        if node.data == "negate":
            unary.add(_start(node.children[0]))
        elif node.data == "index":  # `base[i]`: the first `[` after the base (only `)` between them)
            index.add(opens[bisect.bisect_left(opens, _end(node.children[0]))])
        elif node.data in _LABEL_PARTS and node.children and isinstance(node.children[-1], Tree):
            start = _start(node.children[-1])  # `convs[branch]:` (the index is parsed as a list)
            if start in starts and starts[start].value == "[":
                index.add(start)
    return Marks(frozenset(unary), frozenset(index))


def _start(node: Tree | Token) -> int:
    return node.start_pos if isinstance(node, Token) else node.meta.start_pos  # type: ignore[return-value]


def _end(node: Tree | Token) -> int:
    return node.end_pos if isinstance(node, Token) else node.meta.end_pos  # type: ignore[return-value]


# ---- the proof ------------------------------------------------------------------


def _parser_view(tokens: list[Token]) -> list[tuple[str, str]]:
    """The tokens the parser receives (NewlineFilter applied), newlines reduced to their type, less a final one."""
    kept = (t for t in tokens if _kind(t) in ("token", "newline"))
    view = [(t.type, "" if t.type == "_NL" else t.value) for t in NewlineFilter().process(kept)]
    return view[:-1] if view and view[-1][0] == "_NL" else view  # the grammar takes a file with or without


def _comments(tokens: list[Token]) -> list[str]:
    return [t.value.rstrip() for t in tokens if t.type == "COMMENT"]


def _check_same_tokens(before: list[Token], after: list[Token]) -> None:
    if _parser_view(before) != _parser_view(after) or _comments(before) != _comments(after):
        raise FormatterBug("resdsl fmt would change the spec's tokens or comments (a bug: please report it)")
