"""What is where in a .res file: every name the editor features answer about, with its span.

`occurrences(definitions, use_list, lines)` walks syntax trees (resdsl/syntax.py) once and lists
every name written in them, as an `Occurrence`: a definition's name, a parameter, a block or op
call, a keyword argument or shorthand (`stride=`, `k3`), a name in an expression, a builtin
function, a label or group name, a label read by `from` / `output` / `project_from`, a `use` path.
`at(analysis, line, column)` is the innermost one under the cursor; `target_of` resolves one to
where it is defined (`Target`), across the files the buffer uses. Positions are resdsl's (from 1);
positions.py turns them into LSP positions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .. import syntax as ast
from ..errors import Span
from ..library import Library, _resolve_use
from ..ops import OPS
from .analysis import Analysis
from .positions import contains, same_file

# Names an expression may read that no parameter defines: the loop variables the language binds.
BOUND_NAMES = {"repetition": "the index of the repetition in a stage `x N` (0 ...)", "branch": "the branch index"}


@dataclass(frozen=True)
class Occurrence:
    """A name written in a file.

    kind: "definition" (a block's or network's name where it is defined), "param" (in a
    signature), "call" (a block, network or op called, a `defaults` line's or an alias's target),
    "keyword" (an argument's name or shorthand; `owner` is what it is passed to), "name" (read in
    an expression), "function" (a builtin), "label" (a label or group name where it is given),
    "label_ref" (a label read by `from`, `output`, `project_from`), "use" (a `use` path), "section"
    (`stem`, `head`), "construct" (the keyword of `residual`, `dense`, `branches`), "statement"
    (`input`, `output`)."""

    kind: str
    name: str
    span: Span  # the name itself
    definition: ast.Definition | None  # the definition it is written in (None: a `use`)
    node: object = None  # the Call, Param, Link, Group, Use or Arg it belongs to
    owner: str | None = None  # keyword: the op or block called (`residual`, `branches` for theirs)
    local: frozenset[str] = frozenset()  # names a comprehension binds around it
    key: tuple[str, ...] = ()  # a label's or label reference's path: names and literal indices


def label_key(parts: ast.LabelParts) -> tuple[str, ...]:
    """`fpn.inner_blocks[3][0]` -> ("fpn", "inner_blocks", "3", "0"); an index not written as a number
    is "?" (it matches any)."""
    key: list[str] = []
    for name, index in parts:
        if name:
            key.append(str(name))
        if index is not None:
            key.append(str(index.value) if isinstance(index, ast.Number) else "?")
    return tuple(key)


def key_matches(reference: tuple[str, ...], label: tuple[str, ...]) -> bool:
    """A reference names a label when its path is the label's or the start of it (`from fpn.inner_blocks[3]`
    reads the group the label `fpn.inner_blocks[3][0]` lies in)."""
    if not reference or len(reference) > len(label):
        return False
    return all(r == w or "?" in (r, w) for r, w in zip(reference, label))


def _dotted(parts: ast.LabelParts) -> str:
    return ".".join(str(name) for name, _ in parts if name)


def name_span(span: Span, name: str) -> Span:
    """The span of `name` written at the start of `span` (an argument's name, a parameter's)."""
    return Span(span.path, span.line, span.column, span.line, span.column + len(name))


def occurrences(
    definitions: tuple[ast.Definition, ...] | list[ast.Definition],
    uses: tuple[ast.Use, ...] = (),
    lines: list[str] | None = None,
) -> list[Occurrence]:
    """Every name written in `definitions` (and the `uses`), in the order they are written.
    `lines`, the file's text, finds the names a `from` / `output` reads (their spans cover the
    whole statement)."""
    found: list[Occurrence] = [Occurrence("use", u.path, u.span, None, u) for u in uses]
    for definition in definitions:
        found.extend(_definition(definition, lines or []))
    return found


def _definition(d: ast.Definition, lines: list[str]) -> Iterator[Occurrence]:
    yield Occurrence("definition", d.name, d.name_span, d, d)
    if isinstance(d, ast.Alias):
        yield Occurrence("call", d.target, d.target_span, d, d)
        yield from _args(d.args, d, d.target, frozenset())
        return
    for p in d.params:
        yield Occurrence("param", p.name, name_span(p.span, p.name), d, p)
        if p.default is not None:
            yield from _expr(p.default, d, frozenset())
    yield from _body(d.body, d, lines)


def _args(args: tuple[ast.Arg, ...], d: ast.Definition, owner: str | None, local) -> Iterator[Occurrence]:
    for arg in args:
        if arg.name is not None:
            yield Occurrence("keyword", arg.name, name_span(arg.span, arg.name), d, arg, owner)
        yield from _expr(arg.value, d, local)


def _body(body: ast.Body | None, d: ast.Definition, lines: list[str]) -> Iterator[Occurrence]:
    if body is None:
        return
    for s in body.statements:
        if isinstance(s, ast.Chain):
            for link in s.links:
                if link.label is not None and link.label_span is not None:
                    key = label_key(link.label_parts) or (link.label,)
                    yield Occurrence(
                        "label", _dotted(link.label_parts) or link.label, link.label_span, d, link, key=key
                    )
                yield from _element(link.element, d, lines)
        elif isinstance(s, ast.Input):
            yield Occurrence("statement", "input", name_span(s.span, "input"), d, s)
            for dim in s.dims:
                yield from _expr(dim, d, frozenset())
        elif isinstance(s, ast.Shortcut):
            yield from _expr(s.policy, d, frozenset())
        elif isinstance(s, ast.Norm):
            yield from _expr(s.kind, d, frozenset())
        elif isinstance(s, ast.Defaults):
            for block, span in s.blocks:
                yield Occurrence("call", block, span, d, s)
            yield from _args(s.args, d, s.blocks[0][0] if s.blocks else None, frozenset())
        elif isinstance(s, ast.Require):
            yield from _expr(s.test, d, frozenset())
        elif isinstance(s, ast.Output):
            yield Occurrence("statement", "output", name_span(s.span, "output"), d, s)
            for item in s.items:
                yield from _label_ref(item.parts, item.point_span, d, item, lines)


def _element(e: ast.Element, d: ast.Definition, lines: list[str]) -> Iterator[Occurrence]:
    if isinstance(e, ast.Call):
        yield Occurrence("call", e.name, e.name_span, d, e)
        yield from _args(e.args, d, e.name, frozenset())
        if e.repeat is not None:
            yield from _expr(e.repeat.count, d, frozenset())
            yield from _args(e.repeat.options, d, e.name, frozenset())
            for shortcut in e.repeat.shortcuts:
                yield from _expr(shortcut, d, frozenset())
    elif isinstance(e, ast.Group):
        if e.name_span is not None:
            key = label_key(e.parts) or tuple(e.name.split("."))
            yield Occurrence("label", _dotted(e.parts) or e.name, e.name_span, d, e, key=key)
        yield from _body(e.body, d, lines)
    elif isinstance(e, ast.Section):
        yield Occurrence("section", e.kind, name_span(e.span, e.kind), d, e)
        yield from _body(e.body, d, lines)
    elif isinstance(e, ast.Residual):
        yield from _keyword_at(e, d, lines)
        for arg in e.args:
            if arg.name == "project_from" and isinstance(arg.value, ast.Name):
                yield Occurrence("keyword", arg.name, name_span(arg.span, arg.name), d, arg, "residual")
                yield Occurrence("label_ref", arg.value.id, arg.value.span, d, arg, key=(arg.value.id,))
            else:
                yield from _args((arg,), d, "residual", frozenset())
        yield from _body(e.body, d, lines)
        yield from _body(e.shortcut, d, lines)
    elif isinstance(e, ast.Cond):
        yield from _expr(e.test, d, frozenset())
        yield from _body(e.then, d, lines)
        if isinstance(e.orelse, ast.Cond):
            yield from _element(e.orelse, d, lines)
        else:
            yield from _body(e.orelse, d, lines)
    elif isinstance(e, ast.Branches):
        yield from _keyword_at(e, d, lines)
        yield from _args(e.args, d, "branches", frozenset())
        yield from _body(e.body, d, lines)
        yield from _body(e.attend, d, lines)
    elif isinstance(e, ast.Tap):
        yield from _label_ref(e.parts, e.span, d, e, lines)


def _keyword_at(e: ast.Residual | ast.Branches, d: ast.Definition, lines: list[str]) -> Iterator[Occurrence]:
    """The keyword a construct starts with (`residual`, `dense`, `branches`), as a "construct"."""
    if e.span.line <= len(lines):
        word = re.match(r"[A-Za-z_]+", lines[e.span.line - 1][e.span.column - 1 :])
        if word is not None:
            yield Occurrence("construct", word.group(0), name_span(e.span, word.group(0)), d, e)


def _label_ref(parts: ast.LabelParts, span: Span, d: ast.Definition, node, lines: list[str]) -> Iterator[Occurrence]:
    """The label a `from` or `output` reads: its span is found in the text of the statement (the
    dotted path where it is written in one piece, else its first part)."""
    if not parts or not isinstance(parts[0][0], str) or span.line > len(lines):
        return
    first, dotted = parts[0][0], _dotted(parts)
    text = lines[span.line - 1]
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    start = _find_word(text, first, span.column - 1, end)
    if start >= 0:
        width = len(dotted) if text.startswith(dotted, start) else len(first)
        where = Span(span.path, span.line, start + 1, span.line, start + 1 + width)
        yield Occurrence("label_ref", dotted, where, d, node, key=label_key(parts))
    for _, index in parts:
        if index is not None:
            yield from _expr(index, d, frozenset())


def _find_word(text: str, word: str, start: int, end: int) -> int:
    """Where `word` stands alone in text[start:end] (also inside quotes), or -1."""
    at = text.find(word, start, end)
    while at >= 0:
        before = text[at - 1] if at > 0 else " "
        after = text[at + len(word)] if at + len(word) < len(text) else " "
        if not (before.isalnum() or before == "_") and not (after.isalnum() or after == "_"):
            return at
        at = text.find(word, at + 1, end)
    return -1


def _expr(e: ast.Expr | ast.Interpolation, d: ast.Definition, local: frozenset[str]) -> Iterator[Occurrence]:
    if isinstance(e, ast.Name):
        yield Occurrence("name", e.id, e.span, d, e, local=local)
    elif isinstance(e, ast.Function):
        yield Occurrence("function", e.name, e.name_span, d, e)
        for a in e.args:
            yield from _expr(a, d, local)
    elif isinstance(e, ast.Comprehension):
        yield from _expr(e.iterable, d, local)
        inner = local | frozenset(e.variables)
        yield from _expr(e.item, d, inner)
        if e.condition is not None:
            yield from _expr(e.condition, d, inner)
    elif isinstance(e, ast.Interpolation):
        for piece in e.pieces:
            if not isinstance(piece, str):
                yield from _expr(piece, d, local)
    else:
        for child in ast.children(e):
            yield from _expr(child, d, local)


# ---- the buffer's index, and what a name refers to ----------------------------------------------


def buffer_occurrences(analysis: Analysis) -> list[Occurrence]:
    """The buffer's occurrences, listed once per syntax tree (every request of one version shares them).
    Keyed by the tree's identity: two parses of one text are equal but hold different nodes, and the
    checked networks point at their own."""
    key = id(analysis.module)
    held = _BY_TREE.get(key)
    if held is None or held[0] is not analysis.module:
        held = (
            analysis.module,
            occurrences(analysis.module.definitions, analysis.module.uses, analysis.text.splitlines()),
        )
        _BY_TREE[key] = held
        while len(_BY_TREE) > 32:
            del _BY_TREE[next(iter(_BY_TREE))]
    return held[1]


_BY_TREE: dict[int, tuple[ast.SourceFile, list[Occurrence]]] = {}


def at(analysis: Analysis, line: int, column: int) -> Occurrence | None:
    """The occurrence under the cursor (the innermost: the shortest span that holds it)."""
    best: Occurrence | None = None
    for occ in buffer_occurrences(analysis):
        if contains(occ.span, line, column):
            if best is None or _size(occ.span) <= _size(best.span):
                best = occ
    return best


def _size(span: Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column if span.end_line == span.line else 10**6)


@dataclass(frozen=True)
class Target:
    """Where a name is defined: a definition, a parameter, a label, a file, an op or builtin."""

    kind: str  # "definition" | "param" | "label" | "file" | "op" | "function" | "bound" | "word"
    name: str
    span: Span | None  # None: defined by resdsl itself (an op, a builtin, `repetition`)
    node: object = None  # the Definition, Param, Link or Group; the op's OpKind
    path: str | None = None  # "file": the used file's path


def template_of(library: Library | None, name: str) -> ast.Template | None:
    """The template a block or network name stands for, aliases followed."""
    seen: set[str] = set()
    while library is not None and name in library.definitions and name not in seen:
        seen.add(name)
        d = library.definitions[name]
        if isinstance(d, ast.Template):
            return d
        name = d.target
    return None


def param_of(d: ast.Definition | None, name: str) -> ast.Param | None:
    if isinstance(d, ast.Template):
        return next((p for p in d.params if p.name == name), None)
    return None


def labels_of(d: ast.Definition) -> list[Occurrence]:
    """The labels and group names a definition gives, in order."""
    if not isinstance(d, ast.Template):
        return []
    return [o for o in _definition(d, []) if o.kind == "label"]


def target_of(analysis: Analysis, occ: Occurrence | None) -> Target | None:
    """Where the name `occ` refers to is defined."""
    if occ is None:
        return None
    library = analysis.library
    d = occ.definition
    if occ.kind == "use":
        path = _resolve_use(analysis.path, occ.name)
        return Target("file", occ.name, None, occ.node, os.fspath(path)) if path is not None else None
    if occ.kind in ("definition", "param", "label"):
        return Target(occ.kind, occ.name, occ.span, occ.node)
    if occ.kind == "label_ref" and d is not None:
        found = [o for o in labels_of(d) if key_matches(occ.key, o.key)]
        return Target("label", occ.name, found[0].span, found[0].node) if found else None
    if occ.kind == "function":
        return Target("function", occ.name, None)
    if occ.kind == "keyword":
        template = template_of(library, occ.owner or "") if occ.owner else None
        if template is None and occ.owner is not None and param_of(d, occ.owner) is not None:
            return None  # a block chosen by a parameter: which one, only the network knows
        param = param_of(template, occ.name)
        if param is not None:
            return Target("param", occ.name, name_span(param.span, param.name), param)
        return None  # an op's option (hover.py describes it), or a block's unknown parameter
    if occ.kind in ("name", "call"):
        if occ.kind == "name" and occ.name in occ.local:
            return None
        param = param_of(d, occ.name)
        if param is not None:
            return Target("param", occ.name, name_span(param.span, param.name), param)
        if library is not None and occ.name in library.definitions:
            definition = library.definitions[occ.name]
            return Target("definition", occ.name, definition.name_span, definition)
        if occ.kind == "call" and occ.name in OPS:
            return Target("op", occ.name, None, OPS[occ.name])
        if occ.name in BOUND_NAMES:
            return Target("bound", occ.name, None)
        return Target("word", occ.name, None)
    return None


def references(analysis: Analysis, target: Target, extra: list[tuple[str, ast.SourceFile]] | None = None) -> list[Span]:
    """Every place that names `target`: for a block or network, its definition and every call, alias
    and `defaults` line in the buffer, the files it uses and `extra` (other files of the workspace);
    for a parameter or a label, the uses inside its own definition."""
    if target.span is None or target.kind not in ("definition", "param", "label"):
        return []
    spans: list[Span] = []
    # another workspace file that defines a block of the same name calls its own
    others = [(p, m) for p, m in extra or [] if not any(d.name == target.name for d in m.definitions)]
    for occ in _all_files(analysis, others if target.kind == "definition" else []):
        if occ.kind in ("use", "function") or (occ.name != target.name and target.kind != "label"):
            continue
        resolved = target_of(analysis, occ)
        if resolved is not None and resolved.kind == target.kind and resolved.span == target.span:
            spans.append(occ.span)
    return list(dict.fromkeys(spans))


def _all_files(analysis: Analysis, extra) -> Iterator[Occurrence]:
    """The occurrences of the buffer, of every file it uses, and of `extra` files."""
    yield from buffer_occurrences(analysis)
    library = analysis.library
    if library is not None:
        for name, definition in library.definitions.items():
            path = library.origin.get(name, "")
            if same_file(path, analysis.path):
                continue
            lines = library.sources.get(path, "").splitlines()
            yield from _definition(definition, lines)
    for path, module in extra or []:
        if same_file(path, analysis.path) or (library is not None and any(same_file(path, p) for p in library.sources)):
            continue
        yield from occurrences(module.definitions, module.uses, [])
