"""Inlay hints: the output shape after each top-level line of a checked network (`  → 256x56x56`).

A hint follows each statement of a network's own body that made something: the stem and head
sections (after their closing brace), each stage line, each other chain of elements; inside an
`if`, the lines of the branch the network took. A network alias (`network resnet50 = resnet(...)`)
gets its output shape and figures. A network that does not check gets none. Shapes are written as
`resdsl check` writes them (64x56x56).
"""

from __future__ import annotations

from collections.abc import Iterator

from lsprotocol import types as lsp

from .. import syntax as ast
from ..errors import Span
from ..graph import show_shape
from ..outputs import show_outputs
from . import facts
from .analysis import Analysis
from .positions import to_position


def inlay_hints(analysis: Analysis, range_: lsp.Range | None = None, enabled: bool = True) -> list[lsp.InlayHint]:
    if not enabled:
        return []
    lines = analysis.text.splitlines()
    hints: list[lsp.InlayHint] = []
    for d in analysis.module.definitions:
        net = analysis.networks.get(d.name)
        if net is None:
            continue
        if isinstance(d, ast.Alias):
            label = f"{show_outputs(net.outputs, net.output_shape)}, {net.params:,} params, {net.macs:,} MACs"
            hints.append(_hint(lines, d.span, label))
            continue
        for span in _statement_spans(d.body):
            shape = facts.output_after(net, span)
            if shape is not None:
                hints.append(_hint(lines, span, show_shape(shape)))
    if range_ is not None:
        hints = [h for h in hints if _within(h.position, range_)]
    return hints


def _hint(lines: list[str], span: Span, label: str) -> lsp.InlayHint:
    return lsp.InlayHint(
        position=to_position(lines, span.end_line, span.end_column),
        label=f"→ {label}",
        kind=lsp.InlayHintKind.Type,
        padding_left=True,
    )


def _statement_spans(body: ast.Body | None) -> Iterator[Span]:
    """The chains of a network's own body that a hint follows, in order; an `if` contributes its
    branches' chains (only the branch taken made anything, so only it gets hints)."""
    if body is None:
        return
    for statement in body.statements:
        if not isinstance(statement, ast.Chain):
            continue
        if len(statement.links) == 1 and isinstance(statement.links[0].element, ast.Cond):
            yield from _cond_spans(statement.links[0].element)
        else:
            yield statement.span


def _cond_spans(cond: ast.Cond) -> Iterator[Span]:
    yield from _statement_spans(cond.then)
    if isinstance(cond.orelse, ast.Cond):
        yield from _cond_spans(cond.orelse)
    else:
        yield from _statement_spans(cond.orelse)


def _within(position: lsp.Position, range_: lsp.Range) -> bool:
    start, end = range_.start, range_.end
    return (start.line, start.character) <= (position.line, position.character) <= (end.line, end.character)
