"""Which input sizes a network accepts, and what each part makes of them (`summary --input-sizes`).

The network is elaborated once; then each spatial axis's size (L of a sequence; H and W of an image;
D, H and W of a volume) is pushed through its op graph with each op's own shape rule (resdsl/ops/)
and the same agreements the shape checker demands where tensors meet: a residual add's shortcut
(identity or the inserted ops) must land on the main path's size, and a concat or a branch merge
needs equal sizes. Ops are separable per axis, each with that axis's kernel, stride, padding and
dilation (resdsl/axis_sizes.py), so each axis is analysed alone, the other axes keeping the spec's
sizes, and an input is valid exactly when each of its sizes is valid on its axis. A network whose
axes all follow the same rule (a square 2-D network) is reported as one axis, H.

No size is tried one by one. Every spatial op maps a size X to floor((X + a)/s) + b on its axis (a
conv or pool: floor((X + 2p - d(k-1) - 1)/s) + 1; a pad: X + 2p; a zero-pad shortcut: ceil(X/s))
once its input is large enough, and refuses smaller inputs; a global pool maps every X to 1. So,
with P the least common multiple of the axis's strides multiplied along the graph's paths (32 for a
ResNet):

- below a threshold T (the smallest X at which no op refuses its input, found by bisection: sizes
  only grow with X) no size is valid;
- from T on, each node's size at X + P is its size at X plus a constant (P/s along its path), so
  for each residue r of X - T modulo P the sizes are an arithmetic progression in k, X = T + r + kP,
  and each agreement (two sizes equal; a vector layer's map 1) holds for every k, for none, or for
  one k, which the two first periods tell.

That is 3P pushes through the graph per axis (the third period checks the progressions), whatever
the range: the valid sizes, the smallest valid input and each part's output formula come from them.
An axis whose P is over MAX_PERIOD is searched size by size, over at most BRUTE_LIMIT sizes.

What comes out, per axis: the valid sizes in the range as runs and strides ("every H from 32", "H
from 9 with H odd"), the smallest valid size, and each part's output size as a formula of the
axis's size where one fits every valid size (ceil(H/32), floor((D - 1)/2) + 1, ...).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .axis_sizes import EVERY, AxisPlan, periods, spatial_sizes, threshold
from .errors import UsageError
from .graph import OpGraph
from .network import Network
from .size_formulas import describe, fit, formula, show

__all__ = ["AxisSizes", "InputSizeLimit", "InputSizes", "describe", "input_sizes", "spatial_sizes"]

MAX_RANGE = 1_000_000  # the widest range of sizes listed (summary --input-sizes, verify --input-range)
MAX_PERIOD = 1024  # beyond this period, sizes are tried one by one ...
BRUTE_LIMIT = 5_000  # ... over at most this many sizes
COMMON_SEARCH = 100_000  # sizes searched for the smallest one valid on every axis alike
LETTERS = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}  # the spatial axes' names, by their number


class InputSizeLimit(UsageError):
    """A range the analysis will not answer in seconds."""


@dataclass(frozen=True)
class AxisSizes:
    """One spatial axis: its valid sizes in low..high (the other axes at the spec's sizes), the smallest
    valid size overall (None: none is valid), and each part's output size on this axis."""

    axis: str  # L; D, H or W
    low: int
    high: int
    valid: tuple[int, ...]
    smallest: int | None
    outputs: tuple[tuple[str, str], ...]  # (part, its output size as a formula of the axis's size, or a note)
    accepts: Callable[[int], bool] = field(default=lambda size: False, compare=False, repr=False)

    def describe_valid(self) -> str:
        return describe(self.valid, self.low, self.high, self.axis)

    def rule(self) -> tuple:
        """What the axis answers, its letter left out: two axes with the same rule are reported as one."""
        letter = re.compile(rf"\b{self.axis}\b")
        return (self.valid, self.smallest, tuple((p, letter.sub("X", f)) for p, f in self.outputs))


@dataclass(frozen=True)
class InputSizes:
    """Every spatial axis's answer, and what they give together for inputs of one size on every axis
    (a square, a cube: what `verify --input-range LO..HI` varies)."""

    low: int
    high: int
    axes: tuple[AxisSizes, ...]
    smallest: int | None  # the smallest size valid on every axis alike (None: none found)

    @property
    def uniform(self) -> bool:
        """Every axis follows the same rule (a square 2-D network: the H-only report of old)."""
        return len({a.rule() for a in self.axes}) == 1

    @property
    def letter(self) -> str:
        """The name of a size taken on every axis alike: H on a square network (W follows), else D=H=W."""
        return "H" if self.uniform and len(self.axes) == 2 else "=".join(a.axis for a in self.axes)

    @property
    def valid(self) -> tuple[int, ...]:
        """The sizes in low..high valid on every axis alike."""
        common = set(self.axes[0].valid).intersection(*(a.valid for a in self.axes[1:]))
        return tuple(sorted(common))

    @property
    def outputs(self) -> tuple[tuple[str, str], ...]:
        """Each part's output size for one size on every axis: its formula, or the axes' formulas joined."""
        if self.uniform:
            first = self.axes[0]
            return first.outputs if first.axis == self.letter else self.axes_joined()
        return self.axes_joined()

    def axes_joined(self) -> tuple[tuple[str, str], ...]:
        rows = []
        for i, (part, _) in enumerate(self.axes[0].outputs):
            shown = [a.outputs[i][1] for a in self.axes]
            rows.append((part, shown[0] if len(set(shown)) == 1 and "vector" in shown[0] else " × ".join(shown)))
        return tuple(rows)

    @property
    def smallest_input(self) -> tuple[int, ...] | None:
        """The smallest valid input, axis by axis (each axis's smallest size), or None."""
        sizes = tuple(a.smallest for a in self.axes)
        return None if any(s is None for s in sizes) else sizes  # type: ignore[return-value]

    def describe_valid(self) -> str:
        return describe(self.valid, self.low, self.high, self.letter)

    def groups(self) -> list[list[AxisSizes]]:
        """The axes, those with the same rule together (H and W of a video network)."""
        found: dict[tuple, list[AxisSizes]] = {}
        for a in self.axes:
            found.setdefault(a.rule(), []).append(a)
        return list(found.values())

    def lines(self) -> list[str]:
        """What `summary --input-sizes` prints."""
        head = f"input sizes {self.low}..{self.high}"
        if self.uniform:
            first, rest = self.axes[0], [a.axis for a in self.axes[1:]]
            follow = f"; {' and '.join(rest)} follow{'s' if len(rest) == 1 else ''} the same rule" if rest else ""
            smallest = (
                "x".join([str(first.smallest)] * len(self.axes)) if first.smallest else "none (no input size is valid)"
            )
            lines = [f"{head} ({first.axis}{follow}): {first.describe_valid()}; the smallest input is {smallest}"]
            width = max((len(part) for part, _ in first.outputs), default=0)
            return lines + [f"  {part:<{width}}  {shown}" for part, shown in first.outputs]
        groups = self.groups()
        names = [", ".join(a.axis for a in group) for group in groups]
        lines = [f"{head}, axis by axis (the other axes at the spec's sizes; an input is valid when each size is):"]
        width = max(len(n) for n in names)
        lines += [f"  {name:<{width}}  {group[0].describe_valid()}" for name, group in zip(names, groups)]
        shape = self.smallest_input
        lines.append(
            "  the smallest input is " + ("x".join(map(str, shape)) if shape else "none (no input size is valid)")
        )
        table = [["part", *names]] + [
            [part, *(group[0].outputs[i][1] for group in groups)] for i, (part, _) in enumerate(groups[0][0].outputs)
        ]
        widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
        return lines + ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]

    def to_json(self) -> dict[str, Any]:
        """`summary --json`'s `input_sizes`: the sizes valid on every axis alike (the keys of the 2-D
        report), and `axes`, one object per spatial axis."""
        return {
            "low": self.low,
            "high": self.high,
            "valid": self.describe_valid(),
            "valid_sizes": list(self.valid),
            "smallest": self.smallest,
            "outputs": dict(self.outputs),
            "smallest_input": list(self.smallest_input) if self.smallest_input else None,
            "axes": [
                {
                    "axis": a.axis,
                    "valid": a.describe_valid(),
                    "valid_sizes": list(a.valid),
                    "smallest": a.smallest,
                    "outputs": dict(a.outputs),
                }
                for a in self.axes
            ],
        }


def input_sizes(net: Network, low: int, high: int) -> InputSizes:
    """Each spatial axis's valid sizes in low..high and its parts' output formulas (see the module
    docstring); UsageError for a vector network, InputSizeLimit for a range too long to answer."""
    rank = len(net.input_shape) - 1
    if rank not in LETTERS:
        raise UsageError(f"`{net.name}` takes a vector input: it has no spatial input size")
    if high - low + 1 > MAX_RANGE:
        raise InputSizeLimit(f"a range of at most {MAX_RANGE:,} input sizes, not {high - low + 1:,}")
    rows = _measured(net)
    axes = tuple(_axis(net, rows, axis, letter, low, high) for axis, letter in enumerate(LETTERS[rank], 1))
    if len({a.rule() for a in axes}) == 1:
        smallest = axes[0].smallest
    else:  # one size on every axis: each axis's rule repeats, so a bounded search finds the first
        start = max((a.smallest for a in axes if a.smallest is not None), default=None)
        found = (s for s in range(start or 1, (start or 1) + COMMON_SEARCH) if all(a.accepts(s) for a in axes))
        smallest = next(found, None) if all(a.smallest is not None for a in axes) else None
    return InputSizes(low, high, axes, smallest)


def _axis(net: Network, rows: dict[str, str], axis: int, letter: str, low: int, high: int) -> AxisSizes:
    """One axis by periods, or size by size where its period is too long."""
    graph = net.ops
    plan = AxisPlan(graph, axis)
    own = net.input_shape[axis]
    start = threshold(plan, own) if plan.push(own) is not None else 1
    table = periods(plan, start) if plan.period <= MAX_PERIOD else None
    if table is None:
        return _size_by_size(net, rows, axis, letter, low, high, start)
    period = plan.period
    bits = bytearray(high - low + 1)
    smallest = None
    samples: list[tuple[int, int]] = []  # (size, residue) of valid sizes in the range that fix the formulas
    for r, (_, _, ks) in enumerate(table):
        first = start + r
        if ks is EVERY:
            smallest = first if smallest is None else min(smallest, first)
            h = first if first >= low else first + -(-(low - first) // period) * period
            if h <= high:
                bits[h - low :: period] = b"\1" * len(range(h, high + 1, period))
                samples += [(x, r) for x in range(h, min(high, h + 2 * period) + 1, period)]
        else:
            for k in sorted(ks):
                h = first + k * period
                smallest = h if smallest is None else min(smallest, h)
                if low <= h <= high:
                    bits[h - low] = 1
                    samples.append((h, r))
    valid = tuple(itertools.compress(range(low, high + 1), bits))
    every = {r for r, (_, _, ks) in enumerate(table) if ks is EVERY}
    outputs = []
    for part, node in rows.items():
        pairs = sorted((h, table[r][0][node] + (h - start - r) // period * table[r][1][node]) for h, r in samples)
        if pairs and all(o == 0 for _, o in pairs):
            outputs.append((part, "a vector"))
            continue
        growth = {table[r][1][node] for r in every if any(rr == r for _, rr in samples)}

        def holds(s: int, growth=growth) -> bool:  # beyond the samples, a fit must grow as the sizes do
            return all(g == 0 for g in growth) if s == 0 else (period % s == 0 and growth <= {period // s})

        found = fit(pairs, (plan.rate[node],), holds)
        outputs.append((part, show(found, letter) if found is not None else "no simple formula"))

    def accepts(size: int) -> bool:
        if size < start:
            return False
        k, r = divmod(size - start, period)
        ks = table[r][2]
        return ks is EVERY or k in ks

    return AxisSizes(letter, low, high, valid, smallest, tuple(outputs), accepts)


def _measured(net: Network) -> dict[str, str]:
    """The rows of the formulas: each part's last node, then each output of a network with several
    (`output 0`, `output aux`: the tensor it returns), so every output has its formula."""
    rows = _last_of_parts(net.ops)
    if net.output_form != "tensor":
        rows.update((f"output {o.name}", o.node) for o in net.outputs)
    return rows


def _last_of_parts(graph: OpGraph) -> dict[str, str]:
    last: dict[str, str] = {}
    for name, data in graph.nodes.items():
        if data.part != "input":
            last[data.part] = name
    return last


def _size_by_size(
    net: Network, rows: dict[str, str], axis: int, letter: str, low: int, high: int, start: int
) -> AxisSizes:
    """Each size pushed through the graph: for an axis whose period is too long for the analysis."""
    graph = net.ops
    lo = max(low, start)
    if high - lo + 1 > BRUTE_LIMIT:
        raise InputSizeLimit(
            f"`{net.name}` repeats its valid sizes of {letter} only every {AxisPlan(graph, axis).period:,} sizes: "
            f"give a range of at most {BRUTE_LIMIT:,} sizes from {lo}"
        )
    valid, per_size = [], {}
    for h in range(lo, high + 1):
        sizes = spatial_sizes(graph, h, axis)
        if sizes is not None:
            valid.append(h)
            per_size[h] = sizes
    smallest = valid[0] if valid and valid[0] == lo and lo == start else None
    if smallest is None:
        smallest = next(
            (h for h in range(start, start + BRUTE_LIMIT) if spatial_sizes(graph, h, axis) is not None),
            valid[0] if valid else None,
        )
    outputs = []
    for part, node in rows.items():
        pairs = [(h, per_size[h][node]) for h in valid]
        if pairs and all(o == 0 for _, o in pairs):
            outputs.append((part, "a vector"))
            continue
        shown = formula(pairs, letter)
        outputs.append((part, shown if shown is not None else "no simple formula"))

    def accepts(size: int) -> bool:
        return size in per_size or (size >= start and spatial_sizes(graph, size, axis) is not None)

    return AxisSizes(letter, low, high, tuple(valid), smallest, tuple(outputs), accepts)
