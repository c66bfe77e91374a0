"""Labels and group names as the parser reads them: a dotted path of parts (the parse side of naming).

    stages[0].blocks: unit(256) x3            # parts `stages` (index 0) and `blocks`
    trunk_output.block1 { "block1-0": ... }    # a dotted group, and a quoted part
    inner_blocks[3][0]: conv 256 k1            # one part, two indices
    shortcut.conv: conv 48 k1 s2               # a keyword timm names modules with

A part is a name, a quoted name, or one of the keywords `stem`, `head`, `norm` and `shortcut`. A
quoted name is any module name PyTorch accepts (a hyphen, a keyword, `s1` that the lexer would read as
the stride shorthand, digits): the one way to write a name the lexer reads as something else, so that
how a line lexes never depends on what follows it. Its text is checked here, where it is written:
PyTorch refuses an empty module name and a dot in one (its path separator), and torch.fx writes a name
that is not an identifier into a Python string (`getattr(self, "block1-0")`), which a backslash or a
control character would change (E0210). Reserved words (`forward`, `class`) are the elaborator's, as
for every name.

Each part may be indexed. The grammar parses the indices as the expression they look like (`[3][0]`
is the list [3] indexed by 0), so that the LALR parser need not choose between a label and an op's
list argument before it sees the `:` or `{`; `_indices` takes that expression apart.

The parts reach the AST as (name, index) pairs, `syntax.LabelParts`; a part's second and later
indices follow it as nameless pairs.
"""

from __future__ import annotations

from typing import NamedTuple

from lark import Transformer, v_args

from . import syntax as ast
from .errors import Diagnostic, Span, SpecError
from .reserved import quoted_name_problem

KEYWORD_PARTS = ("stem", "head", "norm", "shortcut")  # keywords that timm and torchvision name modules with


class _Part(NamedTuple):
    name: str | ast.Interpolation
    indices: tuple[ast.Expr, ...]
    word: str  # "name", "quoted", or the keyword it was written as
    bad: ast.BadName | None = None  # a quoted name that cannot name a module


class Label(tuple):
    """What the `label` rule gives: (parts, span), as `link`, `group` and the points take it, and, for a
    label of one unindexed part, how that part was written (`lone`: "name", "quoted" or the keyword)."""

    lone: str | None = None
    words: tuple[str, ...] = ()  # how each part was written
    bad: ast.BadName | None = None  # the first quoted part that cannot name a module


@v_args(meta=True)
class LabelTransformer(Transformer):
    """The tree -> AST methods of labels, groups and sections (parse._ToAst inherits them)."""

    path: str
    lines: list[str]  # the source text, by line: what a mistaken index looks like, for its message

    def s(self, meta) -> Span:
        raise NotImplementedError  # pragma: no cover - parse._ToAst

    def error(self, code: str, message: str, span: Span, help: str) -> SpecError:
        return SpecError([Diagnostic(code, message, span, help=help)], {self.path: "\n".join(self.lines)})

    def written(self, span: Span) -> str:
        """The source text of a one-line span."""
        if span.line != span.end_line:
            return self.lines[span.line - 1][span.column - 1 :] + " …"
        return self.lines[span.line - 1][span.column - 1 : span.end_column - 1]

    # ---- parts ----------------------------------------------------------------------------------
    def label(self, meta, c) -> Label:
        pairs: list[tuple[str | ast.Interpolation, ast.Expr | None]] = []
        for part in c:
            first, *more = part.indices or (None,)
            pairs.append((part.name, first))
            pairs.extend(("", index) for index in more)
        label = Label((tuple(pairs), self.s(meta)))
        if len(c) == 1 and not c[0].indices:
            label.lone = c[0].word
        label.words = tuple(part.word for part in c)
        label.bad = next((part.bad for part in c if part.bad is not None), None)
        return label

    def label_part(self, meta, c) -> _Part:
        return _Part(str(c[0]), self._indices(c[1], str(c[0])), "name")

    def quoted_part(self, meta, c) -> _Part:
        token = c[0]
        name = token.value[1:-1]
        if "{" in name or "}" in name:  # `"block1-{repetition}"`: made where it is used (naming.py)
            interpolation = self.interpolation(token)
            if not isinstance(interpolation, str):
                return _Part(interpolation, self._indices(c[1], token.value), "quoted")
            name = interpolation  # only `{{` and `}}`: a plain name with braces
        problem = quoted_name_problem(name)
        bad = None
        if problem is not None:  # reported by the elaborator (E0210), with the other errors of the spec
            bad = ast.BadName(
                token.value, problem, Span(self.path, token.line, token.column, token.end_line, token.end_column)
            )
        return _Part(name, self._indices(c[1], token.value), "quoted", bad)

    def expression_at(self, text: str, line: int, column: int) -> ast.Expr:
        """`text`, written at line:column of the file, parsed as an expression (parse.py's parser,
        which sits above this module: the subclass that parse.py makes gives it)."""
        raise NotImplementedError

    def interpolation(self, token) -> ast.Interpolation | str:
        """The pieces of a quoted name with `{expr}` in it, each expression parsed where it is written
        (its spans are the file's); `{{` and `}}` are a brace, as in Python's f-strings. A name with
        only those is the plain name it spells."""
        text = token.value[1:-1]
        pieces: list[str | ast.Expr] = []
        literal, i = "", 0
        column = token.column + 1  # of text[0]
        span = Span(self.path, token.line, token.column, token.end_line, token.end_column)
        while i < len(text):
            ch = text[i]
            if ch in "{}" and text[i + 1 : i + 2] == ch:
                literal, i = literal + ch, i + 2
                continue
            if ch == "}":
                raise self.error(
                    "E0103",
                    "unmatched `}` in a quoted name",
                    Span.point(self.path, token.line, column + i),
                    help="`{expr}` puts a value into the name; `}}` is a brace",
                )
            if ch != "{":
                literal, i = literal + ch, i + 1
                continue
            end = text.find("}", i + 1)
            if end < 0 or not text[i + 1 : end].strip():
                raise self.error(
                    "E0103",
                    "unmatched `{` in a quoted name" if end < 0 else "empty `{}` in a quoted name",
                    Span.point(self.path, token.line, column + i),
                    help='`{expr}` puts a value into the name (`"block1-{repetition}"`); `{{` is a brace',
                )
            if literal:
                pieces.append(literal)
                literal = ""
            pieces.append(self.expression_at(text[i + 1 : end], token.line, column + i + 1))
            i = end + 1
        if literal:
            pieces.append(literal)
        if all(isinstance(piece, str) for piece in pieces):
            return "".join(str(piece) for piece in pieces)
        return ast.Interpolation(tuple(pieces), text, span)

    def section_part(self, meta, c) -> _Part:  # `stem.conv`, `head.fc`: timm's names
        return _Part(str(c[0]), self._indices(c[1], str(c[0])), str(c[0]))

    def norm_part(self, meta, c) -> _Part:  # `norm`: timm's final norm
        return _Part("norm", self._indices(c[0], "norm"), "norm")

    def shortcut_part(self, meta, c) -> _Part:  # `shortcut.conv`: timm's ByobNet and CSPNet blocks
        return _Part("shortcut", self._indices(c[0], "shortcut"), "shortcut")

    def _indices(self, expr: ast.Expr | None, name: str) -> tuple[ast.Expr, ...]:
        """`[3][0]` after a part, parsed as an expression (the list [3] indexed by 0): its indices."""
        if expr is None:
            return ()
        found = []
        while isinstance(expr, ast.Index):
            found.append(expr.index)
            expr = expr.base
        if isinstance(expr, ast.ListExpr) and len(expr.items) == 1 and self.written(expr.span).startswith("["):
            found.append(expr.items[0])
            return tuple(reversed(found))
        raise self.error(
            "E0103",
            f"unexpected `{self.written(expr.span)}` after `{name}` in a name",
            expr.span,
            help="a label or group name is a path of names, each optionally indexed: "
            '`stages[0].blocks`, `inner_blocks[3][0]`, `"block1-0"`; a label ends with `:`',
        )

    # ---- what a label names -----------------------------------------------------------------------
    def link(self, meta, c) -> ast.Link:
        label, element = c
        if label is None:
            return ast.Link(None, None, element, self.s(meta))
        parts, span = label
        text = ".".join(str(name) for name, _ in parts if name)
        return ast.Link(text, span, element, self.s(meta), parts, label.bad)

    def group(self, meta, c) -> ast.Group | ast.Section:
        label, body = c
        parts, span = label
        if label.lone in ("stem", "head"):  # `stem { ... }`: the section, not a group
            return ast.Section(label.lone, body, self.s(meta))
        if label.lone in ("norm", "shortcut"):
            # `}` then `shortcut { ... }` on the next line is most likely a residual's own shortcut, which
            # would otherwise become a group after it: a lone keyword is never a group's name
            meant = (
                "a residual's own shortcut follows its closing brace on the same line: `} shortcut { ... }`"
                if label.lone == "shortcut"
                else "`norm KIND` sets the norm of the body (`norm gn`)"
            )
            raise self.error(
                "E0103",
                f"unexpected `{{` after `{label.lone}`",
                span,
                help=f'{meant}; a group of that name is written `"{label.lone}" {{ ... }}`',
            )
        name = ".".join(str(name) for name, _ in parts if name)
        return ast.Group(name, body, self.s(meta), parts, span, label.words[:1] == ("name",), label.bad)
