"""Static shape rules, and the one function that decides every shortcut.

A shape is a tuple (C, *spatial): (C,) for a vector, (C, L) for a sequence,
(C, H, W) for an image, (C, D, H, W) for a volume or a video. The batch
dimension is implicit. Strides are one number per spatial axis. Conv and pool sizes use PyTorch's floor formula

    out = floor((in + 2·padding − dilation·(kernel − 1) − 1) / stride) + 1

(ceil with `ceil`, as torch's ceil_mode, whose last window must start inside
the padded input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import ShapeError
from .graph import FAILED, Node, OpGraph, Role, show_shape
from .ops import ALL
from .ops.base import Shape, axis_text, elementwise, feature_map, per_axis, uniform
from .ops.upsample import torch_mode
from .values import Value

Strides = tuple[int, ...]  # one per spatial axis; () for a vector
MAX_DIM = 2**31 - 1  # the largest size an `input` statement may give


def check_input_shape(shape: object) -> Shape:
    """An input shape given from Python or the command line: C×L, C×H×W, C×D×H×W or a vector width, whole
    and positive.

    Raises ValueError with the reason; the spec's own `input` statement gets the same limits (E0303).
    """
    if not isinstance(shape, (tuple, list)):
        raise ValueError(f"input_shape must be a tuple such as (3, 224, 224) or (64,), not {type(shape).__name__}")
    if not 1 <= len(shape) <= 4:
        raise ValueError(
            "input_shape must be C×L, C×H×W or C×D×H×W (2 to 4 sizes) or a vector width (1 size), "
            f"not {len(shape)} sizes: {tuple(shape)!r}"
        )
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) and not (hasattr(dim, "__index__")):
            raise ValueError(f"input_shape sizes must be whole numbers, not {dim!r}")
        if not 1 <= int(dim) <= MAX_DIM:
            raise ValueError(f"input_shape sizes must be between 1 and {MAX_DIM:,}, not {int(dim):,}")
    return tuple(int(dim) for dim in shape)


def infer(kind: str, attrs: dict[str, Value], shape: Shape) -> Shape:
    """Output shape of one op from its input shape (its definition's rule); raise ShapeError if impossible."""
    op = ALL[kind]
    if op.feature_map:
        feature_map(kind, shape)
    return op.shape(attrs, shape)


def branch_merge_shape(kind: str, attrs: dict[str, Value], branches: list[Shape], weights: Shape | None) -> Shape:
    """Shape after a merge of `branches` (see branches.py): its definition's rule (resdsl/ops/merge.py)."""
    return ALL[kind].merge_shape(attrs, branches, weights)


# ---- the shortcut rule -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShortcutPlan:
    """How the shortcut of a residual add carries x to the main path's shape.

    kind: "identity" | "projection" (1×1 conv + BN) | "zeropad" (option A) |
          "avgproj" (ResNet-D: avg-pool, 1×1 conv, BN) | "none" (plain network)
    """

    kind: str
    stride: int | tuple[int, ...] = 1  # one number where every axis has the same (torchvision's `stride=2`)


def plan_shortcut(policy: str, x: Shape, y: Shape, stride: int | Strides = 1) -> ShortcutPlan:
    """He et al. 2015's options, decided in one place.

    x: the shortcut's input, y: the main path's output, stride: the main
    path's total stride on each spatial axis (the block's stride, as torchvision passes it).

    A: zero-pad when the shape changes      B: project when it changes
    C: always project                       D: avg-pool + project (ResNet-D)
    identity: shapes must already match     none: no shortcut at all

    "The shape changes" means stride != 1 or the channels differ, exactly
    torchvision's `if stride != 1 or inplanes != planes * expansion`.
    """
    if policy == "none":
        return ShortcutPlan("none")
    if isinstance(stride, int):  # the same on every axis
        stride = (stride,) * (len(x) - 1)
    if len(x) != len(y):
        raise ShapeError(
            "E0401",
            f"residual add of a {show_shape(y)} main path and a {show_shape(x)} shortcut",
            help="a residual block cannot turn a feature map into a vector",
        )
    _check_stride(x, y, stride)
    if all(s == 1 for s in stride) and x[0] == y[0] and policy != "C":
        return ShortcutPlan("identity")
    if policy == "identity":
        raise ShapeError(
            "E0401",
            f"residual add of a {show_shape(y)} main path and a {show_shape(x)} shortcut under `shortcut identity`",
            help="use `shortcut B` to insert a 1×1 projection, or `shortcut A` to zero-pad",
        )
    if policy == "A":
        if y[0] < x[0]:
            raise ShapeError(
                "E0401",
                f"option A cannot shrink channels: the shortcut carries {show_shape(x)} "
                f"but the main path gives {show_shape(y)}",
                help="zero-padding only adds channels; use `shortcut B` to project",
            )
        return ShortcutPlan("zeropad", _one(stride))
    return ShortcutPlan({"B": "projection", "C": "projection", "D": "avgproj"}[policy], _one(stride))


def plan_fit(fit: str | None, x: Shape, y: Shape) -> str | None:
    """The mirror of plan_shortcut: how a merge's input x that is *smaller* than y (a deeper tensor meeting
    a skip: FPN's top-down path, a U-Net decoder, ASPP's pooled branch) is carried up to y's spatial size.

    fit: the mode a `shortcut nearest` (or linear, bilinear, trilinear) statement put in force, or None.
    Returns that mode when x is no larger than y on any axis and smaller on one, else None: a larger
    shortcut is plan_shortcut's, and without a fit in force a smaller one is refused there (E0407) or by
    the merge (E0404, E0409). The resize takes y's size itself, not a factor, as torchvision's
    `F.interpolate(top, size=lateral.shape[-2:])`, so it fits at any input size. E0412: a mode for
    another rank (`bilinear` on a volume).
    """
    if fit is None or len(x) < 2 or len(x) != len(y):
        return None
    if any(a > b for a, b in zip(x[1:], y[1:])) or x[1:] == y[1:]:
        return None
    torch_mode(fit, len(x) - 1, "shortcut")
    return fit


def tap_plan(plan: ShortcutPlan, x: Shape, y: Shape, stride: Strides) -> ShortcutPlan:
    """The same kind of shortcut taken from a point on the main path (`residual(project_from = ...)`):
    x is that point's shape and stride the main path's stride from there to the merge."""
    _check_stride(x, y, stride)
    if plan.kind == "zeropad" and y[0] < x[0]:
        raise ShapeError(
            "E0401",
            f"option A cannot shrink channels: the shortcut carries {show_shape(x)} "
            f"but the main path gives {show_shape(y)}",
            help="zero-padding only adds channels; use `shortcut B` to project",
        )
    return ShortcutPlan(plan.kind, _one(stride))


def _one(stride: Strides) -> int | tuple[int, ...]:
    """The plan's stride as the modules take it: one number when every axis has it (1 for a vector)."""
    return uniform(stride) if stride else 1


def _check_stride(x: Shape, y: Shape, stride: Strides) -> None:
    """A 1×1 projection (or subsampling) with the main path's stride must give the main path's sizes."""
    if len(x) == 1:
        return
    expected = tuple(-(-size // s) for size, s in zip(x[1:], stride))
    if expected != tuple(y[1:]):
        shown = axis_text(uniform(stride), "x")
        raise ShapeError(
            "E0407",
            f"the main path turns {show_shape(x[1:])} into {show_shape(y[1:])} with stride {shown}, but a "
            f"stride-{shown} shortcut gives {show_shape(expected)}",
            help="pad the main path's convs (`p` defaults to k//2) so that only strides change the sizes",
        )


def main_path_stride(kind: str, attrs: dict[str, Value], shape: Shape | None) -> Strides:
    """How much one op subsamples each spatial axis: its stride (a global pool: its whole input)."""
    axes = len(shape) - 1 if shape is not None else 0
    op = ALL.get(kind)
    stride = op.stride(attrs, shape) if op is not None else 1  # a merge: its main input's stride
    if axes == 0:
        return ()
    # an op whose stride is per axis on another rank cannot reach here: its shape rule refused it (E0411)
    return per_axis(stride, axes)


# ---- the graph pass ---------------------------------------------------------------


def infer_graph(graph: OpGraph, reporter) -> None:
    """Give every node `in_shape` and `shape`; apply each merge's shortcut plan.

    Nodes are visited in creation order, which is topological. A node whose
    input is unknown (an earlier error) is skipped quietly, so one mistake is
    reported once, not at every op after it.
    """
    inserted = False
    nodes = graph.nodes
    for node, data in list(nodes.items()):
        kind = data.kind
        if kind == "input":
            data.in_shape = None
            continue
        if kind == FAILED:  # an element that failed: what follows it is not checked against a guess
            data.in_shape = data.shape = None
            continue
        inputs = graph.inputs(node)
        main = nodes[inputs.main].shape
        data.in_shape = main
        data.shape = None
        if main is None:
            continue
        try:
            if inputs.branches:  # a merge of `branches`
                shapes = [shape for b in inputs.branches if (shape := nodes[b].shape) is not None]
                weights = nodes[inputs.weights].shape if inputs.weights else None
                if len(shapes) < len(inputs.branches) or (inputs.weights and weights is None):
                    continue
                if data.fit is not None and _fit_branches(graph, node, inputs.branches, shapes):
                    shapes = [nodes[b].shape for b in graph.inputs(node).branches]  # type: ignore[misc]
                    inserted = True
                try:
                    data.shape = branch_merge_shape(kind, data.attrs, shapes, weights)
                except ShapeError as exc:  # say which ops changed H×W, and how
                    raise _with_causes(exc, graph, inputs.branches, shapes) from None
            elif data.is_merge:  # a residual block's merge: main path and shortcut
                assert inputs.shortcut is not None  # every residual merge has a shortcut edge
                x = nodes[inputs.shortcut].shape
                if x is None:
                    continue
                shortcut = inputs.shortcut
                fitted = _fit_shortcut(graph, node, shortcut, inputs.main, x, main)
                if fitted is not None:  # `shortcut nearest`: the smaller shortcut resized to the main path's size
                    shortcut, x, inserted = fitted, (x[0], *main[1:]), True
                op = ALL[kind]
                if not op.planned:  # `dense`'s concat: no shortcut plan
                    data.shape = op.merge_shape(data.attrs, [main, x], residual=True)
                    data.shortcut = "upsample" if fitted else "identity"
                    continue
                if data.written:  # the block wrote its shortcut: no plan, the shapes must agree
                    if x != main:
                        raise ShapeError(
                            "E0401",
                            f"residual add of a {show_shape(main)} main path and a "
                            f"{show_shape(x)} shortcut: the shortcut the block writes must give "
                            "the main path's shape",
                            help="add ops to the `shortcut { ... }` body (e.g. a strided 1×1 "
                            "conv), or leave the body out to let the policy insert them",
                        )
                    data.shape = main  # `shortcut` ("written" or "identity") was set by the elaborator
                    continue
                assert data.policy is not None  # the elaborator gives every residual add the policy in force
                stride = (1,) * (len(x) - 1) if fitted else _stride_between(graph, inputs.main, shortcut)
                plan = plan_shortcut(data.policy, x, main, stride)
                data.shortcut = "upsample" if fitted and plan.kind == "identity" else plan.kind
                data.shape = main
                if plan.kind not in ("identity", "none"):
                    source = shortcut if fitted else data.project_from or shortcut
                    if source != shortcut:  # ResNet v2: project the pre-activated tensor instead
                        x = nodes[source].shape
                        assert x is not None  # the tap lies on the main path before the merge, whose shape is known
                        plan = tap_plan(plan, x, main, _stride_between(graph, inputs.main, source))
                    _insert_shortcut(graph, node, shortcut, source, plan, x, main, norm=data.project_norm)
                    inserted = True
            elif kind == "resize":  # to another tensor's size (ops/upsample.py); no `size` edge: its input's
                like = nodes[inputs.size or inputs.main].shape
                if like is not None:
                    data.shape = ALL[kind].resize_shape(data.attrs, main, like)  # type: ignore[attr-defined]
            else:
                data.shape = infer(kind, data.attrs, main)
        except ShapeError as exc:
            detail = f"input {show_shape(main)}" if not data.is_merge else None
            reporter.error(
                exc.code,
                exc.message,
                data.span,
                help=exc.help,
                trace=data.trace,
                notes=((detail,) if detail else ()) + exc.notes,
            )
    for u, _, edge in graph.edges():  # edges carry the tensor's shape
        edge["shape"] = nodes[u].shape
    if inserted:  # put each inserted shortcut just before its merge
        graph.reorder(key=lambda data: data.seq)


def _with_causes(exc: ShapeError, graph: OpGraph, branches: tuple[str, ...], shapes: list[Shape]) -> ShapeError:
    """A branch merge whose H×W differ: name the ops of each branch that changed H×W, and say why
    (a stride, or an even kernel, which the same-padding rule leaves one larger than its input)."""
    if all(s[1:] == shapes[0][1:] for s in shapes):
        return exc  # the channels differ: the message says so already
    chains = [_main_chain(graph, b) for b in branches]
    common = set.intersection(*(set(c) for c in chains))
    notes, even = [], False
    for index, chain in enumerate(chains):
        for node in reversed([n for n in chain if n not in common]):
            data = graph.nodes[node]
            if data.in_shape is None or data.shape is None or data.in_shape[1:] == data.shape[1:]:
                continue
            kernel = data.attrs.get("kernel")
            even_kernel = data.attrs.get("stride", 1) == 1 and isinstance(kernel, int) and kernel % 2 == 0
            even = even or even_kernel
            why = f"its even kernel {kernel}" if even_kernel else f"stride {data.attrs.get('stride', '?')}"
            notes.append(
                f"branch {index}: `{data.kind}` at line {data.span.line} makes "
                f"{show_shape(data.in_shape[1:])} into {show_shape(data.shape[1:])} ({why})"
            )
    help = (
        "an even kernel with the same-padding rule gives one more row and column than its input: use an "
        "odd kernel, or give `p` explicitly"
        if even
        else "give every branch the same stride"
    )
    return ShapeError(exc.code, exc.message, help=help, notes=tuple(notes))


def _main_chain(graph: OpGraph, node: str, limit: int = 10_000) -> list[str]:
    """`node` and its main inputs back to the network's input (at most `limit` of them)."""
    chain = [node]
    while graph.nodes[node].kind != "input" and len(chain) < limit:
        node = graph.main_input(node)
        chain.append(node)
    return chain


def _stride_between(graph: OpGraph, main: str, source: str) -> Strides:
    """Product of the strides on the main path, per axis, walked back from the merge's main input to `source`.

    A main path that starts elsewhere (`residual { from SKIP -> ... }`, a decoder's merge) never meets
    `source`: it has no stride relative to the shortcut, whose size a fit (`shortcut nearest`) matches."""
    shape = graph.nodes[main].shape
    ones: Strides = (1,) * (len(shape) - 1 if shape else 0)
    stride, node = ones, main
    nodes = graph.nodes
    while node != source and node in nodes and nodes[node].kind != "input":
        data = nodes[node]
        op = ALL.get(data.kind)
        if op is not None and op.stride(data.attrs, data.in_shape) != 1:  # most ops do not stride: skip them fast
            step = main_path_stride(data.kind, data.attrs, data.in_shape)
            if len(step) == len(stride):  # (a flatten inside the path changes the rank: its ops count nothing)
                stride = tuple(a * b for a, b in zip(stride, step))
        node = graph.main_input(node)
    return stride if node == source else ones


def _insert_shortcut(
    graph: OpGraph, merge: str, raw: str, source: str, plan: ShortcutPlan, x: Shape, y: Shape, norm: bool = True
) -> None:
    """Replace the edge raw -> merge by the planned shortcut ops from `source` (the raw input, or the
    tap a block chose), named like torchvision's `downsample`; `norm=False` leaves out the BN."""
    m = graph.nodes[merge]
    name = m.shortcut_name
    assert name is not None  # the elaborator names every residual merge's `downsample`
    feature_map = len(x) > 1
    ops: list[tuple[str, str, dict[str, Any]]]  # (node, kind, attrs)
    strides = plan.stride if isinstance(plan.stride, tuple) else (plan.stride,)
    if plan.kind == "zeropad":
        zeropad = ALL["zeropad"].make(stride=plan.stride, channels=y[0] - x[0], at_end=m.zeros_at_end)
        ops = [(name, "zeropad", zeropad)]
    else:
        stride = 1 if plan.kind == "avgproj" else plan.stride
        # timm's downsample_conv: the kernel (SENet-154's 3×3) only where it strides, padded as get_padding
        kernel = m.project_kernel if stride != 1 else 1
        # 1×1: torchvision's, at any stride
        padding = elementwise(lambda s: (s - 1 + kernel - 1) // 2, stride) if kernel > 1 else 0
        project = (
            ("conv", ALL["conv"].make(out=y[0], kernel=kernel, padding=padding, stride=stride, bias=m.project_bias))
            if feature_map
            else ("fc", ALL["fc"].make(out=y[0], bias=False))
        )
        steps = [project, (m.norm, ALL[m.norm].make())] if norm else [project]
        if plan.kind == "avgproj":
            # ResNet-D: the pool sits in slot 0 even when the stride is 1 (an identity), as in timm.
            pool = (
                "avgpool",
                ALL["avgpool"].make(
                    kernel=plan.stride, stride=plan.stride, padding=0, ceil=True, count_include_pad=False
                ),
            )
            steps = [pool] + steps if max(strides) > 1 else steps
            start = 0 if max(strides) > 1 else 1
        else:
            start = 0
        ops = [(f"{name}.{start + i}", kind, attrs) for i, (kind, attrs) in enumerate(steps)]
    graph.remove_edge(raw, merge)
    previous, shape = source, x
    for i, (node, kind, attrs) in enumerate(ops):
        out = infer(kind, attrs, shape)
        graph.add_node(
            node,
            Node(
                kind,
                m.span,
                attrs,
                m.trace,
                m.stage,
                m.block,
                m.block_type,
                m.part,
                inserted=True,
                merge=merge,
                seq=m.seq - 1 + (i + 1) / (len(ops) + 1),
                in_shape=shape,
                shape=out,
            ),
        )
        graph.add_edge(previous, node, Role.MAIN)
        previous, shape = node, out
    if shape != y:  # pragma: no cover - plan_shortcut chose the stride so that this holds
        raise ShapeError("E0407", f"shortcut gives {show_shape(shape)}, main path {show_shape(y)}")
    graph.add_edge(previous, merge, Role.SHORTCUT)


# ---- fits: the mirror of the shortcut plan (plan_fit) ---------------------------------------------


def _fit_shortcut(graph: OpGraph, merge: str, raw: str, main: str, x: Shape, y: Shape) -> str | None:
    """A residual's or dense's shortcut x smaller than its main path y, under a fit: a `resize` of x to
    the main path's size, before the merge (and before any projection the policy then inserts). Named
    after the merge (`add_up`: a function in the forward, no module) and drawn as inserted."""
    m = graph.nodes[merge]
    mode = plan_fit(m.fit, x, y)
    if mode is None:
        return None
    node = _fresh(graph, f"{merge}_up")
    _add_resize(graph, node, merge, mode, raw, main, x, (x[0], *y[1:]), inserted=True)
    graph.remove_edge(raw, merge)
    graph.add_edge(node, merge, Role.SHORTCUT)
    return node


def _fit_branches(graph: OpGraph, merge: str, branches: tuple[str, ...], shapes: list[Shape]) -> bool:
    """A branch merge under a fit: every branch smaller than the largest (ASPP's pooled branch, 1×1
    beside H×W) is resized to the size of the first branch that is no smaller than any other.
    False where no branch is smaller, or where no branch is the largest (the merge refuses them)."""
    m = graph.nodes[merge]
    largest = next((i for i, s in enumerate(shapes) if all(_within(t, s) for t in shapes)), None)
    if largest is None:
        return False
    changed = False
    for i, (branch, shape) in enumerate(zip(branches, shapes)):
        mode = plan_fit(m.fit, shape, shapes[largest])
        if mode is None:
            continue
        node = _fresh(graph, f"{merge}_up{i}")
        _add_resize(graph, node, merge, mode, branch, branches[largest], shape, (shape[0], *shapes[largest][1:]))
        edge = graph.pred[merge][branch]
        graph.remove_edge(branch, merge)
        graph.add_edge(node, merge, edge["role"], index=edge.get("index"))
        changed = True
    return changed


def _within(x: Shape, y: Shape) -> bool:
    """x is no larger than y on any spatial axis (and has y's rank)."""
    return len(x) == len(y) and all(a <= b for a, b in zip(x[1:], y[1:]))


def _fresh(graph: OpGraph, name: str) -> str:
    """`name`, or `name2`, `name3`, ... where a label took it."""
    found, n = name, 1
    while found in graph.nodes:
        n += 1
        found = f"{name}{n}"
    return found


def _add_resize(
    graph: OpGraph, node: str, merge: str, mode: str, source: str, like: str, x: Shape, y: Shape, inserted: bool = False
) -> None:
    """The resize node: x from `source`, at the spatial size of `like`'s tensor, placed just before the merge."""
    m = graph.nodes[merge]
    graph.add_node(
        node,
        Node(
            "resize",
            m.span,
            {"mode": mode, "align_corners": False},
            m.trace,
            m.stage,
            m.block,
            m.block_type,
            m.part,
            inserted=inserted,
            merge=merge if inserted else None,
            seq=m.seq - 1 + 0.01,  # after every input of the merge (the last was made at seq - 1 or before)
            in_shape=x,
            shape=y,
        ),
    )
    graph.add_edge(source, node, Role.MAIN)
    graph.add_edge(like, node, Role.SIZE)
