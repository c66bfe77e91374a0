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
from .shapes import Shape, se_hidden
from .values import Value


@dataclass(frozen=True, slots=True)
class Cost:
    params: int
    macs: int


def cost(kind: str, attrs: dict[str, Value], x: Shape, y: Shape) -> Cost:
    """Parameters and MACs of one op with input shape `x` and output shape `y`."""
    if kind == "conv":
        k = attrs["kernel"]
        weights = y[0] * (x[0] // attrs["groups"]) * k * k
        return Cost(weights + (y[0] if attrs["bias"] else 0), weights * y[1] * y[2])
    if kind == "fc":
        n_in = x[0] * (x[1] * x[2] if len(x) == 3 else 1)
        return Cost(n_in * y[0] + (y[0] if attrs["bias"] else 0), n_in * y[0])
    if kind == "bn":
        return Cost(2 * x[0], 0)
    if kind == "se":
        c, h = x[0], se_hidden(attrs, x[0])
        # fc1: c -> h (1×1 conv with bias), fc2: h -> c (with bias), on a 1×1 map.
        return Cost(c * h + h + h * c + c, 2 * c * h)
    return Cost(0, 0)


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
    for data in graph.nodes.values():
        x, y = data.get("in_shape"), data.get("shape")
        c = cost(data["kind"], data.get("attrs", {}), x, y) if x is not None and y is not None else Cost(0, 0)
        data["params"], data["macs"] = c.params, c.macs
        total_params += c.params
        total_macs += c.macs
    return total_params, total_macs


def parts(graph: OpGraph) -> list[PartCost]:
    """Costs per part in network order: stem, each stage, head."""
    rows: dict[str, list] = {}
    for data in graph.nodes.values():
        part = data["part"]
        if part == "input":
            continue
        row = rows.setdefault(part, [0, 0, None, 0, 0])
        row[0] += data["params"]
        row[1] += data["macs"]
        row[2] = data.get("shape")  # nodes are in order: the last one is the part's output
        if data["inserted"]:
            row[3] += data["params"]
            row[4] += data["macs"]
    return [PartCost(name, *row) for name, row in rows.items()]
