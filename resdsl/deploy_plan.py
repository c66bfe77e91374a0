"""`resdsl compile --deploy`: how a checked network becomes its inference form (no torch here).

The pass works on the checked network's op graph, never on a trace. It rewrites a copy of the
graph step by step and records each step, so that backend/deploy.py can do the same arithmetic
on the weights, in the same order:

1. `stdconv` and `scaled_stdconv` become plain `conv`s (their weights standardised, and scaled, once,
   not at every call);
2. ops that are the identity in eval mode (`dropout`, `drop_path`, `identity`) are removed;
3. every batch norm (`bn`, `frozen_bn`: a constant scale and shift per channel in eval mode) folds
   into the conv or fc that directly precedes it and reads nothing else (the conv gains a bias),
   or else into a conv without padding or an fc that directly follows it and is its only reader;
4. a sum (`add`, nested sums flattened) whose every input is a conv, a lone batch norm, or the
   tensor itself, all reading one tensor with one stride, groups and output, becomes one conv
   (RepVGG's 3×3 + 1×1 + identity-BN -> one 3×3): kernels centred in the largest, the identity
   as a centred identity kernel per group.

Steps 3 and 4 repeat until nothing changes (a fused sum followed by a norm folds in turn). What
stays is reported with its reason: a norm over the input's own statistics (`gn`, `evonorm`, `frn`)
has no constant weights to fold into anything, and a batch norm with no conv or fc next to it
stays a batch norm in eval mode; both are still exact, so neither is refused.

The result is a checked `Network` in its own right (costs annotated again, parts, outputs), so
the summary, the module builder and the ejector take it as they take any other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .analysis import annotate, parts
from .graph import Node, OpGraph, Role
from .network import Network
from .ops import ALL
from .ops.base import per_axis, uniform

NORMS = ("bn", "frozen_bn")  # a constant affine map per channel in eval mode
INPUT_NORMS = ("gn", "evonorm", "frn")  # normalise by their own input's statistics
EVAL_IDENTITIES = ("dropout", "drop_path", "identity")
LINEAR = ("conv", "fc")


@dataclass(frozen=True)
class Materialise:
    """`conv` (a stdconv or scaled_stdconv) keeps its name; its weights are standardised once with `eps`,
    and for a scaled_stdconv multiplied by its fixed `scale` (gamma / sqrt(fan_in)) and, where it learns
    one (`gain`), by its gain, which the plain conv no longer has."""

    conv: str
    eps: float
    scale: float = 1.0
    gain: bool = False


@dataclass(frozen=True)
class Drop:
    """An op that is the identity in eval mode, removed."""

    node: str
    kind: str


@dataclass(frozen=True)
class Fold:
    """The norm `norm` folds into the conv or fc `into`: after it (`conv -> bn`) or before it."""

    norm: str
    into: str
    after: bool
    eps: float
    groups: int  # the conv's (1 for an fc): a norm before a grouped conv scales each group's inputs


@dataclass(frozen=True)
class Term:
    """One input of a fused sum: a conv, a lone norm of the source, or the source itself."""

    kind: str  # "conv", "norm" or "identity"
    node: str | None  # the conv or the norm (None for the identity)
    kernel: tuple[int, ...]  # the conv's kernel; () otherwise
    eps: float = 0.0  # the norm's


@dataclass(frozen=True)
class Fuse:
    """The sum `merge` (and the sums nested in it) becomes the one conv `conv` over `source`."""

    merge: str
    conv: str
    source: str
    terms: tuple[Term, ...]
    kernel: tuple[int, ...]
    groups: int
    removed: tuple[str, ...]  # every node it replaces: the sums, the convs, the norms


Step = Materialise | Drop | Fold | Fuse


@dataclass(frozen=True)
class Kept:
    node: str
    kind: str
    reason: str


@dataclass(frozen=True)
class Plan:
    original: Network
    deployed: Network
    steps: tuple[Step, ...]
    kept: tuple[Kept, ...]

    def count(self, kind: type) -> int:
        return sum(isinstance(s, kind) for s in self.steps)

    @property
    def params_removed(self) -> int:
        return self.original.params - self.deployed.params

    @property
    def macs_removed(self) -> int:
        return self.original.macs - self.deployed.macs

    def lines(self) -> list[str]:
        """The report: what was folded, fused and kept, and the static figures before and after."""
        folds = [s for s in self.steps if isinstance(s, Fold)]
        # a fold into a fused conv (a sum, then a norm) folds into a node the original does not have: a conv
        into_fc = sum(s.into in self.original.ops.nodes and self.original.ops.nodes[s.into].kind == "fc" for s in folds)
        order = {name: i for i, name in enumerate(self.deployed.ops.nodes)}
        fusions = sorted((s for s in self.steps if isinstance(s, Fuse)), key=lambda s: order.get(s.conv, 0))
        lines = [
            f"deploy {self.original.name}: folded {len(folds)} batch norm{_s(len(folds))} "
            f"({len(folds) - into_fc} into convs, {into_fc} into fc), fused {len(fusions)} "
            f"sum{_s(len(fusions))} of branches into one conv each, "
            f"{self.count(Materialise)} weight-standardised conv{_s(self.count(Materialise))} made plain convs, "
            f"{self.count(Drop)} eval-mode identit{'y' if self.count(Drop) == 1 else 'ies'} removed",
            f"params {self.original.params:,} -> {self.deployed.params:,} ({-self.params_removed:+,}), "
            f"MACs {self.original.macs:,} -> {self.deployed.macs:,} ({-self.macs_removed:+,}), "
            f"ops {len(self.original.ops) - 1:,} -> {len(self.deployed.ops) - 1:,}",
        ]
        if fusions:
            first = fusions[0]
            shown = " + ".join(t.node or "identity" for t in first.terms)
            lines.append(f"  e.g. {first.conv} = {shown} ({'x'.join(map(str, first.kernel))} conv)")
        by_reason: dict[str, list[str]] = {}
        for kept in self.kept:
            by_reason.setdefault(kept.reason, []).append(kept.node)
        for reason, nodes in by_reason.items():
            more = f" and {len(nodes) - 3} more" if len(nodes) > 3 else ""
            lines.append(f"  kept {len(nodes)} ({', '.join(nodes[:3])}{more}): {reason}")
        return lines


def _s(n: int) -> str:
    return "" if n == 1 else "s"


class _Rewrite:
    """A copy of the op graph being rewritten, and the outputs' nodes as they move."""

    def __init__(self, net: Network):
        g = OpGraph()
        for name, node in net.ops.nodes.items():
            g.add_node(name, replace(node, attrs=dict(node.attrs)))
        for u, v, edge in net.ops.edges():
            g.succ[u][v] = g.pred[v][u] = dict(edge)
        self.g = g
        self.moved: dict[str, str] = {}  # a removed node -> the node whose tensor it now is
        self.returned = set(net.output_nodes)

    def remove(self, name: str) -> None:
        for u in list(self.g.pred[name]):
            del self.g.succ[u][name]
        for v in list(self.g.succ[name]):
            del self.g.pred[v][name]
        del self.g.nodes[name], self.g.pred[name], self.g.succ[name]

    def bypass(self, name: str, to: str) -> None:
        """`name`'s readers read `to` instead, and `name` goes."""
        for v, edge in list(self.g.succ[name].items()):
            self.g.succ[to][v] = self.g.pred[v][to] = edge
        self.remove(name)
        self._move(name, to)

    def _move(self, name: str, to: str) -> None:
        self.moved[name] = to
        if name in self.returned:
            self.returned.discard(name)
            self.returned.add(to)

    def only_reader(self, name: str) -> str | None:
        """The one op that reads `name`'s tensor, where that op is all that does (and it is not returned)."""
        readers = self.g.succ[name]
        return next(iter(readers)) if len(readers) == 1 and name not in self.returned else None

    def final(self, name: str) -> str:
        while name in self.moved:
            name = self.moved[name]
        return name


def plan_deploy(net: Network) -> Plan:
    """The inference form of `net` and the steps that make it (see the module's docstring)."""
    rw = _Rewrite(net)
    g = rw.g
    steps: list[Step] = []
    for name, node in list(g.nodes.items()):
        if node.kind == "stdconv":
            steps.append(Materialise(name, node.attrs["eps"]))
            node.kind = "conv"
            node.attrs = ALL["conv"].make(**{k: v for k, v in node.attrs.items() if k != "eps"})
        elif node.kind == "scaled_stdconv":  # timm's ScaledStdConv2d: standardised, times gain · γ/√fan_in
            assert node.in_shape is not None  # shapes are checked before a deploy
            kernel = per_axis(node.attrs["kernel"], len(node.in_shape) - 1)
            fan_in = node.in_shape[0] // node.attrs["groups"] * math.prod(kernel)
            scale = node.attrs["gamma"] * fan_in**-0.5
            steps.append(Materialise(name, node.attrs["eps"], scale, bool(node.attrs["gain"])))
            node.kind = "conv"
            dropped = ("eps", "gamma", "gain", "gain_init")
            node.attrs = ALL["conv"].make(**{k: v for k, v in node.attrs.items() if k not in dropped})
        elif node.kind in EVAL_IDENTITIES:
            source = g.main_input(name)
            if not set(g.succ[name]) & set(g.succ[source]):  # never two edges between one pair
                steps.append(Drop(name, node.kind))
                rw.bypass(name, source)
    changed = True
    while changed:
        changed = False
        for name in list(g.nodes):
            if name in g.nodes and g.nodes[name].kind in NORMS:
                fold = _fold(rw, name)
                if fold is not None:
                    steps.append(fold)
                    changed = True
        for name in reversed(list(g.nodes)):  # an outer sum first: it opens the sums nested in it
            if name in g.nodes and g.nodes[name].kind == "add":
                fuse = _fuse(rw, name)
                if fuse is not None:
                    steps.append(fuse)
                    changed = True
    kept = tuple(_why_kept(rw, name) for name, node in g.nodes.items() if node.kind in NORMS + INPUT_NORMS)
    params, macs = annotate(g)
    outputs = tuple(replace(o, node=rw.final(o.node)) for o in net.outputs)
    deployed = replace(
        net, ops=g, output=rw.final(net.output), params=params, macs=macs, parts=tuple(parts(g)), outputs=outputs
    )
    return Plan(net, deployed, tuple(steps), kept)


def _fold(rw: _Rewrite, norm: str) -> Fold | None:
    g = rw.g
    eps = g.nodes[norm].attrs["eps"]
    source = g.main_input(norm)
    if g.nodes[source].kind in LINEAR and rw.only_reader(source) == norm:
        groups = g.nodes[source].attrs.get("groups", 1)
        g.nodes[source].attrs["bias"] = True
        rw.bypass(norm, source)
        return Fold(norm, source, True, eps, groups)
    reader = rw.only_reader(norm)
    if reader is not None and _takes_norm_before(g.nodes[reader]):
        groups = g.nodes[reader].attrs.get("groups", 1)
        g.nodes[reader].attrs["bias"] = True
        g.succ[source][reader] = g.pred[reader][source] = g.pred[reader][norm]
        rw.remove(norm)
        rw._move(norm, source)  # a point at the norm: its tensor is gone, the source's is the nearest
        return Fold(norm, reader, False, eps, groups)
    return None


def _takes_norm_before(node: Node) -> bool:
    """A norm before an fc, or before a conv without padding (zero padding of the normalised input is not
    the normalised zero padding), folds into its weights exactly."""
    if node.kind == "fc":
        return True
    if node.kind != "conv" or node.in_shape is None:
        return False
    return all(p == 0 for p in per_axis(node.attrs["padding"], len(node.in_shape) - 1))


def _summed(rw: _Rewrite, add: str, sums: list[str]) -> list[str]:
    """The tensors a sum adds, nested sums (read by this one alone) opened; `sums` collects those."""
    g = rw.g
    inputs = g.inputs(add)
    found = []
    for u in inputs.branches or (inputs.main, inputs.shortcut):
        assert u is not None  # a residual add has its shortcut
        if g.nodes[u].kind == "add" and rw.only_reader(u) == add:
            sums.append(u)
            found += _summed(rw, u, sums)
        else:
            found.append(u)
    return found


def _fuse(rw: _Rewrite, add: str) -> Fuse | None:
    g = rw.g
    sums: list[str] = []
    summed = _summed(rw, add, sums)
    terms: list[tuple[Term, str]] = []  # (term, the tensor it reads)
    for u in summed:
        node = g.nodes[u]
        if node.kind == "conv" and rw.only_reader(u) in (add, *sums):
            kernel = tuple(per_axis(node.attrs["kernel"], len(node.in_shape or ()) - 1))
            terms.append((Term("conv", u, kernel), g.main_input(u)))
        elif node.kind in NORMS and rw.only_reader(u) in (add, *sums):
            terms.append((Term("norm", u, (), node.attrs["eps"]), g.main_input(u)))
        else:
            terms.append((Term("identity", None, ()), u))
    sources = {source for _, source in terms}
    convs = [g.nodes[t.node] for t, _ in terms if t.kind == "conv" and t.node is not None]
    if len(sources) != 1 or not convs or len(terms) < 2:
        return None
    source = sources.pop()
    shape = g.nodes[add].shape
    axes = len(shape or ()) - 1
    first = convs[0].attrs
    stride = per_axis(first["stride"], axes)
    for conv in convs:
        a = conv.attrs
        kernel, padding = per_axis(a["kernel"], axes), per_axis(a["padding"], axes)
        if (
            per_axis(a["stride"], axes) != stride
            or a["groups"] != first["groups"]
            or any(d != 1 for d in per_axis(a["dilation"], axes))
            or any(k % 2 == 0 or p != k // 2 for k, p in zip(kernel, padding))
        ):
            return None
    identity = any(t.kind != "conv" for t, _ in terms)
    if identity and (any(s != 1 for s in stride) or g.nodes[source].shape != shape):
        return None
    removed = tuple(sums) + tuple(t.node for t, _ in terms if t.node is not None)
    if any(n.merge in (add, *sums) for name, n in g.nodes.items() if name not in removed and name != add):
        return None  # an inserted shortcut op that stays names this merge
    kernel = tuple(max(t.kernel[i] for t, _ in terms if t.kind == "conv") for i in range(axes))
    merge = g.nodes[add]
    scope = add.rpartition(".")[0]
    base = f"{scope}.reparam_conv" if scope else "reparam_conv"  # timm's name for RepVGG's fused conv
    name, n = base, 1
    while name in g.nodes:
        n += 1
        name = f"{base}{n}"
    attrs = ALL["conv"].make(
        out=first["out"],
        kernel=uniform(kernel),
        stride=first["stride"],
        padding=uniform(tuple(k // 2 for k in kernel)),
        groups=first["groups"],
        bias=True,
    )
    fused = replace(
        merge, kind="conv", attrs=attrs, in_shape=g.nodes[source].shape, policy=None, shortcut=None, inserted=False
    )
    # the fused conv takes the sum's place in execution order (after its source), then the old nodes go
    items = []
    for key, value in g.nodes.items():
        if key == add:
            items.append((name, fused))
        items.append((key, value))
    g.nodes = dict(items)
    g.pred[name], g.succ[name] = {}, {}
    g.succ[source][name] = g.pred[name][source] = {"role": Role.MAIN, "shape": g.nodes[source].shape}
    rw.bypass(add, name)
    for gone in removed:
        rw.remove(gone)
        rw._move(gone, name)
    return Fuse(add, name, source, tuple(t for t, _ in terms), kernel, first["groups"], removed)


def _why_kept(rw: _Rewrite, name: str) -> Kept:
    g = rw.g
    kind = g.nodes[name].kind
    if kind in INPUT_NORMS:
        return Kept(name, kind, f"`{kind}` normalises by its own input's statistics, so no constant weights replace it")
    source = g.main_input(name)
    return Kept(
        name,
        kind,
        "a batch norm with no conv or fc it can fold into (one directly before it that only it reads, or one "
        f"without padding directly after it, its only reader): it stays a batch norm in eval mode (e.g. after "
        f"`{g.nodes[source].kind}`)",
    )
