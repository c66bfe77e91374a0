"""Hover: what the name under the cursor is, with the checked networks' figures (markdown).

On an op call: the op's description, its options with the values the call gave, and for every
instance in the buffer's checked networks its input and output shapes, parameters and MACs. On a
block call or stage line: the block's signature, the bound arguments and the same figures. On a
definition's name: its signature and, for a network, `input -> output, params, MACs`. On a
parameter, a `defaults` name, a label read by `from` / `output`: where it is defined and its value.
"""

from __future__ import annotations

import os

from lsprotocol import types as lsp

from .. import syntax as ast
from ..errors import Span
from ..functions import FUNCTIONS
from ..graph import show_shape
from ..near_keywords import BODY_KEYWORDS
from ..ops import OPS
from ..ops.base import OpKind
from ..outputs import show_outputs
from ..values import NORMS, POLICIES, Symbol, show
from . import facts
from .analysis import Analysis
from .describe import op_label, option_text, plain, signature, source_text
from .index import BOUND_NAMES, Occurrence, Target, at, param_of, target_of, template_of
from .positions import from_position, to_range


def hover(analysis: Analysis, position: lsp.Position) -> lsp.Hover | None:
    line, column = from_position(analysis.text.splitlines(), position)
    occ = at(analysis, line, column)
    if occ is None:
        return None
    text = hover_text(analysis, occ)
    if not text:
        return None
    return lsp.Hover(
        contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text),
        range=to_range(occ.span, analysis.text),
    )


def hover_text(analysis: Analysis, occ: Occurrence) -> str | None:
    """The markdown shown for `occ`."""
    target = target_of(analysis, occ)
    if occ.kind == "call" and isinstance(occ.node, ast.Call):
        if target is not None and isinstance(target.node, OpKind):
            return op_hover(analysis, occ.node, target.node)
        return call_hover(analysis, occ.node, target)
    if occ.kind == "label" and isinstance(occ.node, ast.Link):
        stages = facts.stages_at(analysis, occ.node.span)
        if stages and isinstance(occ.node.element, ast.Call):
            return call_hover(analysis, occ.node.element, target_of(analysis, _call_occurrence(occ)))
        return label_hover(analysis, occ.name, occ.node.span, occ.node.element.span)
    if occ.kind == "label" and isinstance(occ.node, ast.Group):
        return label_hover(analysis, occ.name, occ.node.span, occ.node.span)
    if occ.kind == "section" and isinstance(occ.node, ast.Section):
        return section_hover(analysis, occ.node)
    if occ.kind == "construct" and isinstance(occ.node, (ast.Residual, ast.Branches)):
        return construct_hover(analysis, occ.name, occ.node)
    if occ.kind == "statement":
        return statement_hover(analysis, occ)
    if occ.kind == "keyword":
        return keyword_hover(analysis, occ, target)
    if occ.kind == "function":
        entry = FUNCTIONS.get(occ.name)
        return f"```res\n{entry[3]}\n```\nbuiltin function" if entry else None
    if occ.kind == "use" and target is not None:
        return use_hover(analysis, target)
    if target is None:
        return None
    if isinstance(target.node, (ast.Template, ast.Alias)):
        return definition_hover(analysis, target.node)
    if target.kind == "param":
        return param_hover(analysis, target, occ)
    if target.kind == "label" and occ.kind == "label_ref":
        node = target.node
        if isinstance(node, (ast.Link, ast.Group)):
            return label_hover(analysis, occ.name, node.span, node.span, defined_at=target.span)
    if target.kind == "bound":
        return f"`{occ.name}`: {BOUND_NAMES[occ.name]}"
    if target.kind == "word":
        if occ.name in POLICIES:
            return f"`{occ.name}`: a shortcut policy (one of {', '.join(POLICIES)})"
        if occ.name in NORMS:
            return f"`{occ.name}`: a norm kind (one of {', '.join(NORMS)})"
    return None


def _call_occurrence(label: Occurrence) -> Occurrence:
    assert isinstance(label.node, ast.Link) and isinstance(label.node.element, ast.Call)
    call = label.node.element
    return Occurrence("call", call.name, call.name_span, label.definition, call)


# ---- ops ----------------------------------------------------------------------------------------


def op_hover(analysis: Analysis, call: ast.Call, kind: OpKind) -> str:
    instances = facts.op_instances(analysis, call.span)
    lines = [f"**{kind.name}**: {kind.summary}"]
    if instances:
        first = instances[0].node
        axes = len(first.in_shape) - 1 if first.in_shape else 2
        labels = list(dict.fromkeys(op_label(i.node.kind, i.node.attrs, axes) for i in instances))
        lines.append("```text\n" + "\n".join(labels) + "\n```")
        lines += [f"- {line}" for line in facts.op_lines(instances, len({i.network for i in instances}) > 1)]
        lines.append("")
        for option in kind.options:
            if option.name not in first.attrs:  # the node another kind (`upsample ... to_input`: a resize)
                continue
            values = list(dict.fromkeys(show(plain(i.node.attrs.get(option.name))) for i in instances))
            lines.append(f"- `{option.name}` = {' | '.join(values)}")
    else:
        lines.append("")
        lines += [f"- {option_text(o)}" for o in kind.options]
        if not analysis.networks:
            lines.append("\n(no checked network in this file made this op)")
    return "\n".join(lines)


def definition_hover(analysis: Analysis, d: ast.Definition) -> str:
    lines = [f"```res\n{signature(analysis, d)}\n```"]
    if isinstance(d, ast.Alias):
        target = template_of(analysis.library, d.target)
        if target is not None:
            lines.append(f"```res\n{signature(analysis, target)}\n```")
    origin = analysis.library.origin.get(d.name) if analysis.library else None
    if origin and not facts.same_file(origin, analysis.path):
        lines.append(f"defined in `{os.path.basename(origin)}`")
    net = analysis.networks.get(d.name)
    if net is not None:
        shown = show_outputs(net.outputs, net.output_shape)
        lines.append(f"{show_shape(net.input_shape)} -> {shown}, {net.params:,} params, {net.macs:,} MACs")
    elif d.name in analysis.failed:
        lines.append(
            f"does not check: {analysis.failed[d.name][0].message}" if analysis.failed[d.name] else "does not check"
        )
    elif d.kind == "block":
        uses = [r for n in analysis.networks.values() for r in n.record.blocks.values() if r.instance.called == d.name]
        if uses:
            lines.append(f"called {len(uses)} times in the checked networks")
    return "\n\n".join(lines)


def call_hover(analysis: Analysis, call: ast.Call, target: Target | None) -> str:
    records = facts.block_instances(analysis, call.span)
    lines: list[str] = []
    template: ast.Template | ast.Alias | None = records[0][1].instance.template if records else None
    if template is None and target is not None and isinstance(target.node, (ast.Template, ast.Alias)):
        template = target.node
    if target is not None and target.kind == "param":
        lines.append(
            f"`{call.name}`: a parameter; the network calls `{template.name}`"
            if template
            else f"`{call.name}`: a parameter"
        )
    if template is not None and not records:
        lines.append(f"```res\n{signature(analysis, template)}\n```")
    elif template is not None:  # the bound arguments below list every parameter, with its value
        lines.append(f"{template.kind} `{template.name}` ({_where_defined(template)})")
    several = len({net.name for net, _ in records}) > 1
    for net, stage, part in _stages_of_call(analysis, call):
        where = f"{net.name}." if several else ""
        stride = f", stride {stage.stride}" if stage.stride and stage.stride > 1 else ""
        summary = f"stage `{where}{stage.name}`: {stage.block} ×{stage.repeats}{stride}, shortcut {stage.policy}"
        if part is not None:
            summary += f"\n\n{show_shape(part.output_shape)} out, {part.params:,} params, {part.macs:,} MACs in all"
        lines.append(summary)
    if records:
        lines.append("\n".join(f"- {line}" for line in facts.block_lines(records, several)))
        arguments = facts.argument_lines(records)
        if arguments:
            lines.append("bound arguments:\n```res\n" + "\n".join(arguments) + "\n```")
    return "\n\n".join(lines) if lines else ""


def _where_defined(d: ast.Definition) -> str:
    return f"{os.path.basename(d.span.path)}, line {d.name_span.line}"


def _stages_of_call(analysis: Analysis, call: ast.Call):
    if call.repeat is None:
        return []
    found = []
    for net in analysis.networks.values():
        for stage in net.stages:
            if facts.inside(call.span, stage.span) and stage.span.line == call.span.line:
                found.append((net, stage, facts.part_named(net, stage.name)))
    return found


def section_hover(analysis: Analysis, section: ast.Section) -> str:
    """`stem` / `head`: the summary's row for it in each checked network."""
    lines = [f"`{section.kind}`: a section (it adds no level to the module names)"]
    for net in analysis.networks.values():
        part = facts.part_named(net, section.kind)
        if part is not None:
            where = f"{net.name}: " if len(analysis.networks) > 1 else ""
            lines.append(f"{where}{show_shape(part.output_shape)} out, {part.params:,} params, {part.macs:,} MACs")
    return "\n\n".join(lines)


def construct_hover(analysis: Analysis, word: str, construct: ast.Residual | ast.Branches) -> str:
    """`residual`, `dense`, `branches`: the merges it made, their shapes and the shortcuts chosen."""
    merges = facts.merge_instances(analysis, construct.span)
    lines = [f"`{word}`: {BODY_KEYWORDS.get(word, 'a merge')}"]
    several = len({net.name for net, _ in merges}) > 1
    lines += [f"- {line}" for line in facts.merge_lines(merges, several)]
    return "\n".join(lines)


def statement_hover(analysis: Analysis, occ: Occurrence) -> str | None:
    """`input`: the network's input shape; `output`: what it returns (a list or a dict of shapes)."""
    lines = []
    for net in analysis.networks.values():
        if net.template is not occ.definition:
            continue
        if occ.name == "input":
            lines.append(f"`{net.name}` takes {show_shape(net.input_shape)}")
        elif net.output_form != "tensor":
            lines.append(f"`{net.name}` returns a {net.output_form}: {show_outputs(net.outputs, net.output_shape)}")
    return "\n\n".join(lines) or None


def label_hover(analysis: Analysis, name: str, span: Span, element_span: Span, defined_at: Span | None = None) -> str:
    lines = [f"label `{name}`" + (f", defined on line {defined_at.line}" if defined_at is not None else "")]
    for net_name, shape in facts.outputs_after(analysis, element_span):
        where = f" in {net_name}" if len(analysis.networks) > 1 else ""
        lines.append(f"output{where}: {show_shape(shape)}")
    return "\n\n".join(lines)


def param_hover(analysis: Analysis, target: Target, occ: Occurrence) -> str:
    param = target.node
    assert isinstance(param, ast.Param)
    written = param.name if param.default is None else f"{param.name} = {source_text(analysis, param.default.span)}"
    owner = _owner(analysis, param)
    lines = [f"```res\n{written}\n```", f"parameter of `{owner.name}`" if owner else "parameter"]
    if owner is not None and occ.kind != "param":
        lines[-1] += f", line {param.span.line}"
    values = param_values(analysis, owner, param.name) if owner is not None else []
    if occ.kind == "keyword" and owner is not None:  # an argument of one call: that call's instances
        at_call = [
            show(i.arguments[param.name])
            for net in analysis.networks.values()
            for i in net.instances
            if i.template is owner and param.name in i.arguments and facts.inside(occ.span, i.span)
        ]
        values = list(dict.fromkeys(at_call)) or values
    if len(values) == 1:
        lines.append(f"value: `{values[0]}`")
    elif values:
        lines.append("values: " + ", ".join(f"`{v}`" for v in values[:12]) + (" …" if len(values) > 12 else ""))
    return "\n\n".join(lines)


def _owner(analysis: Analysis, param: ast.Param) -> ast.Template | None:
    library = analysis.library
    candidates = list(library.definitions.values()) if library else list(analysis.module.definitions)
    for d in candidates:
        if isinstance(d, ast.Template) and any(p is param for p in d.params):
            return d
    return None


def param_values(analysis: Analysis, owner: ast.Template, name: str) -> list[str]:
    """A parameter's values in the checked networks: the network's own, or every instance's of a block."""
    values: list[str] = []
    for net in analysis.networks.values():
        if owner.kind == "network" and net.template is owner and name in net.parameters:
            values.append(show(net.parameters[name]))
        for instance in net.instances:
            if instance.template is owner and name in instance.arguments:
                values.append(show(instance.arguments[name]))
    return list(dict.fromkeys(values))


def keyword_hover(analysis: Analysis, occ: Occurrence, target: Target | None) -> str | None:
    if target is not None and target.kind == "param":
        return param_hover(analysis, target, occ)
    kind = OPS.get(occ.owner or "")
    option = kind.option(occ.name) if kind else None
    if option is not None:
        text = f"option of `{occ.owner}`: {option_text(option)}"
        made = [i for i in _ops_around(analysis, occ.span) if i.node.kind == occ.owner]
        values = list(dict.fromkeys(show(plain(i.node.attrs.get(option.name))) for i in made))
        return text + (f"\n\n`{option.name}` = {' | '.join(values)}" if values else "")
    owner_template = _chosen_template(analysis, occ)
    param = param_of(owner_template, occ.name)
    if param is not None and owner_template is not None:
        return param_hover(analysis, Target("param", param.name, param.span, param), occ)
    return None


def _ops_around(analysis: Analysis, span: Span) -> list[facts.OpInstance]:
    """The ops made by the call whose text holds `span` (an argument of it)."""
    return [
        facts.OpInstance(net.name, name, node)
        for net in analysis.networks.values()
        for name, node in net.ops.nodes.items()
        if not node.inserted and facts.inside(span, node.span)
    ]


def _chosen_template(analysis: Analysis, occ: Occurrence) -> ast.Template | None:
    """The block a parameter names (`unit1` in resnet.res): the value the checked network gave it."""
    d = occ.definition
    for net in analysis.networks.values():
        if net.template is d and occ.owner in net.parameters:
            value = net.parameters[occ.owner or ""]
            if isinstance(value, Symbol):
                return template_of(analysis.library, value.name)
    return None


def use_hover(analysis: Analysis, target: Target) -> str:
    path = target.path or ""
    names = [
        n
        for n, origin in (analysis.library.origin.items() if analysis.library else [])
        if facts.same_file(origin, path)
    ]
    shown = ", ".join(f"`{n}`" for n in names[:20]) + (" …" if len(names) > 20 else "")
    return f"`{path}`" + (f"\n\ndefines {shown}" if names else "")
