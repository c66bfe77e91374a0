"""Text the features write about the source: an op's documentation and options, a definition's
signature, a span's source text (hover, completion and signature help share them)."""

from __future__ import annotations

from .. import syntax as ast
from ..errors import Span
from ..ops import ALL
from ..ops.base import REQUIRED, OpKind, Option
from ..values import show
from . import facts
from .analysis import Analysis


def op_doc(kind: OpKind) -> str:
    """An op's description and options, as completion and hover show them."""
    options = "\n".join(f"- {option_text(o)}" for o in kind.options)
    positional = f"; positional: {', '.join(kind.positional)}" if kind.positional else ""
    return (
        f"**{kind.name}**: {kind.summary}\n\noptions{positional}:\n{options}"
        if options
        else f"**{kind.name}**: {kind.summary}"
    )


def option_text(o: Option) -> str:
    """`stride` (`s`): int ≥ 1, default 1."""
    names = f"`{o.name}`" + (f" (`{'`, `'.join(o.aliases)}`)" if o.aliases else "")
    kind = o.type if not o.choices else " | ".join(o.choices)
    if o.per_axis:
        kind += " or one per axis"
    bounds = []
    if o.minimum is not None:
        bounds.append(f"{'>' if o.above_minimum else '≥'} {show(o.minimum)}")
    if o.maximum is not None and o.maximum < 2**31 - 1:
        bounds.append(f"≤ {show(o.maximum)}")
    default = (
        "required" if o.default is REQUIRED else ("computed" if o.default is None else f"default {show(o.default)}")
    )
    flag = ", a flag" if o.flag else ""
    return f"{names}: {kind}{' ' + ' '.join(bounds) if bounds else ''}, {default}{flag}"


def op_label(kind: str, attrs: dict, axes: int) -> str:
    """The label `summary` and drawings give an op (`conv 7×7, 64, /2`), by the node's own kind (an
    `upsample ... to_input` is a `resize` node)."""
    op = ALL.get(kind)
    try:
        return op.label(attrs, axes) if op is not None else kind
    except (KeyError, TypeError, ValueError):  # a kind whose label needs what this node lacks
        return kind


def plain(value: object) -> object:
    return value if value is not None else "none"


# ---- blocks, stages, definitions -----------------------------------------------------------------


def source_text(analysis: Analysis, span: Span) -> str:
    """The text at `span`, on one line (a default written over several lines joined)."""
    text = source_of(analysis, span.path)
    lines = text.splitlines()
    if span.line > len(lines):
        return ""
    if span.line == span.end_line:
        written = lines[span.line - 1][span.column - 1 : span.end_column - 1]
    else:
        first = [lines[span.line - 1][span.column - 1 :]]
        middle = lines[span.line : span.end_line - 1]
        last = [lines[span.end_line - 1][: span.end_column - 1]] if span.end_line <= len(lines) else []
        written = " ".join(first + middle + last)
    return " ".join(written.split())


def source_of(analysis: Analysis, path: str) -> str:
    if path == analysis.path:
        return analysis.text
    if path in analysis.sources:
        return analysis.sources[path]
    for known, text in analysis.sources.items():
        if facts.same_file(known, path):
            return text
    return ""


def signature(analysis: Analysis, d: ast.Definition) -> str:
    """`block bottleneck(planes, stride = 1, ...)`; an alias: `network resnet50 = resnet(depth = 50)`."""
    if isinstance(d, ast.Alias):
        return f"{d.kind} {source_text(analysis, d.span)}"
    params = [p.name if p.default is None else f"{p.name} = {source_text(analysis, p.default.span)}" for p in d.params]
    one_line = f"{d.kind} {d.name}({', '.join(params)})"
    if len(one_line) <= 80:
        return one_line
    return f"{d.kind} {d.name}(\n" + "".join(f"    {p},\n" for p in params) + ")"
