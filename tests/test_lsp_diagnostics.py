"""resdsl's diagnostics as LSP diagnostics (resdsl/lsp/diagnostics.py) and the quick fixes their help
lines propose (resdsl/lsp/actions.py), on analyse() results: no server process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from resdsl.errors import CODES, WARNINGS
from resdsl.lsp.actions import code_actions
from resdsl.lsp.analysis import analyse
from resdsl.lsp.diagnostics import anchor, diagnostics_for
from resdsl.lsp.positions import uri_of

DOCS = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
EVERYWHERE = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=10_000, character=0))


def test_every_code_links_to_its_heading_in_docs_errors():
    """GitHub's anchor of each `## CODE: title` heading: lower case, punctuation but `-` and `_`
    dropped, spaces as `-` (the title in docs/errors.md must be the one errors.py lists)."""
    headings = dict(re.findall(r"^## ([EW]\d{4}): (.+)$", DOCS.read_text(encoding="utf-8"), re.M))
    assert set(headings) == set(CODES) | set(WARNINGS)
    for code, title in headings.items():
        slug = re.sub(r"[^\w\- ]", "", f"{code}: {title}".lower()).replace(" ", "-")
        assert anchor(code) == slug, code
    assert anchor("E0213") == "e0213-a-construct---emit-python-cannot-write-yet"


def _shown(text: str, tmp_path: Path, files: dict[str, str] | None = None) -> tuple[list[lsp.Diagnostic], str]:
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(content)
    path = str(tmp_path / "main.res")
    return diagnostics_for(analyse(text, path), path), path


def test_a_note_that_names_a_place_is_a_location(tmp_path):
    """E0205's `also defined at lib.res:1:7` is related information at the name in lib.res."""
    lib = "block unit(w) {\n    conv w k3\n}\n"
    shown, path = _shown('use "lib.res"\nblock unit(w) {\n    conv w k1\n}\n', tmp_path, {"lib.res": lib})
    [d] = shown
    assert d.code == "E0205" and d.range.start == lsp.Position(line=1, character=6)
    [related] = d.related_information
    assert related.location.uri == uri_of(str(tmp_path / "lib.res"))
    assert related.location.range == lsp.Range(
        start=lsp.Position(line=0, character=6), end=lsp.Position(line=0, character=10)
    )  # `unit`
    assert related.message == f"also defined at {tmp_path / 'lib.res'}:1:7"
    assert "note:" not in d.message and d.message.endswith(
        "help: rename one of them; every block and network shares one namespace"
    )


def test_an_error_of_a_used_file_without_a_call_is_shown_at_its_use_line(tmp_path):
    """A syntax error in a used file, met by no block call: at the `use` that reads the file."""
    shown, _ = _shown(
        '# header\nuse "blocks.res"\nuse "lib.res"\nnetwork n {\n    input 3x8x8\n}\n',
        tmp_path,
        {"lib.res": "block b( {\n"},
    )
    [d] = shown
    assert d.code == "E0103" and d.range.start == lsp.Position(line=2, character=0)
    assert d.message.startswith(f"in {tmp_path / 'lib.res'}:1:10: unexpected `{{`")
    assert d.related_information[0].location.uri == uri_of(str(tmp_path / "lib.res"))


def test_the_used_file_shows_its_own_diagnostic_once_without_the_prefix(tmp_path):
    lib = "block unit(w) {\n    conv w k3 g=3\n}\n"
    (tmp_path / "lib.res").write_text(lib)
    analysis = analyse(
        'use "lib.res"\nnetwork n {\n    input 3x8x8\n    conv 8 k3\n    unit(8)\n}\n', str(tmp_path / "main.res")
    )
    [in_lib] = diagnostics_for(analysis, str(tmp_path / "lib.res"))
    assert in_lib.code == "E0402" and in_lib.message.startswith("groups=3")
    assert in_lib.range.start == lsp.Position(line=1, character=4)
    # the trace: the call in main.res that led there
    assert [r.location.uri for r in in_lib.related_information] == [uri_of(str(tmp_path / "main.res"))]


def test_a_warning_and_its_severity(tmp_path):
    shown, _ = _shown("network n {\n    input 3x8x8\n    residul {\n        conv 8 k3\n    }\n}\n", tmp_path)
    [d] = shown
    assert (d.code, d.severity) == ("W0201", lsp.DiagnosticSeverity.Warning)
    assert d.code_description.href.endswith("#w0201-a-group-named-like-a-keyword")
    assert "note: a group runs its body in sequence" in d.message and d.data == {"help": "did you mean `residual`?"}


QUICK = {
    "misspelt op": (
        "network n {\n    input 3x8x8\n    conv 8 k3 -> rleu\n}\n",
        "Change to `relu`",
        [(2, 17, 2, 21, "relu")],
    ),
    "misspelt option": (
        "network n {\n    input 3x8x8\n    conv 8 k3 strid=2\n}\n",
        "Change to `stride`",
        [(2, 14, 2, 19, "stride")],
    ),
    "misspelt name": (
        "network n(width=8) {\n    input 3x8x8\n    conv widht k3\n}\n",
        "Change to `width`",
        [(2, 9, 2, 14, "width")],
    ),
    "misspelt function": (
        "network n(w=8) {\n    input 3x8x8\n    conv mx(w, 2) k3\n}\n",
        "Change to `max`",
        [(2, 9, 2, 11, "max")],
    ),
    "misspelt parameter": (
        "block b(width) {\n    conv width k3\n}\nnetwork n {\n    input 3x8x8\n    b(widht=8)\n}\n",
        "Change to `width`",
        [(5, 6, 5, 11, "width")],
    ),
    "misspelt keyword": (
        "network n {\n    input 3x8x8\n    residul {\n        conv 8 k3\n    }\n}\n",
        "Change to `residual`",
        [(2, 4, 2, 11, "residual")],
    ),
    "missing use": (
        "# my network\n# (two lines of comment)\nnetwork n {\n    input 3x8x8\n    bottleneck(8)\n}\n",
        'Add `use "blocks.res"`',
        [(2, 0, 2, 0, 'use "blocks.res"\n')],
    ),
    "missing use, after the uses": (
        'use "lib.res"\nnetwork n {\n    input 3x8x8\n    basic(8)\n}\n',
        'Add `use "blocks.res"`',
        [(1, 0, 1, 0, 'use "blocks.res"\n')],
    ),
    "kernel as a shape": ("network n {\n    input 3x8x8\n    conv 8 3x3\n}\n", "Write `k3`", [(2, 11, 2, 14, "k3")]),
    "single quotes": (
        "use 'blocks.res'\nnetwork n {\n    input 3x8x8\n}\n",
        "Use double quotes",
        [(0, 4, 0, 16, '"blocks.res"')],
    ),
    "trailing arrow": (
        "network n {\n    input 3x8x8\n    conv 8 k3 ->\n}\n",
        "Remove the trailing `->`",
        [(2, 13, 2, 16, "")],
    ),
    "missing comma": (
        "block b(a, c) {\n    conv a k3\n}\nnetwork n {\n    input 3x8x8\n    b(1 2)\n}\n",
        "Add a comma",
        [(5, 7, 5, 7, ",")],
    ),
    "no parameter list": ("block b {\n    conv 8 k3\n}\n", "Add an empty parameter list `()`", [(0, 7, 0, 7, "()")]),
    "missing brace": (
        "network n {\n    input 3x8x8\n    fc 8\nnetwork m {\n    input 3x8x8\n}\n",
        "Insert `}` before this line",
        [(3, 0, 3, 0, "}\n")],
    ),
}


@pytest.mark.parametrize("case", list(QUICK))
def test_quick_fix(case, tmp_path):
    """Each fix applied to the text removes its diagnostic."""
    text, title, expected = QUICK[case]
    (tmp_path / "lib.res").write_text("block unit(w) {\n    conv w k3\n}\n")
    path = str(tmp_path / "main.res")
    analysis = analyse(text, path)
    actions = {a.title: a for a in code_actions(analysis, uri_of(path), EVERYWHERE)}
    action = actions[title]
    assert action.kind == lsp.CodeActionKind.QuickFix and action.diagnostics
    edits = action.edit.changes[uri_of(path)]
    assert [
        (e.range.start.line, e.range.start.character, e.range.end.line, e.range.end.character, e.new_text)
        for e in edits
    ] == expected
    assert action.is_preferred is (None if title.startswith("Insert") else True)
    fixed = _apply(text, edits)
    fixed_ones = {(d.code, d.message) for d in action_diagnostics(analysis, action)}
    assert fixed_ones
    assert not {(d.code, d.message) for d in analyse(fixed, path).diagnostics} & fixed_ones


def action_diagnostics(analysis, action):
    """The resdsl diagnostics an action fixes (matched by code and message's first line)."""
    wanted = {(d.code, d.message.split("\n")[0]) for d in action.diagnostics}
    return [d for d in analysis.diagnostics if (d.code, d.message) in wanted]


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start = offsets[e.range.start.line] + e.range.start.character
        end = offsets[e.range.end.line] + e.range.end.character
        text = text[:start] + e.new_text + text[end:]
    return text


def test_actions_only_for_the_range_asked(tmp_path):
    text = "network n {\n    input 3x8x8\n    conv 8 k3 -> rleu\n}\nnetwork m {\n    input 3x8x8\n    fc 8 -> rleu\n}\n"
    path = str(tmp_path / "main.res")
    assert len(code_actions(analyse(text, path), uri_of(path), EVERYWHERE)) == 2
    on_line_7 = lsp.Range(start=lsp.Position(line=6, character=0), end=lsp.Position(line=6, character=3))
    [action] = code_actions(analyse(text, path), uri_of(path), on_line_7)
    [edit] = action.edit.changes[uri_of(path)]
    assert edit.range.start.line == 6


def test_no_fix_where_the_help_asks_for_a_decision(tmp_path):
    text = "network n {\n    input 3x8x8\n    shortcut identity\n    conv 8 k3\n"
    text += "    residual {\n        conv 16 k3\n    }\n}\n"
    path = str(tmp_path / "main.res")
    analysis = analyse(text, path)
    assert [d.code for d in analysis.diagnostics] == ["E0401"]
    assert code_actions(analysis, uri_of(path), EVERYWHERE) == []
