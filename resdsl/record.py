"""The checked network as a hierarchy: network -> parts -> block instances -> ops and merges.

The op graph (graph.OpGraph) is the flat view: one node per op and merge, in execution order.
This record is the same network seen as it was written, for the outputs that are organised by
it (the ejected source, the summary's parts): every block call with its template, its bound
arguments and its call site, the ops and the nested calls its own body made (`events`, in
execution order), and the shortcut modules the shape checker inserted. Nothing here parses or
elaborates source again: it regroups what elaboration and shape inference recorded.

    record = net.record
    block = record.blocks["layer2.0"]          # BlockRecord: bottleneck(128, stride=2)
    [e.name for e in block.events]             # ['layer2.0.conv1', ..., 'layer2.0.add', 'layer2.0.relu3']
    record.shortcuts["layer2.0.downsample"]    # ('layer2.0.downsample.0', 'layer2.0.downsample.1')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .calls import BlockInstance, StageInfo
from .errors import Span
from .graph import Node, Shape

if TYPE_CHECKING:
    from .network import Network


@dataclass(frozen=True)
class Event:
    """One thing a body made, in order: an op or merge (`node`), or a nested block call (`block`)."""

    name: str  # the node's name, or the block instance's path
    span: Span  # where the spec writes it (an op's call, a merge's construct, a call)
    node: Node | None = None
    block: BlockRecord | None = None


@dataclass(frozen=True, eq=False)
class BlockRecord:
    """One block instance: the call (template, arguments, policy, site) and what its body made."""

    instance: BlockInstance
    events: tuple[Event, ...]
    in_shape: Shape | None  # what it reads (None: it made nothing)
    out_shape: Shape | None
    output: str | None  # the node whose tensor it gives (None: it is the identity)
    params: int
    macs: int

    @property
    def path(self) -> str:
        return self.instance.path


@dataclass(frozen=True, eq=False)
class PartRecord:
    """A summary row and `--freeze` unit: the stem, a stage, the head, or a top-level op or block."""

    name: str
    nodes: tuple[str, ...]
    blocks: tuple[BlockRecord, ...]  # the block calls made directly in it (a stage's repetitions)
    params: int
    macs: int
    output_shape: Shape | None
    stage: StageInfo | None = None  # the stage it is (its block, repeats, stride, policy), if one
    call: BlockRecord | None = None  # the block call it is (DenseNet's `trans1`), if one

    @property
    def description(self) -> str:
        """`bottleneck ×4 /2` for a stage, the block's name for a part that is one call, else ""."""
        if self.stage is not None:
            stride = f" /{self.stage.stride}" if self.stage.stride and self.stage.stride > 1 else ""
            return f"{self.stage.block} ×{self.stage.repeats}{stride}"
        return self.call.instance.called if self.call is not None else ""


@dataclass(frozen=True, eq=False)
class Record:
    network: Network = field(repr=False)
    events: tuple[Event, ...]  # what the network's own body made
    blocks: dict[str, BlockRecord]  # every block instance by path, in program order
    parts: tuple[PartRecord, ...]
    shortcuts: dict[str, tuple[str, ...]]  # inserted shortcut (`layer2.0.downsample`) -> its op nodes

    def uses(self, template: object) -> list[BlockRecord]:
        """Every instance of a block template (aliases followed), in program order."""
        return [b for b in self.blocks.values() if b.instance.template is template]


def build_record(net: Network) -> Record:
    ops = net.ops
    children: dict[str | None, list[tuple[float, int, Event]]] = {}
    subtree: dict[str, list[str]] = {i.path: [] for i in net.instances}
    by_path = {i.path: i for i in net.instances}
    shortcuts: dict[str, list[str]] = {}
    for order, (name, node) in enumerate(ops.nodes.items()):
        if node.kind == "input":
            continue
        block = node.block
        while block is not None:  # every enclosing instance owns it, for shapes and costs
            subtree[block].append(name)
            block = by_path[block].parent
        if node.inserted:
            assert node.merge is not None  # an inserted shortcut op names the merge it feeds
            slot = ops.nodes[node.merge].shortcut_name
            assert slot is not None  # and that merge, the `downsample` it went into
            shortcuts.setdefault(slot, []).append(name)
        else:
            children.setdefault(node.block, []).append((node.seq, order, Event(name, node.span, node=node)))
    blocks: dict[str, BlockRecord] = {}
    # nested calls, by the body that made them; a call's seq lies between its neighbouring ops' (calls.py)
    placed: dict[str | None, list[tuple[float, int, str]]] = {}
    for order, instance in enumerate(net.instances):
        placed.setdefault(instance.parent, []).append((instance.seq, order, instance.path))

    def make(path: str) -> BlockRecord:
        if path in blocks:
            return blocks[path]
        instance = by_path[path]
        nodes = subtree[path]
        first, last = (ops.nodes[nodes[0]], ops.nodes[nodes[-1]]) if nodes else (None, None)
        record = BlockRecord(
            instance,
            events_of(path),
            first.in_shape if first else None,
            last.shape if last else None,
            nodes[-1] if nodes else None,
            sum(ops.nodes[n].params for n in nodes),
            sum(ops.nodes[n].macs for n in nodes),
        )
        blocks[path] = record
        return record

    def events_of(owner: str | None) -> tuple[Event, ...]:
        items = list(children.get(owner, []))
        for seq, order, path in placed.get(owner, []):
            items.append((seq, order, Event(path, by_path[path].span, block=make(path))))
        items.sort(key=lambda item: (item[0], item[1]))
        return tuple(event for _, _, event in items)

    top = events_of(None)
    for instance in net.instances:
        make(instance.path)
    blocks = {i.path: blocks[i.path] for i in net.instances}
    parts = []
    for cost in net.parts:
        nodes = tuple(n for n, node in ops.nodes.items() if node.part == cost.name)
        direct = tuple(
            b
            for b in blocks.values()
            if b.instance.parent is None and b.output is not None and ops.nodes[b.output].part == cost.name
        )
        stage = next((s for s in net.stages if s.name == cost.name), None)
        call = blocks.get(cost.name)
        parts.append(PartRecord(cost.name, nodes, direct, cost.params, cost.macs, cost.output_shape, stage, call))
    return Record(net, top, blocks, tuple(parts), {k: tuple(v) for k, v in shortcuts.items()})
