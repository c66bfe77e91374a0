"""Which input sizes a network accepts, and what each part makes of them (`summary --input-sizes`).

The network is elaborated once; then the spatial size is pushed through its op graph for each
candidate H, with each op's own shape rule (resdsl/ops/) and the same agreements the shape checker
demands where tensors meet: a residual add's shortcut (identity or the inserted ops) must land on
the main path's size, and a concat or a branch merge needs equal sizes. No elaboration, parsing or
counting is repeated, so a range of a thousand sizes takes milliseconds. Ops are separable in H and
W, so the rule for H is the rule for W, and a square H is checked as H×H.

What comes out: the valid sizes in the range as runs and strides ("every H from 32", "H from 9 with
H odd"), the smallest valid input, and each part's output size as a formula of H where one fits
every valid size (ceil(H/32), floor((H - 1)/2) + 1, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ShapeError
from .graph import OpGraph
from .network import Network
from .ops import ALL

MAX_SEARCH = 1 << 16  # the smallest valid size is looked for up to here


def spatial_sizes(graph: OpGraph, size: int) -> dict[str, int] | None:
    """Each node's H for a square input of `size`, or None if the network refuses that size.

    Vectors (after `flatten` or `fc`) have no H: their nodes map to 0.
    """
    out: dict[str, int] = {}
    for name, data in graph.nodes.items():
        if data.kind == "input":
            if len(data.shape) != 3:
                return None
            out[name] = size
            continue
        inputs = graph.inputs(name)
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
        if h == 0 or data.in_shape is None or len(data.in_shape) != 3:
            out[name] = 0
            continue
        try:
            shape = ALL[data.kind].shape(data.attrs, (data.in_shape[0], h, h))
        except ShapeError:
            return None
        if len(shape) != 3:
            out[name] = 0
            continue
        if shape[1] < 1:
            return None
        out[name] = shape[1]
    return out


@dataclass(frozen=True)
class InputSizes:
    low: int
    high: int
    valid: tuple[int, ...]                 # the valid sizes in low..high
    smallest: int | None                   # the smallest valid size overall (None: none up to MAX_SEARCH)
    outputs: tuple[tuple[str, str], ...]   # (part, its output H as a formula of H, or a note)

    def describe_valid(self) -> str:
        return describe(self.valid, self.low, self.high)


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def describe(valid: tuple[int, ...], low: int, high: int) -> str:
    """The valid sizes in words: a run, a stride, or the runs themselves."""
    if not valid:
        return f"no H from {low} to {high}"
    runs = _runs(valid)
    if len(runs) == 1:
        a, b = runs[0]
        if (a, b) == (low, high):
            return f"every H from {low} to {high}"
        return f"H from {a} to {b}" if b < high else f"every H from {a} (up to {high})"
    # a stride: every m-th size from the first one on
    first, step = valid[0], valid[1] - valid[0]
    if all(b - a == step for a, b in zip(valid, valid[1:])) and valid[-1] + step > high:
        if step == 2:
            parity = "odd" if first % 2 else "even"
            return f"H from {first} with H {parity}"
        return f"H from {first} with H ≡ {first % step} (mod {step})"
    # a pattern that repeats every m sizes (ceil and floor halvings that must agree)
    for m in range(2, min(65, (high - first + 1) // 2 + 1)):  # seen at least twice over
        residues = sorted({v % m for v in valid})
        if len(residues) < m and set(valid) == {h for h in range(first, high + 1) if h % m in residues}:
            return f"H from {first} with H mod {m} in {{{', '.join(map(str, residues))}}}"
    shown = ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs[:8])
    return f"H in {shown}" + (f", … ({len(runs)} runs)" if len(runs) > 8 else "")


def _formula(pairs: list[tuple[int, int]]) -> str | None:
    """A formula f with f(H) = out for every (H, out): a constant, H, ceil(H/S), floor((H + a)/S) + b."""
    if not pairs:
        return None
    if len({o for _, o in pairs}) == 1:
        return str(pairs[0][1])
    if all(o == h for h, o in pairs):
        return "H"
    h_max, o_max = max(pairs)
    guess = max(1, round(h_max / o_max)) if o_max else 1
    candidates = sorted({*range(1, 65), *(1 << k for k in range(13)), *range(max(1, guess - 2), guess + 3)})
    for s in candidates:
        for a in range(s):  # floor((H + a)/S) + b, with 0 <= a < S: one way to write each such formula
            b = pairs[0][1] - (pairs[0][0] + a) // s
            if all(o == (h + a) // s + b for h, o in pairs):
                tail = f" {'+' if b > 0 else '-'} {abs(b)}" if b else ""
                if s == 1:
                    return f"H{tail}"
                if a == 0:
                    return f"floor(H/{s}){tail}"
                if a == s - 1:
                    return f"ceil(H/{s}){tail}"
                return f"floor((H + {a})/{s}){tail}"
    return None


def input_sizes(net: Network, low: int, high: int) -> InputSizes:
    graph = net.ops
    valid, per_size = [], {}
    for h in range(low, high + 1):
        sizes = spatial_sizes(graph, h)
        if sizes is not None:
            valid.append(h)
            per_size[h] = sizes
    below = range(1, valid[0]) if valid else range(1, MAX_SEARCH)
    smallest = next((h for h in below if spatial_sizes(graph, h) is not None), valid[0] if valid else None)
    outputs = []
    last_of_part: dict[str, str] = {}
    for name, data in graph.nodes.items():
        if data.part != "input":
            last_of_part[data.part] = name
    for part, node in last_of_part.items():
        pairs = [(h, per_size[h][node]) for h in valid]
        if pairs and all(o == 0 for _, o in pairs):
            outputs.append((part, "a vector"))
            continue
        formula = _formula(pairs)
        outputs.append((part, formula if formula is not None else "no simple formula"))
    return InputSizes(low, high, tuple(valid), smallest, tuple(outputs))
