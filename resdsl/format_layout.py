"""The rules of `resdsl fmt` (docs/language.md, "Formatting"): indentation, spaces, comments, blank lines.

`layout(lines, marks)` turns the physical lines of a spec that parses (resdsl/format.py) into the
canonical text. Line breaks are the author's; each line's indentation is computed:

- a statement: 4 spaces per open `{`; a line that starts with `}` one level less;
- inside brackets: one column after the opening bracket when something follows it on its line
  (`network resnet(depth = 50,` / `               classes = 1000)`), else one level deeper than the
  opener's line, with the closing bracket back at that line's indentation; a line that continues an
  element (the line before ended inside it, not after a `,`) aligns with the element's value, the part
  after `name =` (resnet.res's `layers = [...] if ... else` / `[...] if ... else ...`);
- a statement continued outside brackets (a chain broken before or after `->`, a line after `=` or a
  `\\` continuation): one level deeper than the statement's first line; after a `,` (`require test,` /
  `"message"`, `output a,` / `b`): under the statement's first argument; `else` at the statement's;
- a comment line: as the code line after it (as the inner lines when that one closes a bracket or brace).

Between tokens one space, except: none before `,` `)` `]` `:` `.` and a call's `(` (`basic(64)`: the
lexer needs it glued), none after `(` `[` `.` and a unary minus, none around an op's keyword `=`
(`conv 64 k3 s=(1 if aa else 2)`, `x 3 stride=2`; in brackets and at the top level: `classes = 1000`),
none before the `[` of an index (`widths[0]`, `convs[i]:`). Trailing comments: two spaces after the
code, aligned across consecutive commented lines (gofmt's rule). At most one blank line in a row, none
at the start, after a `{` or before a `}`; no trailing blanks; one final newline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lark import Token

INDENT = 4
COMMENT_GAP = 2
_CLOSERS = (")", "]")
_CONTINUES = ("->", ",", "=")  # at bracket depth 0 a newline after these does not end the statement


@dataclass
class SourceLine:
    """One physical line of the input: its significant tokens, trailing (or only) comment, and breaks."""

    tokens: list[Token] = field(default_factory=list)
    comment: str | None = None  # `# ...` with trailing blanks (and a CRLF's `\r`) removed
    backslash: bool = False  # ends with a `\` line continuation (the grammar ignores `\` + newline)
    blank_before: bool = False  # at least one blank line separated it from the line before


@dataclass(frozen=True)
class Marks:
    """What the tokens alone do not say, read from the parse tree (offsets of tokens in the text)."""

    unary_minus: frozenset[int]  # `-x`: a negation, written against its operand
    index_open: frozenset[int]  # the `[` of an index or a label's index (`widths[0]`, `convs[i]:`)


@dataclass
class _Bracket:
    """An open `(` or `[` while its contents are laid out (columns are the output's)."""

    column: int
    hanging: bool  # nothing follows the opener on its line: the contents go one level deeper
    line_indent: int  # the indentation of the opener's line: where a closing bracket that starts a line goes
    after_separator: bool = True  # the last token at this level was the opener or a `,`
    element: int = 0  # the column of the current element's first token
    value: int | None = None  # the column of its value (after `name =`); None just after the `=`


@dataclass
class _Line:
    code: str  # the indented code; only the indentation for a comment line
    comment: str | None
    blank_before: bool


def layout(lines: list[SourceLine], marks: Marks) -> str:
    return _Layout(marks).run(lines)


class _Layout:
    def __init__(self, marks: Marks):
        self.marks = marks
        self.braces = 0
        self.brackets: list[_Bracket] = []
        self.statement_indent = 0
        self.statement_argument: int | None = None  # the column of a statement's second token (`require X`)
        self.after_comma = False  # the line before ended with a `,` outside brackets
        self.continues = False  # the line before did not end the statement (`->`, `,`, `=`, `\`)

    def run(self, lines: list[SourceLine]) -> str:
        out: list[_Line] = []
        waiting: list[_Line] = []  # comment lines: indented as the next code line, once it is known
        ends_in_brace = False
        for source in lines:
            blank = source.blank_before and bool(out or waiting) and not ends_in_brace
            if not source.tokens:
                indent = self.indent_of(None)
                line = _Line(" " * indent, source.comment, blank)
                waiting.append(line)
                out.append(line)
                ends_in_brace = False
                continue
            first = source.tokens[0].value
            if first == "}":
                blank = False
            indent = self.indent_of(source.tokens[0])
            if first not in (*_CLOSERS, "}"):  # before a closing line they stay with the lines inside
                for line in waiting:
                    line.code = " " * indent
            waiting = []
            out.append(_Line(self.emit(source, indent), source.comment, blank))
            ends_in_brace = source.tokens[-1].value == "{"
        return _render(out)

    def indent_of(self, first: Token | None) -> int:
        """The indentation of a line that starts with `first` (None: a comment line)."""
        value = first.value if first is not None else None
        if self.brackets:
            top = self.brackets[-1]
            if value in _CLOSERS:
                return top.line_indent
            if top.after_separator:
                return top.line_indent + INDENT if top.hanging else top.column + 1
            return top.value if top.value is not None else top.element + INDENT
        if value == "}":
            return INDENT * max(self.braces - 1, 0)
        if value == "else":
            return INDENT * self.braces
        if self.after_comma and self.statement_argument is not None and value != "->":
            return self.statement_argument  # `require test,` / `"message"`: under the statement's argument
        if self.continues or value == "->":
            return self.statement_indent + INDENT
        return INDENT * self.braces

    def emit(self, source: SourceLine, indent: int) -> str:
        tokens = source.tokens
        first = tokens[0].value
        starts_statement = not self.brackets and (first == "}" or not (self.continues or first in ("->", "else")))
        if starts_statement:
            self.statement_indent = indent
            self.statement_argument = None
        parts = [" " * indent]
        column = indent
        for position, token in enumerate(tokens):
            if position:
                gap = self.gap(tokens[position - 1], token)
                parts.append(gap)
                column += len(gap)
            self.place(token, column, last=position == len(tokens) - 1, indent=indent)
            if starts_statement and position == 1:
                self.statement_argument = column
            parts.append(token.value)
            column += len(token.value)
        if source.backslash:
            parts.append(" \\")
        self.continues = source.backslash or (not self.brackets and tokens[-1].value in _CONTINUES)
        self.after_comma = not source.backslash and not self.brackets and tokens[-1].value == ","
        return "".join(parts)

    def place(self, token: Token, column: int, last: bool, indent: int) -> None:
        """Track braces, brackets and the columns of the elements inside brackets."""
        value = token.value
        if value == "{":
            self.braces += 1
        elif value == "}":
            self.braces -= 1
        elif value in _CLOSERS and token.type in ("RPAR", "RSQB") and self.brackets:
            self.brackets.pop()
        if self.brackets:  # the token belongs to the innermost bracket still open
            top = self.brackets[-1]
            if value == ",":
                top.after_separator = True
            elif value == "=":
                top.value = None
            else:
                if top.after_separator:
                    top.after_separator = False
                    top.element = top.value = column
                elif top.value is None:
                    top.value = column
        if value == "(" or (value == "[" and token.type == "LSQB"):
            self.brackets.append(_Bracket(column, hanging=last, line_indent=indent))

    def gap(self, previous: Token, token: Token) -> str:
        """The blanks between two tokens of one line: "" or one space."""
        if token.type == "CALL_OPEN":  # `basic(64)`: a space would make it a parenthesised argument
            return ""
        if previous.value in ("(", "[") and previous.type in ("CALL_OPEN", "LPAR", "LSQB"):
            return ""
        if token.type in ("RPAR", "RSQB", "COMMA", "COLON", "DOT") or previous.type == "DOT":
            return ""
        if previous.type == "MINUS" and previous.start_pos in self.marks.unary_minus:
            return ""
        if token.type == "LSQB" and token.start_pos in self.marks.index_open:
            return ""
        if "EQUAL" in (previous.type, token.type) and not self.brackets and self.braces > 0:
            return ""  # an op's or a stage's keyword argument: `s=2`, `stride=strides[0]`
        return " "


def _render(lines: list[_Line]) -> str:
    """Blank lines, aligned trailing comments and the final newline."""
    widths = [len(line.code) if line.comment is not None and line.code.strip() else None for line in lines]
    columns: list[int | None] = [None] * len(lines)
    start = 0
    while start < len(lines):  # a run: consecutive lines with code and a trailing comment
        if widths[start] is None:
            start += 1
            continue
        end = start + 1
        while end < len(lines) and widths[end] is not None and not lines[end].blank_before:
            end += 1
        aligned = max(w for w in widths[start:end] if w is not None) + COMMENT_GAP
        columns[start:end] = [aligned] * (end - start)
        start = end
    text: list[str] = []
    for line, column in zip(lines, columns):
        if line.blank_before:
            text.append("\n")
        if line.comment is None:
            text.append(line.code + "\n")
        elif column is None:
            text.append(line.code + line.comment + "\n")
        else:
            text.append(line.code.ljust(column) + line.comment + "\n")
    return "".join(text)
