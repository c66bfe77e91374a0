"""The op graph while it is built and checked: typed nodes, roles on edges, networkx on demand.

Elaboration, shape inference and analysis need only ordered nodes and
predecessor / successor maps. Importing networkx costs more than checking
resnet152 does (0.16 s against 0.04 s on the 2-core machine), so the pipeline
works on this small container and `Network.graph` hands out a
`networkx.DiGraph` the first time it is asked for.

Every node is a `Node`: an op (`kind` is an op kind of resdsl/ops/), the
`input`, or a merge (an op kind of resdsl/ops/merge.py: `add`, which is also
the `sum` of `branches`, `concat`, `product`, `select`, `max`). An edge's `role` says which input of its target it is:
the main path, the shortcut of a residual merge, one of a branch merge's
branches (main is branch 0; the others carry their `index`), the attention
logits of `select`, or the tensor whose size a `resize` takes; `inputs(name)`
answers "what feeds this node" in one place.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import Span
from .ops import BRANCH_MERGES, FUNCTIONS, MERGES  # noqa: F401 - re-exported: the merge op kinds (ops/merge.py)
from .ops.base import show_shape  # noqa: F401 - re-exported

Shape = tuple[int, ...]
# MERGES: the merge op kinds (`add`, `concat`, `product`, `select`, `max`); BRANCH_MERGES: the merges of
# `branches` by their word (`sum` is `add`); FUNCTIONS: nodes that are a function of their inputs in the
# forward, not a module: the merges, and `chunk` (a channel slice of a `branches(split = true)`).
# A placeholder for an element that failed (and was reported): its shape is unknown, so shape
# inference skips everything after it instead of reporting errors that follow from the first.
FAILED = "failed"


class Role(str, enum.Enum):
    """Which input of its target an edge is (a str, so `edge["role"] == "main"` reads as before)."""

    MAIN = "main"
    SHORTCUT = "shortcut"
    BRANCH = "branch"  # branch 1, 2, ... of a branch merge (branch 0 is its main input)
    WEIGHTS = "weights"  # the attention logits of `select`
    SIZE = "size"  # the tensor whose spatial size a `resize` takes (a merge's fit, `upsample to_input`)

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Node:
    """One node of the op graph. Elaboration fills the first group; shape inference `in_shape`,
    `shape` and, on merges, `shortcut`; analysis `params` and `macs`."""

    kind: str  # an op kind (a merge among them), or "input"
    span: Span  # where the spec writes it (an inserted shortcut: its merge)
    attrs: dict[str, Any] = field(default_factory=dict)  # the op's arguments, completed
    trace: tuple[tuple[Span, str], ...] = ()  # the block calls that led here, for diagnostics
    stage: str | None = None  # `layer2`
    block: str | None = None  # `layer2.0`
    block_type: str | None = None  # `bottleneck`
    part: str = ""  # summary row and --freeze unit: stem, layer2, head, ...
    inserted: bool = False  # a shortcut op the policy inserted
    seq: float = 0  # execution order
    in_shape: Shape | None = None
    shape: Shape | None = None
    params: int = 0
    macs: int = 0
    # merges
    policy: str | None = None  # the shortcut policy in force (add)
    shortcut: str | None = None  # what the plan chose: identity, projection, zeropad, avgproj, none
    shortcut_name: str | None = None  # where inserted ops go: `layer2.0.downsample`
    project_from: str | None = None  # residual(project_from = LABEL): the node projected instead of the input
    project_norm: bool = True
    project_kernel: int = 1  # the kernel of a strided inserted projection (timm's down_kernel_size)
    project_bias: bool = False  # the inserted projection's conv has a bias (MONAI's bias_downsample)
    zeros_at_end: bool = False  # option A appends its zero channels after the input's (MONAI), not around them
    written: bool = False  # `residual { ... } shortcut { ... }`: the block wrote its shortcut path
    norm: str = "bn"  # the norm kind of an inserted projection (a `norm` statement's)
    fit: str | None = None  # `shortcut nearest`: how a merge resizes a smaller input up (shapes.plan_fit)
    # inserted shortcut ops
    merge: str | None = None  # the merge they feed

    @property
    def is_merge(self) -> bool:
        return self.kind in MERGES

    def as_dict(self) -> dict[str, Any]:
        """The fields by name (shallow: spans stay Spans)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class Inputs(NamedTuple):
    main: str
    shortcut: str | None  # residual merges only
    branches: tuple[str, ...] = ()  # branch merges: every branch in order (main first)
    weights: str | None = None  # `select`: the attention logits
    size: str | None = None  # `resize`: the tensor whose spatial size it takes


class OpGraph:
    """Nodes in execution order; edges carry a dict with their `role` (and, after inference, `shape`)."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.pred: dict[str, dict[str, dict[str, Any]]] = {}
        self.succ: dict[str, dict[str, dict[str, Any]]] = {}

    def __contains__(self, node: str) -> bool:
        return node in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def add_node(self, name: str, node: Node) -> None:
        self.nodes[name] = node
        self.pred[name] = {}
        self.succ[name] = {}

    def add_edge(self, u: str, v: str, role: Role, index: int | None = None) -> None:
        """An edge u -> v; `index` orders the branches of a branch merge."""
        assert v not in self.succ[u], f"{u} already feeds {v}"
        edge: dict[str, Any] = {"role": role}
        if index is not None:
            edge["index"] = index
        self.succ[u][v] = self.pred[v][u] = edge

    def remove_edge(self, u: str, v: str) -> None:
        del self.succ[u][v]
        del self.pred[v][u]

    def edges(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for u, targets in self.succ.items():
            for v, attrs in targets.items():
                yield u, v, attrs

    def inputs(self, name: str) -> Inputs:
        """What feeds a node: its main input, a residual merge's shortcut, a branch merge's branches
        (in order) and attention logits."""
        main = shortcut = weights = size = None
        branches: list[tuple[int, str]] = []
        for u, edge in self.pred[name].items():
            role = edge["role"]
            if role is Role.MAIN:
                main = u
                if "index" in edge:
                    branches.append((0, u))
            elif role is Role.SHORTCUT:
                shortcut = u
            elif role is Role.BRANCH:
                branches.append((edge["index"], u))
            elif role is Role.SIZE:
                size = u
            else:
                weights = u
        assert main is not None, f"{name} has no main input"
        return Inputs(main, shortcut, tuple(u for _, u in sorted(branches)), weights, size)

    def main_input(self, name: str) -> str:
        return self.inputs(name).main

    def reorder(self, key: Callable[[Node], Any]) -> None:
        """Re-sort the nodes (execution order after insertions); edges are untouched."""
        self.nodes = dict(sorted(self.nodes.items(), key=lambda item: key(item[1])))

    def to_networkx(self):
        """A networkx.DiGraph: node attributes are the Node's fields, edges carry role and shape."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from((name, node.as_dict()) for name, node in self.nodes.items())
        graph.add_edges_from((u, v, {**edge, "role": edge["role"].value}) for u, v, edge in self.edges())
        return graph
