"""`resdsl.format.format_text`: the canonical layout, rule by rule; meaning, comments and idempotence kept.

- each rule of docs/language.md's "Formatting" section, on exact strings;
- properties over generated networks (resdsl.testing) and the bundled specs: formatting twice changes
  nothing, the AST (spans aside) and every comment with its line are kept, and any change of the
  optional blanks, of the indentation or of the line endings formats to the same text;
- text that does not parse raises parse_module's own SpecError;
- the LSP edits (resdsl.format_edits) turn the text into the formatted one.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resdsl.errors import Span, SpecError
from resdsl.format import _all_tokens, _kind, format_text
from resdsl.format_edits import TextEdit, formatting_edits
from resdsl.parse import parse_module
from resdsl.testing import networks
from resdsl.testing.broken import bundled_sources, mutated_sources

NET = "network n {{\n    input 3x8x8\n{}}}\n"


def body(*lines: str) -> str:
    """A network around the statements `lines` (each a line of its own, as written)."""
    return NET.format("".join(line + "\n" for line in lines))


RULES = [
    # spaces between tokens: one, except around these
    ("conv   64  k3   s2->bn->  relu", "    conv 64 k3 s2 -> bn -> relu"),
    ("layer1 :basic( 64 )x3 s2", "    layer1: basic(64) x3 s2"),
    ("basic(64 , s=2) x 3", "    basic(64, s = 2) x 3"),
    ("conv 64 k3 s = (1 if 2>1 else 2)", "    conv 64 k3 s=(1 if 2 > 1 else 2)"),
    ("basic(64) x 2 stride = 2 shortcut  B", "    basic(64) x 2 stride=2 shortcut B"),
    ("conv (8*2) k3", "    conv (8 * 2) k3"),  # the space before `(` is the lexer's: an argument, not a call
    ("conv(8*2, k=3)", "    conv(8 * 2, k = 3)"),
    ("conv 8+-2 k3 p=-1", "    conv 8 + -2 k3 p=-1"),
    ("conv - 8 + 16 k3", "    conv -8 + 16 k3"),  # the first argument of an op: a negation
    ("conv 2**3 k1", "    conv 2 ** 3 k1"),
    ("conv 4 *2 //1 % 9 k1", "    conv 4 * 2 // 1 % 9 k1"),
    ("conv [ 8 , 16 ][ 0 ] k1", "    conv [8, 16][0] k1"),
    ("convs [ 0 ] . b : conv 8 k1", "    convs[0].b: conv 8 k1"),
    ('trunk . "b-0" [1]: conv 8 k1', '    trunk."b-0"[1]: conv 8 k1'),
    ("stem{conv 8 k3}", "    stem { conv 8 k3 }"),
    ("g { }", "    g { }"),
    ("residual{conv 3 k3}shortcut{ }", "    residual { conv 3 k3 } shortcut { }"),
    ("conv 8 k3\t\t# tabs", "    conv 8 k3  # tabs"),
    ("conv (round(8/3)) k1", "    conv (round(8 / 3)) k1"),
    ("conv [w for w in [8,16] if w>8][0] k1", "    conv [w for w in [8, 16] if w > 8][0] k1"),
    ("conv (8 if not true and 1 in [1] else 16) k1", "    conv (8 if not true and 1 in [1] else 16) k1"),
]


@pytest.mark.parametrize(("line", "expected"), RULES, ids=[r[0] for r in RULES])
def test_spacing_rule(line, expected):
    assert format_text(body(line)) == body(expected)


def test_top_level_spacing_and_shapes():
    text = 'use   "blocks.res"\nnetwork  a( w=8 ,c = 2){\ninput 3 x w x w\nconv w k3}\nnetwork b=a( w = 16 )\n'
    assert format_text(text) == (
        'use "blocks.res"\nnetwork a(w = 8, c = 2) {\n    input 3 x w x w\n    conv w k3 }\nnetwork b = a(w = 16)\n'
    )
    assert format_text("network a {\n  input 3x224x224\n}\n") == "network a {\n    input 3x224x224\n}\n"


def test_indentation_per_brace_and_closing_lines():
    text = "network n {\ninput 3x8x8\n  stem {\n        if true {\n conv 8 k3\n      } else {\nconv 8 k1\n}\n   }\n}\n"
    assert format_text(text) == (
        "network n {\n    input 3x8x8\n    stem {\n        if true {\n            conv 8 k3\n"
        "        } else {\n            conv 8 k1\n        }\n    }\n}\n"
    )


def test_continuation_lines():
    text = (
        "network n(a = 1,\n b = [1,\n 2],\n   c =\n 3) {\n"
        "input 3x8x8\n conv 8 k3 ->\nbn\n -> relu\n"
        "require a > 0,\n"
        '"a must be positive"\n'
        "  output  0: a,\n 1: b\n"
        "basic(f(\n1,\n2\n)) x1\n"
        "}\n"
    )
    assert format_text(text) == (
        "network n(a = 1,\n"
        "          b = [1,\n"
        "               2],\n"
        "          c =\n"
        "              3) {\n"
        "    input 3x8x8\n"
        "    conv 8 k3 ->\n"
        "        bn\n"
        "        -> relu\n"
        "    require a > 0,\n"
        '            "a must be positive"\n'
        "    output 0: a,\n"
        "           1: b\n"
        "    basic(f(\n"
        "        1,\n"
        "        2\n"
        "    )) x1\n"
        "}\n"
    )


def test_a_continued_element_aligns_with_its_value():
    text = "network n(layers = [1] if true else\n[2] if false else\n  [3]) {\n    input 3x8x8\n}\n"
    assert format_text(text) == (
        "network n(layers = [1] if true else\n"
        "                   [2] if false else\n"
        "                   [3]) {\n    input 3x8x8\n}\n"
    )


def test_backslash_continuations():
    assert format_text(body("conv 8\\\nk3")) == body("    conv 8 \\\n        k3")
    assert format_text(body("conv 8 k3 \\   \n\nrelu")) == body("    conv 8 k3\n\n    relu")  # a `\` before a blank
    assert format_text(body("conv 8 \\\n# note\nrelu")) == body("    conv 8", "    # note", "    relu")


def test_comments_lines_and_trailing_comments():
    text = "# top\nnetwork n {   # the net\n# inside\ninput 3x8x8 # a\nconv 8 k3      # b\n"
    text += "\nrelu # c\n  # last\n}\n# end\n"
    assert format_text(text) == (
        "# top\nnetwork n {  # the net\n    # inside\n    input 3x8x8  # a\n    conv 8 k3    # b\n\n"
        "    relu  # c\n    # last\n}\n# end\n"
    )
    # a comment line takes the indentation of the code line after it: a continuation's, too
    assert format_text(body("conv 8 k3", "# then", "-> relu")) == body(
        "    conv 8 k3", "        # then", "        -> relu"
    )


def test_blank_lines():
    text = "\n\nnetwork n {\n\n    input 3x8x8\n\n\n\n    conv 8 k3\n\n}\n\n\n\nnetwork m {\n    input 3x8x8\n}"
    assert format_text(text) == (
        "network n {\n    input 3x8x8\n\n    conv 8 k3\n}\n\nnetwork m {\n    input 3x8x8\n}\n"
    )


def test_line_endings_tabs_and_trailing_blanks():
    text = "network n {\r\n\tinput 3x8x8   \r\n\tconv 8 k3\t# tab\t \r\n}"
    assert format_text(text) == "network n {\n    input 3x8x8\n    conv 8 k3  # tab\n}\n"
    assert format_text("") == "" and format_text("\n\n  \n") == ""
    assert format_text("# only a comment") == "# only a comment\n"


def test_strings_are_never_touched():
    text = 'network n {\n    input 3x8x8\n    "a  b{ 1 +2 }":   conv 8 k3\n    require true,   "x  ,  y"\n}\n'
    assert format_text(text) == (
        'network n {\n    input 3x8x8\n    "a  b{ 1 +2 }": conv 8 k3\n    require true, "x  ,  y"\n}\n'
    )


@pytest.mark.parametrize(
    "text",
    [
        "network n {\n    conv 8 k3 ->\n}\n",
        "network n {\n    conv (8 k3\n}\n",
        "block = 3\n",
        "network n {\n  x3: conv 8\n}\n",
    ],
)
def test_text_that_does_not_parse_raises_the_parsers_error(text):
    with pytest.raises(SpecError) as expected:
        parse_module(text, "bad.res")
    with pytest.raises(SpecError) as raised:
        format_text(text, "bad.res")
    assert raised.value.render() == expected.value.render()
    assert "bad.res:" in raised.value.render()


# ---- properties -----------------------------------------------------------------


def stripped(node):
    """An AST without its spans: what the text means, not where it is written."""
    if isinstance(node, Span):
        return None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(stripped(getattr(node, f.name)) for f in dataclasses.fields(node))
    if isinstance(node, (tuple, list)):
        return tuple(stripped(item) for item in node)
    return node


def attached_comments(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each comment with the code tokens of its line (none: a comment line), in order."""
    found, line = [], []
    for token in _all_tokens(text):
        kind = _kind(token)
        if kind == "token":
            line.append(token.value)
        elif kind == "comment":
            found.append((token.value.rstrip(), tuple(line)))
        elif kind in ("newline", "backslash"):
            line = []
    return found


def check_formatted(text: str) -> str:
    formatted = format_text(text)
    assert format_text(formatted) == formatted, "not idempotent"
    assert stripped(parse_module(formatted, "x.res")) == stripped(parse_module(text, "x.res"))
    assert attached_comments(formatted) == attached_comments(text)
    assert all(line == line.rstrip() for line in formatted.split("\n"))
    assert formatted == "" or (formatted.endswith("\n") and not formatted.endswith("\n\n"))
    assert "\n\n\n" not in formatted and "\t" not in formatted.replace("#", "\n#").split("#")[0]
    return formatted


@st.composite
def commented(draw, text: str) -> str:
    """`text` with comments added at the ends of lines and as lines of their own."""
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines):
        if line.strip() and not line.rstrip().endswith("\\") and draw(st.integers(0, 3)) == 0:
            line += draw(st.sampled_from([" ", "", "\t", "     "])) + f"# c{number} x  y"
        out.append(line)
        if number < len(lines) - 1 and draw(st.integers(0, 5)) == 0:
            out.append(draw(st.sampled_from(["", "  ", "\t"])) + f"#line {number}")
    return "\n".join(out)


def _glue_safe(left: str, right: str) -> bool:
    """Whether two tokens written without a blank between them still lex as the same two tokens."""
    joined = [(t.type, t.value) for t in _all_tokens(left + right)]
    separate = [(t.type, t.value) for t in _all_tokens(left)] + [(t.type, t.value) for t in _all_tokens(right)]
    return joined == separate


@st.composite
def reblanked(draw, text: str) -> str:
    """`text` with every optional blank changed: blanks between tokens removed, doubled or made tabs,
    indentation changed, trailing blanks added; the line endings CRLF or not. Never a change of tokens."""
    tokens = _all_tokens(text)
    out = []
    previous = None
    for token in tokens:
        kind = _kind(token)
        if kind == "blank":
            continue
        if kind == "newline":
            pieces = token.value.split("\n")
            indents = [draw(st.sampled_from(["", " ", "  ", "\t", "        "])) for _ in pieces[1:]]
            out.append(draw(st.sampled_from(["", " ", "\t"])) + "".join("\n" + i for i in indents))
            previous = None
            continue
        if previous is not None:
            gap = draw(st.sampled_from(["", " ", "  ", "\t"]))
            if kind == "comment" or token.type == "CALL_OPEN" or (not gap and not _glue_safe(previous, token.value)):
                gap = "" if token.type == "CALL_OPEN" else " "
            out.append(gap)
        out.append(token.value)
        previous = token.value if kind == "token" else None
    result = "".join(out)
    return result.replace("\n", "\r\n") if draw(st.booleans()) else result


SOURCES = st.one_of(networks(outputs=True, upsampling=True).map(lambda spec: spec.source), bundled_sources())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_formatting_is_idempotent_and_keeps_meaning_and_comments(data):
    text = data.draw(SOURCES.flatmap(commented))
    check_formatted(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_blanks_indentation_and_line_endings_do_not_change_the_result(data):
    text = data.draw(SOURCES.flatmap(commented))
    changed = data.draw(reblanked(text))
    assert format_text(changed) == format_text(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated_sources())
def test_damaged_text_formats_or_raises_the_parsers_error(text):
    """Odd but valid text (a token doubled, a keyword inserted, brackets deep) formats, keeping its meaning."""
    try:
        parse_module(text, "x.res")
    except SpecError as exc:
        with pytest.raises(SpecError) as raised:
            format_text(text, "x.res")
        assert raised.value.render() == exc.render()
        return
    check_formatted(text)


# ---- the LSP edits ---------------------------------------------------------------


def apply(text: str, edits: list[TextEdit]) -> str:
    """Apply LSP edits (UTF-16 characters, lines broken at \\n, \\r\\n or \\r), last first."""
    lines = re.split(r"(?<=\r\n)|(?<=\n)(?<!\r\n)|(?<=\r)(?!\n)", text)

    def offset(line: int, character: int) -> int:
        start = sum(len(item) for item in lines[:line])
        units = lines[line].encode("utf-16-le")[: 2 * character].decode("utf-16-le") if line < len(lines) else ""
        return start + len(units)

    for edit in reversed(edits):
        start, end = offset(edit.start_line, edit.start_character), offset(edit.end_line, edit.end_character)
        text = text[:start] + edit.new_text + text[end:]
    return text


@pytest.mark.parametrize(
    "text",
    [
        "network n {\n    input 3x8x8\n  conv 8 k3   # ok\n    relu\n}\n",
        "network n {\n    input 3x8x8 # é𝄞 wide\n    conv   8 k3\n}",  # no final newline, astral characters
        "network n {\r\n\tinput 3x8x8\r\n}\r\n",
        "network n {\n    input 3x8x8 # a\rb\n  relu\n}\n",  # a lone \r in a comment: an LSP line break
    ],
)
def test_lsp_edits_turn_the_text_into_the_formatted_one(text):
    edits = formatting_edits(text)
    assert edits and apply(text, edits) == format_text(text)
    positions = [(e.start_line, e.start_character, e.end_line, e.end_character) for e in edits]
    assert positions == sorted(positions)
    assert formatting_edits(format_text(text)) == []


def test_lsp_edits_replace_only_the_lines_that_change():
    text = "network n {\n    input 3x8x8\n  conv 8 k3\n    relu\n}\n"
    assert formatting_edits(text) == [TextEdit(2, 0, 3, 0, "    conv 8 k3\n")]
    with pytest.raises(SpecError):
        formatting_edits("network n {\n")


# ---- the bundled specs and the docs are formatted ------------------------------------


ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```([A-Za-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)  # as tests/test_docs_language.py
HEADING = re.compile(r"^## (E\d{4}):", re.M)
DIRECTIVE = re.compile(r"#\s*error:\s*(E\d{4})")
SPEC_FILES = sorted((ROOT / "specs").glob("*.res")) + sorted((ROOT / "tests" / "data").glob("*.res"))
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bundled_specs_are_formatted(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text, str(path)) == text, f"run `resdsl fmt {path.relative_to(ROOT)}`"


def res_examples(doc: Path) -> list[tuple[int, str, str | None]]:
    """(line, text, the error code it is written to show) of each ```res block of a page."""
    page = doc.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(page):
        if match.group(1) != "res":
            continue
        body = match.group(2)
        directive = DIRECTIVE.match(body)
        headings = HEADING.findall(page, 0, match.start())  # docs/errors.md: the section's code
        code = directive.group(1) if directive else (headings[-1] if doc.name == "errors.md" and headings else None)
        found.append((page.count("\n", 0, match.start()) + 1, body, code))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_examples_are_formatted(doc):
    examples = res_examples(doc)
    unformatted, unparsed = [], []
    for line, text, code in examples:
        try:
            if format_text(text, f"{doc.name}:{line}") != text:
                unformatted.append(line)
        except SpecError as exc:  # only an example written to show this syntax error may fail to parse
            codes = {d.code for d in exc.diagnostics}
            if codes != {code}:
                unparsed.append((line, codes, code))
    assert not unformatted, f"{doc.name}: the ```res blocks at lines {unformatted} are not in resdsl fmt's layout"
    assert not unparsed, f"{doc.name}: examples that do not parse, and do not say so: {unparsed}"
    if doc.name in ("README.md", "language.md", "errors.md"):
        assert examples


def test_the_languages_formatting_example():
    """docs/language.md, "Formatting": the ```text block before, formatted, is the ```res block after it."""
    page = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    section = page[page.index("## 26. Formatting: `resdsl fmt`") :]
    blocks = [(m.group(1), m.group(2)) for m in FENCE.finditer(section)]
    (before_lang, before), (after_lang, after) = blocks[0], blocks[1]
    assert (before_lang, after_lang) == ("text", "res") and before != after
    assert format_text(before) == after
