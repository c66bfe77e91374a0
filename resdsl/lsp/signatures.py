"""Signature help: the parameters of the block or op being called, the one being written active.

A block call (`bottleneck(128, stride = 2)`) shows the block's signature with each parameter and
its default; the active parameter is the keyword being written, or the position among the
top-level commas. An op call (`conv 64 k3 s2`, no parentheses) shows the op's options; the active
one is the option the word under the cursor names (`s2`, `stride=`), or the next positional one.
Like completion, it reads the text before the cursor, so it works while the buffer does not parse.
"""

from __future__ import annotations

import re

from lsprotocol import types as lsp

from .. import syntax as ast
from ..ops import OPS
from ..ops.base import OpKind
from .analysis import Analysis
from .completion import _parameters_in_scope, _provider, _text_before, callee_template, open_call
from .describe import option_text, source_text
from .positions import from_position


def signature_help(
    analysis: Analysis, position: lsp.Position, last_good: Analysis | None = None
) -> lsp.SignatureHelp | None:
    lines = analysis.text.splitlines()
    line, column = from_position(lines, position)
    head = _text_before(lines, line, column)
    provider = _provider(analysis, last_good)
    call = open_call(head)
    if call is not None:
        scope = _parameters_in_scope(analysis, last_good, line)
        template = callee_template(provider, call[0], scope) if call[0] else None
        return _block_help(provider, template, head[call[1] + 1 :]) if template is not None else None
    current = head.rsplit("\n", 1)[-1].split("->")[-1]
    current = re.sub(r'^\s*(?:"[^"]*"|[A-Za-z_][\w.\[\]]*)\s*:(?!=)', "", current)
    words = current.split()
    if words and words[0] in OPS and (len(words) > 1 or current.endswith(" ")):
        return _op_help(OPS[words[0]], current)
    return None


def _arguments_written(inside: str) -> list[str]:
    """The call's arguments written so far, split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for index, c in enumerate(inside):
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inside[start:index])
            start = index + 1
    parts.append(inside[start:])
    return parts


def _block_help(analysis: Analysis, template: ast.Template, inside_call: str) -> lsp.SignatureHelp:
    labels = [
        p.name if p.default is None else f"{p.name} = {source_text(analysis, p.default.span)}" for p in template.params
    ]
    written = _arguments_written(inside_call)
    keyword = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", written[-1])
    names = [p.name for p in template.params]
    if keyword and keyword.group(1) in names:
        active = names.index(keyword.group(1))
    else:
        active = min(len(written) - 1, max(len(names) - 1, 0))
    label, parameters = f"{template.name}(", []
    for index, text in enumerate(labels):
        label += ", " if index else ""
        start = _utf16(label)  # LSP offsets count UTF-16 code units
        label += text
        parameters.append(
            lsp.ParameterInformation(label=(start, _utf16(label)), documentation=f"parameter of {template.name}")
        )
    signature = lsp.SignatureInformation(
        label=label + ")",
        parameters=parameters,
        documentation=f"{template.kind} `{template.name}`",
        active_parameter=active,
    )
    return lsp.SignatureHelp(signatures=[signature], active_signature=0, active_parameter=active)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _op_help(kind: OpKind, current: str) -> lsp.SignatureHelp:
    options = list(kind.options)
    labels = [o.name for o in options]
    words = current.split()[1:]
    ends_word = not current.endswith(" ")
    typing = words[-1] if words and ends_word else ""
    active = _option_named(kind, typing)
    if active is None:
        positional_done = sum(1 for w in words[: len(words) - (1 if typing else 0)] if _option_named(kind, w) is None)
        positional = [labels.index(p) for p in kind.positional if p in labels]
        active = positional[positional_done] if positional_done < len(positional) else None
    signature = lsp.SignatureInformation(
        label=f"{kind.name} " + " ".join(labels),
        documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=kind.summary),
        parameters=[
            lsp.ParameterInformation(label=_op_offsets(kind.name, labels, i), documentation=option_text(o))
            for i, o in enumerate(options)
        ],
        active_parameter=active,
    )
    return lsp.SignatureHelp(signatures=[signature], active_signature=0, active_parameter=active)


def _op_offsets(name: str, labels: list[str], index: int) -> tuple[int, int]:
    start = len(name) + 1 + sum(len(label) + 1 for label in labels[:index])
    return (start, start + len(labels[index]))


def _option_named(kind: OpKind, word: str) -> int | None:
    """The index of the option a word names: `stride=2`, `s2`, `k3`, a flag `bias`."""
    if not word:
        return None
    match = re.match(r"([A-Za-z_]+?)(?:=|\d|\(|$)", word)
    if match is None:
        return None
    for name in {match.group(1), word.split("=")[0]}:
        option = kind.option(name)
        if option is not None:
            return list(kind.options).index(option)
    return None
