"""Which input sizes a network accepts, and what each part makes of them (`summary --input-sizes`).

The network is elaborated once; then the spatial size is pushed through its op graph with each op's
own shape rule (resdsl/ops/) and the same agreements the shape checker demands where tensors meet: a
residual add's shortcut (identity or the inserted ops) must land on the main path's size, and a
concat or a branch merge needs equal sizes. Ops are separable in H and W, so the rule for H is the
rule for W, and a square H is checked as H×H.

No size is tried one by one. Every spatial op maps H to floor((H + a)/s) + b (a conv or pool:
floor((H + 2p - d(k-1) - 1)/s) + 1; a pad: H + 2p; a zero-pad shortcut: ceil(H/s)) once its input is
large enough, and refuses smaller inputs; a global pool maps every H to 1. So, with P the least
common multiple of the strides multiplied along the graph's paths (32 for a ResNet):

- below a threshold T (the smallest H at which no op refuses its input, found by bisection: sizes
  only grow with H) no size is valid;
- from T on, each node's size at H + P is its size at H plus a constant (P/s along its path), so
  for each residue r of H - T modulo P the sizes are an arithmetic progression in k, H = T + r + kP,
  and each agreement (two sizes equal; a vector layer's map 1×1) holds for every k, for none, or for
  one k, which the two first periods tell.

That is 3P pushes through the graph (the third period checks the progressions), whatever the range:
the valid sizes, the smallest valid input and each part's output formula come from them. A network
whose P is over MAX_PERIOD is searched size by size, over at most BRUTE_LIMIT sizes.

What comes out: the valid sizes in the range as runs and strides ("every H from 32", "H from 9 with
H odd"), the smallest valid input, and each part's output size as a formula of H where one fits
every valid size (ceil(H/32), floor((H - 1)/2) + 1, ...).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from .errors import ShapeError, UsageError
from .graph import OpGraph
from .network import Network
from .ops import ALL

MAX_RANGE = 1_000_000  # the widest range of sizes listed (summary --input-sizes, verify --input-range)
MAX_PERIOD = 1024  # beyond this period, sizes are tried one by one ...
BRUTE_LIMIT = 5_000  # ... over at most this many sizes


class InputSizeLimit(UsageError):
    """A range the analysis will not answer in seconds."""


def spatial_sizes(graph: OpGraph, size: int) -> dict[str, int] | None:
    """Each node's H for a square input of `size`, or None if the network refuses that size.

    Vectors (after `flatten` or `fc`) have no H: their nodes map to 0.
    """
    out: dict[str, int] = {}
    for name, data in graph.nodes.items():
        if data.kind == "input":
            assert data.shape is not None  # the input's shape is the spec's
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
    valid: tuple[int, ...]  # the valid sizes in low..high
    smallest: int | None  # the smallest valid size overall (None: no size is valid)
    outputs: tuple[tuple[str, str], ...]  # (part, its output H as a formula of H, or a note)

    def describe_valid(self) -> str:
        return describe(self.valid, self.low, self.high)


def _bits(valid: tuple[int, ...], low: int, high: int) -> bytearray:
    bits = bytearray(high - low + 1)
    for v in valid:
        bits[v - low] = 1
    return bits


def _first_runs(bits: bytearray, low: int, count: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    i = bits.find(1)
    while i != -1 and len(runs) < count:
        j = bits.find(0, i)
        j = len(bits) if j == -1 else j
        runs.append((low + i, low + j - 1))
        i = bits.find(1, j)
    return runs


def describe(valid: tuple[int, ...], low: int, high: int) -> str:
    """The valid sizes in words: a run, a stride, or the runs themselves (byte maps: fast for a
    million sizes)."""
    if not valid:
        return f"no H from {low} to {high}"
    bits = _bits(valid, low, high)
    n_runs = (b"\0" + bytes(bits)).count(b"\0\1")
    if n_runs == 1:
        a, b = valid[0], valid[-1]
        if (a, b) == (low, high):
            return f"every H from {low} to {high}"
        return f"H from {a} to {b}" if b < high else f"every H from {a} (up to {high})"
    # a stride: every m-th size from the first one on
    first, last, step = valid[0], valid[-1], valid[1] - valid[0]
    if (
        len(valid) == (last - first) // step + 1
        and bits[first - low : last - low + 1 : step].count(0) == 0
        and last + step > high
    ):
        if step == 2:
            parity = "odd" if first % 2 else "even"
            return f"H from {first} with H {parity}"
        return f"H from {first} with H ≡ {first % step} (mod {step})"
    # a pattern that repeats every m sizes (ceil and floor halvings that must agree)
    window = bytes(bits[first - low :])
    for m in range(2, min(65, (high - first + 1) // 2 + 1)):  # seen at least twice over
        if window[m:] == window[:-m] and 0 in window[:m]:
            residues = sorted({(first + i) % m for i in range(m) if window[i]})
            return f"H from {first} with H mod {m} in {{{', '.join(map(str, residues))}}}"
    runs = _first_runs(bits, low, 8)
    shown = ", ".join(f"{a}..{b}" if a != b else f"{a}" for a, b in runs)
    return f"H in {shown}" + (f", … ({n_runs} runs)" if n_runs > 8 else "")


def _fit(
    pairs: list[tuple[int, int]], first: tuple[int, ...] = (), accept=lambda s: True
) -> tuple[int, int, int] | None:
    """(S, a, b) with floor((H + a)/S) + b = out for every (H, out), 0 <= a < S; (0, 0, c) for a
    constant. `first`: divisors to try first; `accept(S)`: whether a fit with divisor S holds beyond
    the pairs."""
    if not pairs:
        return None
    if len({o for _, o in pairs}) == 1 and accept(0):
        return (0, 0, pairs[0][1])
    h_max, o_max = max(pairs)
    guess = max(1, round(h_max / o_max)) if o_max else 1
    candidates = dict.fromkeys(
        [*first, *range(1, 65), *(1 << k for k in range(13)), *range(max(1, guess - 2), guess + 3)]
    )
    for s in candidates:
        if s < 1 or not accept(s):
            continue
        for a in range(s):  # floor((H + a)/S) + b, with 0 <= a < S: one way to write each such formula
            b = pairs[0][1] - (pairs[0][0] + a) // s
            if all(o == (h + a) // s + b for h, o in pairs):
                return (s, a, b)
    return None


def _show(fit: tuple[int, int, int]) -> str:
    s, a, b = fit
    if s == 0:
        return str(b)
    tail = f" {'+' if b > 0 else '-'} {abs(b)}" if b else ""
    if s == 1:
        return f"H{tail}"
    if a == 0:
        return f"floor(H/{s}){tail}"
    if a == s - 1:
        return f"ceil(H/{s}){tail}"
    return f"floor((H + {a})/{s}){tail}"


def _formula(pairs: list[tuple[int, int]]) -> str | None:
    """A formula f with f(H) = out for every (H, out): a constant, H, ceil(H/S), floor((H + a)/S) + b."""
    fit = _fit(pairs)
    return None if fit is None else _show(fit)


# ---- the periodic analysis ---------------------------------------------------------------------


class _Plan:
    """The op graph as a list of steps, and the agreements a valid size must meet."""

    def __init__(self, graph: OpGraph):
        self.steps: list[tuple] = []
        self.merges: list[tuple[str, tuple[str, ...], str | None]] = []  # (node, operands, weights)
        self.vectors: list[tuple[str, str, object, dict, int]] = []  # a map made a vector: (node, input, op, attrs, C)
        self.rate: dict[str, int] = {}  # the product of strides along the paths to a node (lcm over paths)
        for name, data in graph.nodes.items():
            if data.kind == "input":
                self.steps.append((name, "input", ()))
                self.rate[name] = 1
                continue
            inputs = graph.inputs(name)
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
            if in_shape is None or len(in_shape) != 3:  # not spatial
                self.steps.append((name, "vector", operands))
            elif data.shape is not None and len(data.shape) != 3:
                self.steps.append((name, "vector", operands))
                self.vectors.append((name, operands[0], op, data.attrs, in_shape[0]))
            else:
                self.steps.append((name, "op", operands, op, data.attrs, in_shape[0]))
                is_global = getattr(op, "is_global", None)
                if is_global is not None and is_global(data.attrs):
                    rate = 1  # every H gives 1x1
                else:
                    rate *= max(1, int(op.stride(data.attrs, None) or 1))
            self.rate[name] = rate
        self.period = math.lcm(*self.rate.values())

    def push(self, h: int) -> dict[str, int] | None:
        """Each node's H for input H, the agreements left out (a merge passes its first operand on);
        None where an op refuses its input (then every smaller H is refused too)."""
        out: dict[str, int] = {}
        for step in self.steps:
            name, kind, operands = step[0], step[1], step[2]
            if kind == "input":
                out[name] = h
            elif kind == "merge":
                out[name] = out[operands[0]]
            elif kind == "vector":
                out[name] = 0
            else:
                x = out[operands[0]]
                try:
                    shape = step[3].shape(step[4], (step[5], x, x))
                except ShapeError:
                    return None
                if len(shape) != 3 or shape[1] < 1:
                    return None
                out[name] = shape[1]
        return out


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


def _accepts(op, attrs, channels: int, x: int) -> bool:
    try:
        op.shape(attrs, (channels, x, x))
    except ShapeError:
        return False
    return True


def _periods(plan: _Plan, start: int):
    """Per residue r of H - start modulo P: (sizes at start + r, growth per period, the set of k)."""
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
        for _, source, op, attrs, channels in plan.vectors:
            x, g = s0[source], delta[source]
            if g == 0:
                ks = _and(ks, EVERY if _accepts(op, attrs, channels, x) else frozenset())
            else:
                taken = frozenset(k for k in range(3) if _accepts(op, attrs, channels, x + k * g))
                ks = _and(ks, EVERY if len(taken) == 3 else taken)
        rows.append((s0, delta, ks))
    return rows


def _threshold(plan: _Plan, known_good: int) -> int:
    """The smallest H at which no op refuses its input (sizes grow with H: a bisection)."""
    low, high = 1, known_good
    while low < high:
        mid = (low + high) // 2
        if plan.push(mid) is None:
            low = mid + 1
        else:
            high = mid
    return low


def input_sizes(net: Network, low: int, high: int) -> InputSizes:
    if len(net.input_shape) != 3:
        raise UsageError(f"`{net.name}` takes a vector input: it has no spatial input size")
    if high - low + 1 > MAX_RANGE:
        raise InputSizeLimit(f"a range of at most {MAX_RANGE:,} input sizes, not {high - low + 1:,}")
    graph = net.ops
    plan = _Plan(graph)
    own = max(net.input_shape[1:])
    start = _threshold(plan, own) if plan.push(own) is not None else 1
    rows = _periods(plan, start) if plan.period <= MAX_PERIOD else None
    if rows is None:
        return _size_by_size(net, low, high, start)
    period = plan.period
    bits = bytearray(high - low + 1)
    smallest = None
    samples: list[tuple[int, int]] = []  # (H, residue) of valid sizes in the range that fix the formulas
    for r, (_, _, ks) in enumerate(rows):
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
    every = {r for r, (_, _, ks) in enumerate(rows) if ks is EVERY}
    outputs = []
    for part, node in _measured(net).items():
        pairs = sorted((h, rows[r][0][node] + (h - start - r) // period * rows[r][1][node]) for h, r in samples)
        if pairs and all(o == 0 for _, o in pairs):
            outputs.append((part, "a vector"))
            continue
        growth = {rows[r][1][node] for r in every if any(rr == r for _, rr in samples)}

        def holds(s: int, growth=growth) -> bool:  # beyond the samples, a fit must grow as the sizes do
            return all(g == 0 for g in growth) if s == 0 else (period % s == 0 and growth <= {period // s})

        rate = plan.rate[node]
        fit = _fit(pairs, (rate,), holds)
        outputs.append((part, _show(fit) if fit is not None else "no simple formula"))
    return InputSizes(low, high, valid, smallest, tuple(outputs))


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


def _size_by_size(net: Network, low: int, high: int, start: int) -> InputSizes:
    """Each size pushed through the graph: for networks whose period is too long for the analysis."""
    graph = net.ops
    lo = max(low, start)
    if high - lo + 1 > BRUTE_LIMIT:
        raise InputSizeLimit(
            f"`{net.name}` repeats its valid sizes only every {_plan_period(graph):,} sizes: "
            f"give a range of at most {BRUTE_LIMIT:,} sizes from {lo}"
        )
    valid, per_size = [], {}
    for h in range(lo, high + 1):
        sizes = spatial_sizes(graph, h)
        if sizes is not None:
            valid.append(h)
            per_size[h] = sizes
    smallest = valid[0] if valid and valid[0] == lo and lo == start else None
    if smallest is None:
        smallest = next(
            (h for h in range(start, start + BRUTE_LIMIT) if spatial_sizes(graph, h) is not None),
            valid[0] if valid else None,
        )
    outputs = []
    for part, node in _measured(net).items():
        pairs = [(h, per_size[h][node]) for h in valid]
        if pairs and all(o == 0 for _, o in pairs):
            outputs.append((part, "a vector"))
            continue
        formula = _formula(pairs)
        outputs.append((part, formula if formula is not None else "no simple formula"))
    return InputSizes(low, high, tuple(valid), smallest, tuple(outputs))


def _plan_period(graph: OpGraph) -> int:
    return _Plan(graph).period
