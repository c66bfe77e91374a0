"""Go to definition, find references, document symbols and workspace symbols.

Definitions and references come from index.py (what a name refers to); the locations point into
the buffer, the files it `use`s (the bundled library among them) and, for references, the other
.res files of the workspace. Symbols list each network and block with its parameters, sections,
stages, groups and labelled elements, and the output shape the checked network gives each.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator

from lsprotocol import types as lsp

from .. import syntax as ast
from ..errors import Span
from ..graph import show_shape
from ..values import Symbol
from . import facts
from .analysis import Analysis
from .describe import signature, source_of
from .index import Occurrence, at, name_span, references, target_of, template_of
from .positions import from_position, to_range, uri_of

ZERO = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0))


def location(analysis: Analysis, span: Span) -> lsp.Location:
    return lsp.Location(uri=uri_of(span.path), range=to_range(span, _text_of(analysis, span.path)))


def _text_of(analysis: Analysis, path: str) -> str:
    text = source_of(analysis, path)
    if not text and os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    return text


def _occurrence(analysis: Analysis, position: lsp.Position) -> Occurrence | None:
    line, column = from_position(analysis.text.splitlines(), position)
    return at(analysis, line, column)


def definition(analysis: Analysis, position: lsp.Position) -> list[lsp.Location]:
    """Where the name under the cursor is defined: a block or network (across `use`d files), a
    parameter, a labelled element, a used file. A call of a parameter that names a block (`unit1`
    in resnet.res) goes to the parameter and to the block the checked network calls."""
    occ = _occurrence(analysis, position)
    target = target_of(analysis, occ)
    if occ is None:
        return []
    if target is not None and target.kind == "file" and target.path:
        return [lsp.Location(uri=uri_of(target.path), range=ZERO)]
    found: list[lsp.Location] = []
    if target is not None and target.span is not None:
        found.append(location(analysis, target.span))
    chosen = chosen_block(analysis, occ)
    if chosen is not None:
        if occ.kind == "keyword":
            param = next((p for p in chosen.params if p.name == occ.name), None)
            if param is not None:
                found.append(location(analysis, name_span(param.span, param.name)))
        elif occ.kind == "call":
            found.append(location(analysis, chosen.name_span))
    return found


def chosen_block(analysis: Analysis, occ: Occurrence) -> ast.Template | None:
    """The block a parameter names where a call or `defaults` line calls the parameter (`unit1(...)`):
    the one the checked networks call there, or the network's value of the parameter."""
    d = occ.definition
    name = occ.owner if occ.kind == "keyword" else occ.name
    if not isinstance(d, ast.Template) or not any(p.name == name for p in d.params):
        return None
    if isinstance(occ.node, ast.Call) and occ.kind == "call":
        records = facts.block_instances(analysis, occ.node.span)
        if records:
            return records[0][1].instance.template
    for net in analysis.networks.values():
        if net.template is d and isinstance(net.parameters.get(name or ""), Symbol):
            return template_of(analysis.library, net.parameters[name or ""].name)  # type: ignore[union-attr]
    return None


def find_references(
    analysis: Analysis,
    position: lsp.Position,
    include_declaration: bool = True,
    workspace: Iterable[tuple[str, ast.SourceFile]] = (),
) -> list[lsp.Location]:
    """Every use of the block, network, parameter or label under the cursor (see index.references)."""
    occ = _occurrence(analysis, position)
    target = target_of(analysis, occ)
    if target is None or target.span is None:
        return []
    spans = references(analysis, target, list(workspace))
    if not include_declaration:
        spans = [s for s in spans if not facts.same_span(s, target.span)]
    return [location(analysis, s) for s in spans]


# ---- document symbols --------------------------------------------------------------------------


def document_symbols(analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The buffer's networks and blocks, with their parameters, sections, stages, groups and labels."""
    text = analysis.text
    symbols = []
    for d in analysis.module.definitions:
        kind = lsp.SymbolKind.Class if d.kind == "network" else lsp.SymbolKind.Function
        net = analysis.networks.get(d.name)
        detail = f"{show_shape(net.input_shape)} -> {show_shape(net.output_shape)}" if net else d.kind
        children: list[lsp.DocumentSymbol] = []
        if isinstance(d, ast.Template):
            for p in d.params:
                children.append(
                    _symbol(text, p.name, lsp.SymbolKind.Variable, p.span, name_span(p.span, p.name), "parameter")
                )
            children += list(_body_symbols(analysis, d.body))
        else:
            detail = signature(analysis, d)
        symbols.append(_symbol(text, d.name, kind, d.span, d.name_span, detail, children))
    return symbols


def _symbol(text, name, kind, span, selection, detail=None, children=None) -> lsp.DocumentSymbol:
    return lsp.DocumentSymbol(
        name=name or "?",
        kind=kind,
        range=to_range(span, text),
        selection_range=to_range(selection, text),
        detail=detail,
        children=children or None,
    )


def _body_symbols(analysis: Analysis, body: ast.Body | None) -> Iterator[lsp.DocumentSymbol]:
    if body is None:
        return
    for statement in body.statements:
        if not isinstance(statement, ast.Chain):
            continue
        for link in statement.links:
            yield from _element_symbols(analysis, link)


def _element_symbols(analysis: Analysis, link: ast.Link) -> Iterator[lsp.DocumentSymbol]:
    e = link.element
    text = analysis.text
    if isinstance(e, ast.Section):
        shape = _shape(analysis, e.span)
        yield _symbol(
            text, e.kind, lsp.SymbolKind.Namespace, e.span, e.span, shape, list(_body_symbols(analysis, e.body))
        )
    elif isinstance(e, ast.Group):
        selection = e.name_span or e.span
        children = list(_body_symbols(analysis, e.body))
        yield _symbol(text, e.name, lsp.SymbolKind.Module, e.span, selection, _shape(analysis, e.span), children)
    elif link.label is not None and link.label_span is not None:
        detail = _shape(analysis, e.span)
        if isinstance(e, ast.Call):
            stages = {part.description for _, _, part in facts.stages_at(analysis, link.span) if part is not None}
            called = next(iter(stages)) if len(stages) == 1 else e.name
            detail = f"{called} → {detail}" if detail else called
        kind = lsp.SymbolKind.Field
        children = list(_nested(analysis, e))
        yield _symbol(text, link.label, kind, link.span, link.label_span, detail, children)
    else:
        yield from _nested(analysis, e)


def _nested(analysis: Analysis, e: ast.Element) -> Iterator[lsp.DocumentSymbol]:
    """The symbols inside an unlabelled construct (`if`, `residual`, `branches`) belong to its parent."""
    if isinstance(e, ast.Cond):
        yield from _body_symbols(analysis, e.then)
        if isinstance(e.orelse, ast.Cond):
            yield from _nested(analysis, e.orelse)
        else:
            yield from _body_symbols(analysis, e.orelse)
    elif isinstance(e, ast.Residual):
        yield from _body_symbols(analysis, e.body)
        yield from _body_symbols(analysis, e.shortcut)
    elif isinstance(e, ast.Branches):
        yield from _body_symbols(analysis, e.body)
        yield from _body_symbols(analysis, e.attend)


def _shape(analysis: Analysis, span: Span) -> str | None:
    """The output shape at `span` when every checked network that made it agrees."""
    shapes = {shape for _, shape in facts.outputs_after(analysis, span)}
    return show_shape(next(iter(shapes))) if len(shapes) == 1 else None


# ---- workspace symbols -------------------------------------------------------------------------

_DEFINITION = re.compile(r"^[ \t]*(block|network)[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)


def definitions_in(path: str, text: str) -> list[tuple[str, str, int, int]]:
    """(kind, name, line, column) of every block and network a file defines, from its text: a file
    that does not parse still lists them, and no file is elaborated."""
    found = []
    for match in _DEFINITION.finditer(text):
        line = text.count("\n", 0, match.start(2)) + 1
        column = match.start(2) - (text.rfind("\n", 0, match.start(2)) + 1) + 1
        found.append((match.group(1), match.group(2), line, column))
    return found


def matches(query: str, name: str) -> bool:
    """A substring, or the query's letters in order (`btn` matches `bottleneck`), ignoring case."""
    query, name = query.lower(), name.lower()
    if not query or query in name:
        return True
    rest = iter(name)
    return all(c in rest for c in query)


def workspace_symbols(query: str, files: Iterable[tuple[str, str]], limit: int = 500) -> list[lsp.SymbolInformation]:
    """Every block and network of `files` ((path, text): the workspace's .res files and the bundled
    library) whose name matches `query`."""
    found = []
    for path, text in files:
        lines = text.splitlines()
        for kind, name, line, column in definitions_in(path, text):
            if not matches(query, name):
                continue
            span = Span(path, line, column, line, column + len(name))
            symbol_kind = lsp.SymbolKind.Class if kind == "network" else lsp.SymbolKind.Function
            found.append(
                lsp.SymbolInformation(
                    name=name,
                    kind=symbol_kind,
                    location=lsp.Location(uri=uri_of(path), range=to_range(span, lines)),
                    container_name=os.path.basename(path),
                )
            )
            if len(found) >= limit:
                return found
    return found
