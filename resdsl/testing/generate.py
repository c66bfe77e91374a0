"""`networks()`: random *valid* residual networks as .res text, for hypothesis.

Each draw is a `NetworkSpec` (description.py): what was drawn, the shapes the
generator itself computed (with PyTorch's floor formula, independently of
resdsl.shapes), and the rendered `source` (render.py). Validity is built in, not
filtered: every spatial size stays >= 1, groups divide the channels they split,
and wherever the effective shortcut policy is A no block shrinks channels. The
networks use the library blocks (basic, bottleneck), and custom blocks with
grouped and dilated convs, pre-activation, SE, ECA, GroupNorm, EvoNorm, FRN,
weight-standardised convs (scaled too, with `mul`), every activation, drop path
and `branches` (split, carry, sum, product, select). `ranks` draws sequences
(C×L) and volumes (C×D×H×W) besides images, and `per_axis` kernels, strides
and paddings given one per axis (`k=(1, 3, 3)`, a custom block's
`s=(1, stride, stride)`).
"""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import strategies as st

from .description import (  # noqa: F401 - re-exported: the description and its arithmetic
    MAX_HW,
    MAX_WIDTH,
    MIN_HW,
    MIN_WIDTH,
    POLICIES,
    SIZES,
    WIDTHS,
    Axes,
    NetworkSpec,
    Shape,
    Stage,
    along,
    conv_out,
    conv_sizes,
    divisors,
    pool_out,
    same_padding,
)
from .render import render  # noqa: F401 - re-exported

# ---- valid networks ---------------------------------------------------------------------

# What follows a custom block's k×k conv: every activation, with its options
ACTIVATIONS = ["relu", "relu", "silu", "gelu", "gelu tanh", "leaky_relu", "leaky_relu 0.2", "hardswish", "mish"]


def _block_output(shape: Shape, out_channels: int, strides: tuple[int, ...], kernel: Axes, dilation: int) -> Shape:
    """Shape after one block whose strided conv has `kernel`, `dilation` and default padding."""
    return (out_channels, *conv_sizes(shape[1:], kernel, strides, same_padding(kernel, dilation), dilation))


def _axes(draw, choices: list[int], rank: int, per_axis: bool) -> Axes:
    """One number for every axis, or (with `per_axis`, on an image or a volume, half the time) one per axis."""
    if per_axis and rank > 1 and draw(st.booleans()):
        return tuple(draw(st.sampled_from(choices)) for _ in range(rank))
    return draw(st.sampled_from(choices))


@st.composite
def _stem(draw, shape: Shape, per_axis: bool = False, max_width: int = MAX_WIDTH):
    sizes = shape[1:]
    rank = len(sizes)
    width = draw(st.integers(MIN_WIDTH, max_width))
    kernel = _axes(draw, [1, 2, 3, 3, 5, 7], rank, per_axis)
    stride = _axes(draw, [1, 1, 2], rank, per_axis)
    padding: Axes | None = draw(st.none() | st.integers(0, max(along(kernel, rank)) // 2 + 1))
    out = conv_sizes(sizes, kernel, stride, same_padding(kernel) if padding is None else padding)
    if min(out) < 1:  # the draw does not fit: a 3×3 'same' conv always does
        kernel, stride, padding = 3, 1, None
        out = sizes
    pool = None
    if draw(st.booleans()):
        k = _axes(draw, [2, 3], rank, per_axis)
        s = _axes(draw, [1, 2], rank, per_axis)
        pp = draw(st.integers(0, min(along(k, rank)) // 2))
        ceil = draw(st.booleans())
        pooled = tuple(pool_out(n, kk, ss, pp, ceil) for n, kk, ss in zip(out, along(k, rank), along(s, rank)))
        # PyTorch's 3-d pools also need the kernel within the unpadded input
        fits = rank < 3 or all(kk <= n for kk, n in zip(along(k, rank), out))
        if min(pooled) >= 1 and fits:
            pool, out = (k, s, pp, ceil), pooled
    return width, kernel, stride, padding, pool, (width, *out)


@st.composite
def _stage(
    draw,
    index: int,
    in_shape: Shape,
    network_policy: str,
    allow_special: bool,
    per_axis: bool = False,
    max_width: int = MAX_WIDTH,
):
    cin = in_shape[0]
    kind = draw(st.sampled_from(["basic", "bottleneck", "custom"]))
    shortcut = draw(st.sampled_from([None, None, None, *POLICIES] + (["identity", "none"] if allow_special else [])))
    policy = shortcut or network_policy
    stride = draw(st.sampled_from([1, 1, 2, 2, 3]))
    repeats = draw(st.integers(1, 3))
    style = tuple(
        s for s in ("x_space", "stride_kw", "g_short", "shortcut_first", "explicit_s1") if draw(st.booleans())
    )

    expansion = {
        "basic": 1,
        "bottleneck": draw(st.sampled_from([4, 4, 2, 1])),
        "custom": draw(st.sampled_from([1, 1, 2])),
    }[kind]
    # Under A a block may add channels but never drop them; under `identity`
    # the first block must keep the shape exactly.
    if policy == "identity":
        if cin % expansion or not MIN_WIDTH <= cin // expansion:
            shortcut = policy = "B"
        else:
            stride = 1
            width = cin // expansion
    if policy != "identity":
        low = max(MIN_WIDTH, -(-cin // expansion)) if policy == "A" else MIN_WIDTH
        width = draw(st.integers(low, max(low, max_width)))

    rank = len(in_shape) - 1
    groups, kernel, dilation, base_width, se_ratio = 1, 3, 1, 64, 0
    kernel_axes: Axes = 3
    stride_axes: tuple[bool, ...] = ()
    preact, post_relu, attention, norm_groups = False, True, "", 0
    branches, branch_count = "", 0
    last_norm, std_conv, drop_path, layer_scale = "bn", False, 0.0, ""
    scaled, activation = False, "relu"
    block = kind
    if kind == "bottleneck":
        base_width = draw(st.sampled_from([64, 64, 32, 128]))
        if width * base_width % 64:
            base_width = 64
        groups = draw(st.sampled_from([1, 1, 2, 4]))
        if draw(st.booleans()):
            block = "bottleneck_v1"  # the library alias: stride on the first 1×1
        ratio = draw(st.sampled_from([0, 0, 2, 4]))
        if ratio and width * expansion % ratio == 0:
            se_ratio = ratio
    elif kind == "custom":
        block = f"custom{index}"
        kernel_axes = _axes(draw, [1, 3, 3, 5], rank, per_axis)
        kernel = max(along(kernel_axes, rank))
        dilation = draw(st.sampled_from([1, 1, 2])) if kernel > 1 else 1
        if per_axis and rank > 1 and stride > 1 and draw(st.booleans()):  # a stride on some axes only
            stride_axes = tuple(draw(st.booleans()) for _ in range(rank))
            stride_axes = stride_axes if any(stride_axes) else (True,) * rank
        groups = draw(st.sampled_from(divisors(math.gcd(cin, width))))
        preact = draw(st.booleans())
        post_relu = draw(st.booleans())
        ratio = draw(st.sampled_from([0, 0, 2, 4]))
        if ratio and width * expansion % ratio == 0:
            se_ratio = ratio
        attention = draw(st.sampled_from(["", "", "eca", "se8"]))
        if not preact:
            last_norm = draw(st.sampled_from(["bn", "bn", "gn", "evonorm", "frn", "ln"]))
            if last_norm in ("gn", "evonorm"):
                norm_groups = draw(st.sampled_from(divisors(width * expansion)))
            # a standardised filter needs two weights or more (E0410): a k×k kernel always has them
            std_conv = kernel > 1 and draw(st.booleans())
            scaled = std_conv and draw(st.booleans())  # timm's ScaledStdConv2d, and `mul` scaling the path
            activation = draw(st.sampled_from(ACTIVATIONS))
            drop_path = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
            layer_scale = draw(st.sampled_from(["", "", "", "plain", "broadcast"]))
        if not preact:
            branches = draw(st.sampled_from(["", "", "concat", "carry", "sum", "product", "select"]))
            if branches in ("concat", "carry"):
                counts = [n for n in (2, 3, 4) if width % n == 0]
                branches, branch_count = (branches, draw(st.sampled_from(counts))) if counts else ("", 0)
            elif branches:
                branch_count = draw(st.sampled_from([1, 2, 3]))
    strides = tuple(stride if on else 1 for on in stride_axes) if stride_axes else (stride,) * rank
    if rank == 3 and policy == "D" and any(s > n for n, s in zip(in_shape[1:], strides)):
        # ResNet-D's shortcut average-pools by the stride, and PyTorch's AvgPool3d needs its kernel
        # within the input (an AvgPool2d takes a window hanging over the edge): no stride on so small a map
        stride, stride_axes, strides = 1, (), (1,) * rank
    out_shape = _block_output(in_shape, width * expansion, strides, kernel_axes, dilation)
    return Stage(
        name="",
        kind=kind,
        block=block,
        width=width,
        repeats=repeats,
        stride=stride,
        groups=groups,
        kernel=kernel_axes,
        dilation=dilation,
        expansion=expansion,
        shortcut=shortcut,
        policy=policy,
        in_shape=in_shape,
        out_shape=out_shape,
        base_width=base_width,
        se_ratio=se_ratio,
        preact=preact,
        post_relu=post_relu,
        style=style,
        attention=attention,
        norm_groups=norm_groups,
        branches=branches,
        branch_count=branch_count,
        last_norm=last_norm,
        std_conv=std_conv,
        scaled=scaled,
        activation=activation,
        drop_path=drop_path,
        layer_scale=layer_scale,
        stride_axes=stride_axes,
    )


@st.composite
def networks(
    draw,
    policies=POLICIES,
    square: bool | None = None,
    max_stages: int = 4,
    allow_special: bool = True,
    outputs: bool = False,
    ranks: tuple[int, ...] = (2,),
    per_axis: bool = False,
    upsampling: bool = False,
    space_to_depth: bool = False,
) -> NetworkSpec:
    """A valid network and its description. `square=True` keeps every spatial size equal (H == W);
    `outputs=True` may add an `output` statement returning every stage and the logits, as a list or an
    ordered dict; `ranks` are the numbers of spatial axes drawn from (1: C×L sequences, 2: C×H×W
    images, 3: C×D×H×W volumes, small); `per_axis=True` may give kernels, strides and paddings one
    per axis (`k=(1, 3, 3) s=(1, 2, 2)`; a custom block's stride on some axes only); `upsampling=True`
    (with `outputs`) may add an FPN-like top-down merge of the last two stages, the smaller resized up
    to the larger's size (`shortcut nearest` or the rank's linear mode), returned as an output;
    `space_to_depth=True` may start the stem with `space_to_depth S` (S of 2 or 3; the input's sizes
    rounded up to multiples of S)."""
    policy = draw(st.sampled_from(policies))
    rank = draw(st.sampled_from(ranks))
    low, high = SIZES[rank]
    c = draw(st.sampled_from([1, 3, 3, 4]))
    h = draw(st.integers(low, high))
    is_square = draw(st.booleans() | st.just(True)) if square is None or rank == 1 else square
    sizes = (h,) * rank if is_square else (h, *(draw(st.integers(low, high)) for _ in range(rank - 1)))
    block = draw(st.sampled_from([0, 2, 3])) if space_to_depth else 0
    stem_in = (c, *sizes)
    if block:  # TResNet's stem: every size a multiple of the block, the patches made channels
        sizes = tuple(-(-n // block) * block for n in sizes)
        stem_in = (c * block**rank, *(n // block for n in sizes))
    stem_width, kernel, stride, padding, pool, shape = draw(_stem(stem_in, per_axis, WIDTHS[rank]))
    stem_shape = shape

    n = draw(st.integers(1, max_stages))
    labels = draw(st.sampled_from(["auto", "layer", "named"]))
    stages = []
    for i in range(n):
        stage = draw(_stage(i, shape, policy, allow_special, per_axis, WIDTHS[rank]))
        label = {"auto": None, "layer": f"layer{i + 1}", "named": f"stage_{chr(97 + i)}"}[labels]
        stages.append(replace(stage, name=label or f"layer{i + 1}", label=label))
        shape = stage.out_shape

    style = tuple(s for s in ("spaced_input", "p_kw", "no_sections", "wrapped_head") if draw(st.booleans()))
    style += (draw(st.sampled_from(["plain", "plain", "flatten", "dropout", "nobias"])),)
    explicit_policy = policy != "B" or draw(st.booleans())
    spec = NetworkSpec(
        name=draw(st.sampled_from(["net", "gen", "resnet_x", "n0"])),
        input_shape=(c, *sizes),
        stem_width=stem_width,
        stem_kernel=kernel,
        stem_stride=stride,
        stem_padding=padding,
        stem_pool=pool,
        stem_shape=stem_shape,
        stages=tuple(stages),
        policy=policy,
        classes=draw(st.integers(1, 100)),
        classes_param=draw(st.booleans()),
        explicit_policy=explicit_policy,
        style=style,
        outputs=draw(st.sampled_from(["", "list", "dict"])) if outputs else "",
        stem_space_to_depth=block,
    )
    if upsampling and spec.outputs and len(stages) >= 2 and policy != "none" and draw(st.booleans()):
        # any policy but `none` (which has no shortcut to resize); both sides are projected to one width
        mode = draw(st.sampled_from(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[rank]]))
        spec = replace(spec, decoder=draw(st.sampled_from([4, 8])), decoder_mode=mode)
    return replace(spec, source=render(spec))
