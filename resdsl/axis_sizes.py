"""One spatial axis's size pushed through the op graph (`summary --input-sizes`, resdsl/input_sizes.py).

Ops are separable per axis: a conv, a pool, a pad or a shortcut maps each axis's size with that
axis's own kernel, stride, padding and dilation (a per-axis tuple's item), and refuses an input when
one axis is too small; merges compare sizes axis by axis. So an axis is analysed alone: its size is
pushed through the graph while the other axes keep the sizes the spec's own input gives them (each
node's `in_shape`), and a size (D, H, W) is valid exactly when each axis's size is.

`AxisPlan.push` maps the axis's input size to every node's size on that axis; `periods` and
`threshold` are the periodic analysis input_sizes.py describes.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ShapeError
from .graph import OpGraph
from .ops import ALL

Shape = tuple[int, ...]


def _with(shape: Shape, axis: int, size: int) -> Shape:
    """`shape` with its spatial `axis` (1 is the first after the channels) set to `size`."""
    return shape[:axis] + (size,) + shape[axis + 1 :]


def _axis_stride(stride: Any, axis: int) -> int:
    """An op's stride on `axis`: one number for every axis, or one per axis (a tuple)."""
    if isinstance(stride, tuple):
        return max(1, int(stride[axis - 1]))
    return max(1, int(stride or 1))


def spatial_sizes(graph: OpGraph, size: int, axis: int = 1) -> dict[str, int] | None:
    """Each node's size on spatial `axis` for an input of `size` there (the other axes as the spec's
    input gives them), or None if the network refuses that size. Vectors have no axis: their nodes
    map to 0."""
    out: dict[str, int] = {}
    rank = 0
    for name, data in graph.nodes.items():
        if data.kind == "input":
            assert data.shape is not None  # the input's shape is the spec's
            if len(data.shape) < 2:
                return None
            rank = len(data.shape)
            out[name] = size
            continue
        inputs = graph.inputs(name)
        if data.kind == "resize":  # to the size of another tensor (a merge's fit, `upsample to_input`)
            out[name] = out[inputs.size or inputs.main]
            continue
        operands = list(inputs.branches) or [inputs.main] + ([inputs.shortcut] if inputs.shortcut else [])
        sizes = [out[u] for u in operands]
        h = sizes[0]
        if data.is_merge:
            if any(s != h for s in sizes):  # shortcut, concat and branch sizes must agree
                return None
            if inputs.weights is not None and out[inputs.weights] not in (1, h):
                return None
            out[name] = h
            continue
        if h == 0 or data.in_shape is None or len(data.in_shape) != rank:
            out[name] = 0
            continue
        try:
            shape = ALL[data.kind].shape(data.attrs, _with(data.in_shape, axis, h))
        except ShapeError:
            return None
        if len(shape) != rank:
            out[name] = 0
            continue
        if shape[axis] < 1:
            return None
        out[name] = shape[axis]
    return out


class AxisPlan:
    """The op graph as a list of steps for one axis, and the agreements a valid size must meet."""

    def __init__(self, graph: OpGraph, axis: int = 1):
        self.axis = axis
        self.steps: list[tuple] = []
        self.merges: list[tuple[str, tuple[str, ...], str | None]] = []  # (node, operands, weights)
        # a map made a vector (flatten, fc on C×1): (node, its input, op, attrs, in_shape)
        self.vectors: list[tuple[str, str, Any, dict, Shape]] = []
        self.rate: dict[str, int] = {}  # the product of strides along the paths to a node (lcm over paths)
        rank = 0
        for name, data in graph.nodes.items():
            if data.kind == "input":
                assert data.shape is not None
                rank = len(data.shape)
                self.steps.append((name, "input", ()))
                self.rate[name] = 1
                continue
            inputs = graph.inputs(name)
            if data.kind == "resize":  # its size is the other tensor's, whatever its input's
                like = inputs.size or inputs.main
                self.steps.append((name, "resize", (like,)))
                self.rate[name] = self.rate[like]
                continue
            operands = tuple(inputs.branches) or (inputs.main,) + ((inputs.shortcut,) if inputs.shortcut else ())
            rate = math.lcm(*(self.rate[u] for u in operands))
            if data.is_merge:
                self.steps.append((name, "merge", operands))
                self.merges.append((name, operands, inputs.weights))
                if inputs.weights is not None:
                    rate = math.lcm(rate, self.rate[inputs.weights])
                self.rate[name] = rate
                continue
            op = ALL[data.kind]
            in_shape = data.in_shape
            if in_shape is None or len(in_shape) != rank:  # not spatial
                self.steps.append((name, "vector", operands))
            elif data.shape is not None and len(data.shape) != rank:
                self.steps.append((name, "vector", operands))
                self.vectors.append((name, operands[0], op, data.attrs, in_shape))
            else:
                self.steps.append((name, "op", operands, op, data.attrs, in_shape))
                is_global = getattr(op, "is_global", None)
                if is_global is not None and is_global(data.attrs):
                    rate = 1  # every size gives 1
                else:
                    rate *= _axis_stride(op.stride(data.attrs, None), axis)
            self.rate[name] = rate
        self.period = math.lcm(*self.rate.values())

    def push(self, h: int) -> dict[str, int] | None:
        """Each node's size for input size h, the agreements left out (a merge passes its first operand
        on); None where an op refuses its input (then every smaller size is refused too)."""
        out: dict[str, int] = {}
        axis = self.axis
        for step in self.steps:
            name, kind, operands = step[0], step[1], step[2]
            if kind == "input":
                out[name] = h
            elif kind in ("merge", "resize"):  # a merge passes its first operand on; a resize, its like's size
                out[name] = out[operands[0]]
            elif kind == "vector":
                out[name] = 0
            else:
                try:
                    shape = step[3].shape(step[4], _with(step[5], axis, out[operands[0]]))
                except ShapeError:
                    return None
                if len(shape) != len(step[5]) or shape[axis] < 1:
                    return None
                out[name] = shape[axis]
        return out

    def accepts(self, op: Any, attrs: dict, in_shape: Shape, x: int) -> bool:
        try:
            op.shape(attrs, _with(in_shape, self.axis, x))
        except ShapeError:
            return False
        return True


EVERY = None  # a set of k: every k >= 0


def _equal(d: int, g: int):
    """The k >= 0 with d + k*g == 0."""
    if g == 0:
        return EVERY if d == 0 else frozenset()
    return frozenset({-d // g}) if -d % g == 0 and -d // g >= 0 else frozenset()


def _and(x, y):
    return y if x is EVERY else x if y is EVERY else x & y


def _or(x, y):
    return EVERY if x is EVERY or y is EVERY else x | y


def periods(plan: AxisPlan, start: int):
    """Per residue r of X - start modulo P: (sizes at start + r, growth per period, the set of k)."""
    period, rows = plan.period, []
    for r in range(period):
        s0, s1, s2 = (plan.push(start + r + k * period) for k in range(3))
        if s0 is None or s1 is None or s2 is None:
            return None
        delta = {n: s1[n] - s0[n] for n in s0}
        if any(s2[n] - s1[n] != delta[n] for n in s0):
            return None  # not a progression: an op the analysis does not know; size by size instead
        ks = EVERY
        for _, operands, weights in plan.merges:
            first = operands[0]
            for u in operands[1:]:
                ks = _and(ks, _equal(s0[u] - s0[first], delta[u] - delta[first]))
            if weights is not None:
                ks = _and(
                    ks,
                    _or(
                        _equal(s0[weights] - 1, delta[weights]),
                        _equal(s0[weights] - s0[first], delta[weights] - delta[first]),
                    ),
                )
        for _, source, op, attrs, in_shape in plan.vectors:
            x, g = s0[source], delta[source]
            if g == 0:
                ks = _and(ks, EVERY if plan.accepts(op, attrs, in_shape, x) else frozenset())
            else:
                taken = frozenset(k for k in range(3) if plan.accepts(op, attrs, in_shape, x + k * g))
                ks = _and(ks, EVERY if len(taken) == 3 else taken)
        rows.append((s0, delta, ks))
    return rows


def threshold(plan: AxisPlan, known_good: int) -> int:
    """The smallest size at which no op refuses its input (sizes grow with the input's: a bisection)."""
    low, high = 1, known_good
    while low < high:
        mid = (low + high) // 2
        if plan.push(mid) is None:
            low = mid + 1
        else:
            high = mid
    return low
