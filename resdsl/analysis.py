"""Exact parameter and multiply-accumulate counts, from shapes alone.

MACs follow torchvision's "GFLOPS" convention (which are MACs): conv and
fully connected multiply-accumulates only; bias adds, BN, activations, pools
and the residual add are not counted. FLOPs, where shown, are 2 × MACs. BN
contributes its weight and bias to the parameter count (running statistics
are buffers, as in `sum(p.numel() for p in model.parameters())`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .graph import OpGraph
from .ops import ALL, Cost
from .ops.base import NO_COST, Shape
from .values import Value


def cost(kind: str, attrs: dict[str, Value], x: Shape, y: Shape) -> Cost:
    """Parameters and MACs of one op with input shape `x` and output shape `y` (its definition's rule);
    the input costs nothing, and a merge's cost is its `merge_cost` (nothing, for today's merges)."""
    op = ALL.get(kind)
    return op.cost(attrs, x, y) if op is not None else NO_COST


@dataclass(frozen=True, slots=True)
class PartCost:
    """One row of the summary: the stem, a stage, or the head."""

    name: str
    params: int
    macs: int
    output_shape: tuple[int, ...] | None
    inserted_params: int
    inserted_macs: int


def annotate(graph: OpGraph) -> tuple[int, int]:
    """Write `params` and `macs` on every node; return the network totals."""
    total_params = total_macs = 0
    for name, data in graph.nodes.items():
        x, y = data.in_shape, data.shape
        c = cost(data.kind, data.attrs, x, y) if x is not None and y is not None else NO_COST
        if data.is_merge and y is not None:  # a merge's rule reads all its inputs
            inputs = graph.inputs(name)
            sources = inputs.branches or (inputs.main, inputs.shortcut)
            shapes = [shape for u in sources if u is not None and (shape := graph.nodes[u].shape) is not None]
            assert len(shapes) == len(sources)  # inference gives a merge its shape only from all its inputs'
            c = ALL[data.kind].merge_cost(data.attrs, shapes, y)
        data.params, data.macs = c.params, c.macs
        total_params += c.params
        total_macs += c.macs
    return total_params, total_macs


def parts(graph: OpGraph) -> list[PartCost]:
    """Costs per part in network order: stem, each stage, head."""
    rows: dict[str, list] = {}
    for data in graph.nodes.values():
        part = data.part
        if part == "input":
            continue
        row = rows.setdefault(part, [0, 0, None, 0, 0])
        row[0] += data.params
        row[1] += data.macs
        row[2] = data.shape  # nodes are in order: the last one is the part's output
        if data.inserted:
            row[3] += data.params
            row[4] += data.macs
    return [PartCost(name, *row) for name, row in rows.items()]


# ---- memory ------------------------------------------------------------------------------------
# What a batch needs, from shapes alone, so that `compile` and `train` refuse a spec whose tensors
# cannot fit before allocating any of them (a 3x100000x100000 input is 240 GB at batch 2).


def _elements(shape: Shape | None) -> int:
    n = 1
    for d in shape or ():
        n *= d
    return n if shape else 0


@dataclass(frozen=True, slots=True)
class MemoryEstimate:
    """Bytes one process needs: activations for the batch, and weights (with gradients and optimizer
    state when training). `largest` names the biggest single tensor, for the message."""

    activations: int
    weights: int
    largest: str
    largest_shape: Shape | None  # None: unknown (shown as `?`)

    @property
    def total(self) -> int:
        return self.activations + self.weights


def memory_estimate(
    graph: OpGraph, params: int, batch: int, *, training: bool, activation_bytes: int = 4, weight_bytes: int = 4
) -> MemoryEstimate:
    """An estimate of the memory one forward (inference) or forward and backward (training) step takes.

    Training keeps every op's output for the backward pass: the sum of all output tensors (input
    included) times the batch, plus weights, gradients and SGD momentum (3 × params). Inference keeps a
    tensor only until its last consumer has run: the peak of the live tensors in execution order, plus
    the weights. In-place ops and allocator slack make real figures differ by tens of percent, which is
    why callers refuse only beyond the machine's whole memory.
    """
    sizes = {node: _elements(data.shape) for node, data in graph.nodes.items()}
    largest = max(sizes, key=sizes.__getitem__, default="input")
    if training:
        elements = sum(sizes.values())
        weights = 3 * params * weight_bytes
    else:
        order = {node: i for i, node in enumerate(graph.nodes)}
        last_use = {node: max((order[v] for v in graph.succ[node]), default=len(order)) for node in graph.nodes}
        freed_at: dict[int, list[str]] = {}
        for node, i in last_use.items():
            freed_at.setdefault(i, []).append(node)
        live = elements = 0
        for i, node in enumerate(graph.nodes):
            live += sizes[node]  # the output exists while its inputs still do
            elements = max(elements, live)
            for done in freed_at.get(i, ()):  # inputs whose last consumer was this op
                live -= sizes[done]
        weights = params * weight_bytes
    return MemoryEstimate(elements * batch * activation_bytes, weights, largest, graph.nodes[largest].shape)
