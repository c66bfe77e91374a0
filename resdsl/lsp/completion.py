"""Completion, from the text around the cursor: it works on a half-typed buffer that does not parse.

The context is read from the text before the cursor, not from the syntax tree (which a buffer
being typed rarely has): inside `use "..."` the bundled and neighbouring .res files; after
`shortcut` the policies, after `norm` the norm kinds; inside a call's parentheses that block's
(or `residual`'s, `branches`') parameters; after an op's name its options; at the start of an
element (a line's start, after `->`, after a label's `:`) the ops, blocks, networks and keywords;
elsewhere the names an expression may read (parameters in scope, builtins, blocks). The library
(blocks and networks in scope) and the parameters come from the buffer's analysis, or, when the
buffer does not parse, from the last analysis of it that did.
"""

from __future__ import annotations

import os
import re

from lsprotocol import types as lsp

from .. import syntax as ast
from ..branches import OPTIONS as BRANCHES_OPTIONS
from ..elaborate import RESIDUAL_OPTIONS
from ..functions import FUNCTIONS
from ..library import Library, bundled_names
from ..near_keywords import BODY_KEYWORDS
from ..ops import OPS
from ..ops.base import REQUIRED
from ..values import NORMS, POLICIES, Symbol
from .analysis import Analysis
from .describe import op_doc, option_text, signature, source_text
from .index import BOUND_NAMES, labels_of, template_of
from .positions import from_position

# Keywords a body's line may start with, and what they do.
STATEMENT_KEYWORDS = {
    "input": "the input's shape: `input 3 x 224 x 224`",
    "output": "what the network returns: `output layer1, layer2` or `output a: x, b: y`",
    "shortcut": "the shortcut policy of the residual merges that follow (A, B, C, D, identity, none)",
    "norm": "the norm every `bn` of the scope becomes: `norm gn`",
    "defaults": "keyword arguments for the later calls of a block: `defaults unit(groups = 32)`",
    "require": 'a condition on the parameters: `require depth in [18, 34], "message"`',
    "from": "the chain goes on from a labelled point's tensor: `from layer3`",
    "if": "`if test { ... } else { ... }`",
    **BODY_KEYWORDS,
}
TOP_KEYWORDS = {
    "use": 'reads the blocks and networks of another file: `use "blocks.res"`',
    "block": "defines a block: `block name(params) { ... }`",
    "network": "defines a network: `network name(params) { ... }` or `network name = other(args)`",
}
EXPRESSION_WORDS = ("true", "false", "and", "or", "not", "in", "if", "else", "for")
# What may follow a stage's `x N` (calls.py): the first block's stride, the stage's shortcut policy.
STAGE_OPTIONS = [
    lsp.CompletionItem(label="stride=", kind=lsp.CompletionItemKind.Property, detail="the first block's stride (`s2`)"),
    lsp.CompletionItem(label="shortcut", kind=lsp.CompletionItemKind.Keyword, detail="the stage's shortcut policy"),
]
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


def complete(analysis: Analysis, position: lsp.Position, last_good: Analysis | None = None) -> lsp.CompletionList:
    lines = analysis.text.splitlines()
    line, column = from_position(lines, position)
    text = lines[line - 1] if line <= len(lines) else ""
    before = text[: column - 1]
    library = _library(analysis, last_good)
    scope = _parameters_in_scope(analysis, last_good, line)
    items = _items(_provider(analysis, last_good), before, _text_before(lines, line, column), library, scope)
    return lsp.CompletionList(is_incomplete=False, items=items)


def _library(analysis: Analysis, last_good: Analysis | None) -> Library | None:
    return _provider(analysis, last_good).library


def _provider(analysis: Analysis, last_good: Analysis | None) -> Analysis:
    """The analysis whose library (and texts) to use: the buffer's, or when it does not parse, the
    last good one's."""
    if (analysis.library is not None and analysis.library.definitions) or last_good is None:
        return analysis
    return last_good


def _text_before(lines: list[str], line: int, column: int, limit: int = 4000) -> str:
    """The buffer's text up to the cursor (its last `limit` characters): a call's arguments may
    span lines (`defaults` in resnet.res)."""
    above = [re.sub(r"#.*", "", text) for text in lines[max(line - 1 - 200, 0) : line - 1]]  # comments out:
    current = lines[line - 1][: column - 1] if line <= len(lines) else ""  # their brackets are no calls
    return "\n".join(above + [current])[-limit:]


def _items(
    analysis, before: str, head: str, library: Library | None, scope: list[ast.Param]
) -> list[lsp.CompletionItem]:
    use = re.match(r'\s*use\s+"([^"]*)$', before)
    if use:
        return _use_paths(analysis.path)
    if re.search(r"#", before):
        return []
    if re.search(r"\bshortcut\s+[A-Za-z_]*$", before):
        return [_word(p, "shortcut policy") for p in POLICIES] + _parameters(analysis, scope)
    if re.search(r"(^|\s)norm\s+[A-Za-z_]*$", before):
        return [_word(n, "norm kind") for n in NORMS] + _parameters(analysis, scope)
    if re.search(r"(\bfrom\s+|^\s*output\s+(?:.*,\s*)?(?:\w+\s*:\s*)?|\bproject_from\s*=\s*)[\w.]*$", before):
        return _labels(analysis, before_line=len(head.splitlines()))
    callee = _open_call(head)
    if callee is not None:
        return _arguments(analysis, callee, library, scope) + _expression(analysis, library, scope)
    segment = re.split(r"->", before)[-1]
    segment = re.sub(r'^\s*(?:"[^"]*"|[A-Za-z_][\w.\[\]]*)\s*:(?!=)', "", segment)  # a label `layer1:`
    words = segment.split()
    starting = not words or (len(words) == 1 and _WORD.search(segment) is not None and not segment.endswith(" "))
    if starting:
        top = not before.startswith((" ", "\t"))
        return _elements(analysis, library, scope, top)
    if words[0] in OPS:
        return _op_options(words[0]) + _expression(analysis, library, scope)
    if re.search(r"\)\s*x\s*[^\s]+\s+(?:\S+\s+)*[A-Za-z_]*$", segment):  # after `x N`: the stage options
        return STAGE_OPTIONS + _expression(analysis, library, scope)
    return _expression(analysis, library, scope)


def _open_call(head: str) -> str | None:
    """The name before the innermost `(` still open at the cursor (`bottleneck(64, str|`), or None."""
    found = open_call(head)
    return found[0] if found else None


def open_call(head: str) -> tuple[str, int] | None:
    """The innermost call still open at the end of `head`: its name ("" for a bare parenthesis) and
    the index of its `(`; None outside parentheses (a `{` or `}` ends the search)."""
    depth = 0
    for index in range(len(head) - 1, -1, -1):
        c = head[index]
        if c in ")]":
            depth += 1
        elif c in "([" and depth > 0:
            depth -= 1
        elif c == "(":
            match = _WORD.search(head[:index].rstrip())
            return (match.group(0) if match else "", index)
        elif c in "{}":
            return None
    return None


def _labels(analysis: Analysis, before_line: int) -> list[lsp.CompletionItem]:
    """The labels and groups of the definition the cursor is in (those above the cursor first): what
    `from`, `output` and `project_from` read."""
    for d in analysis.module.definitions:
        if d.span.line <= before_line <= d.span.end_line:
            found = dict.fromkeys(o.name for o in labels_of(d))
            return [_word(name, "label", lsp.CompletionItemKind.Reference) for name in found]
    return []


def _parameters_in_scope(analysis: Analysis, last_good: Analysis | None, line: int) -> list[ast.Param]:
    """The parameters of the definition the cursor is in (the last good analysis's, when the buffer
    does not parse)."""
    for source in (analysis, last_good):
        if source is None:
            continue
        for d in source.module.definitions:
            if isinstance(d, ast.Template) and d.span.line <= line <= d.span.end_line:
                return list(d.params)
    # an unparsable buffer with no good version: the nearest `block name(` / `network name(` above
    lines = analysis.text.splitlines()[:line]
    library = _library(analysis, last_good)
    for text in reversed(lines):
        match = re.match(r"\s*(?:block|network)\s+([A-Za-z_]\w*)", text)
        if match:
            template = template_of(library, match.group(1))
            return list(template.params) if template else []
    return []


def _word(
    name: str, detail: str, kind: lsp.CompletionItemKind = lsp.CompletionItemKind.EnumMember
) -> lsp.CompletionItem:
    return lsp.CompletionItem(label=name, kind=kind, detail=detail)


def _use_paths(path: str) -> list[lsp.CompletionItem]:
    names = {f"{n}.res": "bundled spec" for n in bundled_names()}
    folder = os.path.dirname(path) if not path.startswith("<") else ""
    if folder and os.path.isdir(folder):
        for entry in sorted(os.listdir(folder)):
            if entry.endswith(".res") and os.path.join(folder, entry) != path:
                names[entry] = "next to this file"
    return [_word(name, detail, lsp.CompletionItemKind.File) for name, detail in sorted(names.items())]


def _parameters(analysis: Analysis, scope: list[ast.Param]) -> list[lsp.CompletionItem]:
    items = []
    for p in scope:
        default = f" = {source_text(analysis, p.default.span)}" if p.default is not None else ""
        items.append(_word(p.name, f"parameter{default}", lsp.CompletionItemKind.Variable))
    return items


def _definitions(analysis: Analysis, library: Library | None) -> list[lsp.CompletionItem]:
    if library is None:
        return []
    items = []
    for name, d in library.definitions.items():
        template = template_of(library, name)
        required = [p.name for p in template.params if p.default is None] if template else []
        snippet = f"{name}(" + ", ".join(f"${{{i}:{p}}}" for i, p in enumerate(required, 1)) + ")$0"
        items.append(
            lsp.CompletionItem(
                label=name,
                kind=lsp.CompletionItemKind.Class if d.kind == "network" else lsp.CompletionItemKind.Function,
                detail=d.kind,
                documentation=lsp.MarkupContent(
                    kind=lsp.MarkupKind.Markdown, value=f"```res\n{signature(analysis, d)}\n```"
                ),
                insert_text=snippet,
                insert_text_format=lsp.InsertTextFormat.Snippet,
            )
        )
    return items


def _ops() -> list[lsp.CompletionItem]:
    return [
        lsp.CompletionItem(
            label=name,
            kind=lsp.CompletionItemKind.Operator,
            detail=kind.summary,
            documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=op_doc(kind)),
        )
        for name, kind in OPS.items()
    ]


def _keywords(words: dict[str, str]) -> list[lsp.CompletionItem]:
    return [_word(word, doc, lsp.CompletionItemKind.Keyword) for word, doc in words.items()]


def _elements(analysis, library, scope, top: bool) -> list[lsp.CompletionItem]:
    """At the start of an element: ops, blocks, networks, keywords, and the parameters (one may name a
    block: `unit1(64)`). At the start of a line outside any definition: `use`, `block`, `network`."""
    if top and not scope:
        return _keywords(TOP_KEYWORDS)
    return _ops() + _definitions(analysis, library) + _keywords(STATEMENT_KEYWORDS) + _parameters(analysis, scope)


def _op_options(op: str) -> list[lsp.CompletionItem]:
    kind = OPS[op]
    items = []
    for option in kind.options:
        if option.name in kind.positional and option.default is REQUIRED:
            continue
        text = option.name if option.flag else f"{option.name}="
        items.append(
            lsp.CompletionItem(
                label=text,
                kind=lsp.CompletionItemKind.Property,
                detail=f"option of {op}",
                documentation=option_text(option),
                insert_text=text,
            )
        )
    return items


def _arguments(analysis: Analysis, callee: str, library: Library | None, scope) -> list[lsp.CompletionItem]:
    """The keyword arguments of the call whose parentheses hold the cursor."""
    if callee == "residual":
        return [_keyword_argument(o, "option of residual") for o in RESIDUAL_OPTIONS]
    if callee == "branches":
        return [_keyword_argument(o, "option of branches") for o in BRANCHES_OPTIONS]
    if callee in FUNCTIONS or callee == "":
        return []
    template = callee_template(analysis, callee, scope)
    if template is None:
        return []
    items = []
    for p in template.params:
        default = f" = {source_text(analysis, p.default.span)}" if p.default is not None else " (required)"
        items.append(_keyword_argument(p.name, f"parameter of {template.name}{default}"))
    return items


def callee_template(analysis: Analysis, name: str, scope: list[ast.Param]) -> ast.Template | None:
    """The block a call names: a block or network of the library, or, for a parameter that holds a
    block (`unit1(...)` in resnet.res), the block the checked networks gave it."""
    template = template_of(analysis.library, name)
    if template is not None or not any(p.name == name for p in scope):
        return template
    for net in analysis.networks.values():
        values = [net.parameters.get(name)] + [i.arguments.get(name) for i in net.instances]
        for value in values:
            if isinstance(value, Symbol):
                return template_of(analysis.library, value.name)
    return None


def _keyword_argument(name: str, detail: str) -> lsp.CompletionItem:
    return lsp.CompletionItem(
        label=f"{name} =",
        kind=lsp.CompletionItemKind.Property,
        detail=detail,
        insert_text=f"{name} = ",
        filter_text=name,
        sort_text=f"0{name}",  # before the names an expression may read
    )


def _expression(analysis: Analysis, library: Library | None, scope: list[ast.Param]) -> list[lsp.CompletionItem]:
    items = _parameters(analysis, scope)
    items += [_word(name, doc, lsp.CompletionItemKind.Variable) for name, doc in BOUND_NAMES.items()]
    items += [_word(name, FUNCTIONS[name][3], lsp.CompletionItemKind.Function) for name in FUNCTIONS]
    items += [_word(w, "keyword", lsp.CompletionItemKind.Keyword) for w in EXPRESSION_WORDS]
    if library is not None:
        items += [
            _word(n, "block", lsp.CompletionItemKind.Function)
            for n, d in library.definitions.items()
            if d.kind == "block"
        ]
    return items
