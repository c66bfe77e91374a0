"""What the checked networks say about a place in the source: the ops, block calls and stages made there.

A span of the spec (an op call, a block call, a stage line, a group) may have been elaborated many
times: an op of `bottleneck` once per block instance, a stage line once per network of the file.
These functions find every instance of a span in the buffer's checked networks (graph nodes carry
their call's span, block instances theirs, stages their line's) and write their figures as
`resdsl check` and `summary` do (`show_shape`: 64x56x56; counts with thousands separators).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..calls import StageInfo
from ..errors import Span
from ..graph import Node, Shape, show_shape
from ..network import Network
from ..record import BlockRecord, PartRecord
from ..values import show
from .analysis import Analysis
from .positions import same_file


def with_networks_of(analysis: Analysis, others: Iterable[tuple[str, Analysis]]) -> Analysis:
    """A buffer of blocks alone (blocks.res) checks no network, so its hovers would show no figures:
    borrow the checked networks of the other open buffers that use it (resnet.res open beside it), keyed
    `uri#name` so that none is taken for one of the buffer's own definitions."""
    if analysis.networks:
        return analysis
    borrowed: dict[str, Network] = {}
    for uri, other in others:
        if other is analysis or not any(same_file(path, analysis.path) for path in other.sources):
            continue
        for name, net in other.networks.items():
            borrowed[f"{uri}#{name}"] = net
    return replace(analysis, networks=borrowed) if borrowed else analysis


def inside(inner: Span, outer: Span) -> bool:
    """`inner` lies within `outer` (one file)."""
    if (inner.line, inner.column) < (outer.line, outer.column):
        return False
    if (inner.end_line, inner.end_column) > (outer.end_line, outer.end_column):
        return False
    return inner.path == outer.path or same_file(inner.path, outer.path)


def same_span(a: Span, b: Span) -> bool:
    return (a.line, a.column, a.end_line, a.end_column) == (b.line, b.column, b.end_line, b.end_column) and (
        a.path == b.path or same_file(a.path, b.path)
    )


@dataclass(frozen=True)
class OpInstance:
    network: str
    name: str  # the node's module path: `layer1.0.conv1`
    node: Node


def op_instances(analysis: Analysis, span: Span) -> list[OpInstance]:
    """Every op the call at `span` made, in every checked network of the buffer, in execution order."""
    return [
        OpInstance(net.name, name, node)
        for net in analysis.networks.values()
        for name, node in net.ops.nodes.items()
        if not node.inserted and node.kind != "input" and same_span(node.span, span)
    ]


def merge_instances(analysis: Analysis, span: Span) -> list[tuple[Network, OpInstance]]:
    """Every merge a `residual`, `dense` or `branches` construct at `span` made."""
    return [
        (net, OpInstance(net.name, name, node))
        for net in analysis.networks.values()
        for name, node in net.ops.nodes.items()
        if node.is_merge and same_span(node.span, span)
    ]


def merge_lines(merges: list[tuple[Network, OpInstance]], several_networks: bool) -> list[str]:
    """`add -> 256x56x56, shortcut projection (16,896 params, 51,380,224 MACs)`: each merge's output,
    and for a residual add the shortcut the policy chose and what its inserted ops cost."""
    items = []
    for net, m in merges:
        text = f"{m.node.kind} -> {show_shape(m.node.shape)}"
        if m.node.shortcut:
            text += f", shortcut {m.node.shortcut}"
            inserted = [n for n in net.ops.nodes.values() if n.inserted and n.merge == m.name]
            if inserted:
                text += f" ({sum(n.params for n in inserted):,} params, {sum(n.macs for n in inserted):,} MACs)"
        items.append((_where(m.network, m.node.stage or m.node.part or m.network, several_networks), m.name, text))
    return grouped_lines(items)


def block_instances(analysis: Analysis, span: Span) -> list[tuple[Network, BlockRecord]]:
    """Every block instance the call at `span` made (a stage: each repetition), with its figures."""
    found = []
    for net in analysis.networks.values():
        for instance in net.instances:
            if same_span(instance.span, span):
                found.append((net, net.record.blocks[instance.path]))
    return found


def stages_at(analysis: Analysis, span: Span) -> list[tuple[Network, StageInfo, PartRecord | None]]:
    """The stage a stage line (`layer2: bottleneck(128) x4 s2`, the Link's span) made, per network."""
    found = []
    for net in analysis.networks.values():
        for stage in net.stages:
            if same_span(stage.span, span):
                part = next((p for p in net.record.parts if p.stage is stage or p.name == stage.name), None)
                found.append((net, stage, part))
    return found


def part_named(net: Network, name: str) -> PartRecord | None:
    return next((p for p in net.record.parts if p.name == name), None)


def output_after(net: Network, span: Span) -> Shape | None:
    """The shape of the last tensor made by the source at `span` (an element, a group, a section):
    the last node, in execution order, written there or made by a block call written there."""
    shape: Shape | None = None
    for node in net.ops.nodes.values():
        if node.kind == "input" or node.inserted:
            continue
        if inside(node.span, span) or any(inside(call, span) for call, _ in node.trace):
            shape = node.shape
    return shape


def outputs_after(analysis: Analysis, span: Span) -> list[tuple[str, Shape]]:
    """`output_after` in each checked network where the source at `span` made something."""
    found = []
    for net in analysis.networks.values():
        shape = output_after(net, span)
        if shape is not None:
            found.append((net.name, shape))
    return found


# ---- writing figures ----------------------------------------------------------------------------


def figures(in_shape: Shape | None, out_shape: Shape | None, params: int, macs: int) -> str:
    """`64x56x56 -> 256x56x56, 16,384 params, 51,380,224 MACs`"""
    return f"{show_shape(in_shape)} -> {show_shape(out_shape)}, {params:,} params, {macs:,} MACs"


def compact_paths(paths: list[str]) -> str:
    """`layer1.0.conv1` for one path; `layer1.0.conv1, layer1.1.conv1, … (3)` for more."""
    if len(paths) == 1:
        return paths[0]
    shown = ", ".join(paths[:2])
    return f"{shown}{', …' if len(paths) > 2 else ''} ({len(paths)})"


def grouped_lines(items: Iterable[tuple[str, str, str]]) -> list[str]:
    """Lines of figures for instances given as (where, path, figures): one line when every instance
    agrees, else one per `where` (a stage, a part) and, inside one, per distinct figures."""
    items = list(items)
    if not items:
        return []
    distinct = list(dict.fromkeys(f for _, _, f in items))
    if len(distinct) == 1:
        count = f" ({len(items)} instances)" if len(items) > 1 else ""
        return [f"{distinct[0]}{count}"]
    lines = []
    by_where: dict[str, list[tuple[str, str]]] = {}
    for where, path, fig in items:
        by_where.setdefault(where, []).append((path, fig))
    for where, entries in by_where.items():
        variants: dict[str, list[str]] = {}
        for path, fig in entries:
            variants.setdefault(fig, []).append(path)
        if len(variants) == 1:
            ((fig, paths),) = variants.items()
            count = f" ({len(paths)} instances)" if len(paths) > 1 else f" ({paths[0]})"
            lines.append(f"in {where}{count}: {fig}")
        else:
            prefix = f"in {where}, " if len(by_where) > 1 else ""
            for fig, paths in variants.items():
                lines.append(f"{prefix}{compact_paths(paths)}: {fig}")
    return lines


def op_lines(instances: list[OpInstance], several_networks: bool) -> list[str]:
    return grouped_lines(
        (
            _where(i.network, i.node.stage or i.node.part or i.network, several_networks),
            i.name,
            figures(i.node.in_shape, i.node.shape, i.node.params, i.node.macs),
        )
        for i in instances
    )


def block_lines(records: list[tuple[Network, BlockRecord]], several_networks: bool) -> list[str]:
    return grouped_lines(
        (
            _where(net.name, _stage_of(r.path, net), several_networks),
            r.path,
            figures(r.in_shape, r.out_shape, r.params, r.macs),
        )
        for net, r in records
    )


def _where(network: str, place: str, several_networks: bool) -> str:
    return f"{network}.{place}" if several_networks and place != network else place


def _stage_of(path: str, net: Network) -> str:
    names = {s.name for s in net.stages}
    parts = path.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in names:
            return ".".join(parts[:end])
    return parts[0] if len(parts) > 1 else net.name


def argument_lines(records: list[tuple[Network, BlockRecord]], limit: int = 40) -> list[str]:
    """The block's bound arguments: `planes = 64`, or `stride = 2 (layer2.0), 1 (layer2.1, …)` where
    the instances differ."""
    if not records:
        return []
    instance = records[0][1].instance
    names = [p.name for p in instance.template.params if p.name in instance.arguments]  # as the signature
    names += [n for n in instance.arguments if n not in names]
    lines = []
    for name in names[:limit]:
        values: dict[str, list[str]] = {}
        for _, r in records:
            if name in r.instance.arguments:
                values.setdefault(show(r.instance.arguments[name]), []).append(r.path)
        if len(values) == 1:
            lines.append(f"{name} = {next(iter(values))}")
        else:
            lines.append(f"{name} = " + ", ".join(f"{v} ({compact_paths(p)})" for v, p in values.items()))
    return lines
