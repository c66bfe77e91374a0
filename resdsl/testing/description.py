"""What `networks()` (generate.py) draws: the description of a network and the shapes the generator
works out itself, with PyTorch's formulas written out again on purpose (independently of resdsl.shapes).

A spatial argument is one number for every axis or a tuple, one per axis (`k=(1, 3, 3)`), as the
language takes it; `along(value, rank)` gives one number per axis either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Shape = tuple[int, ...]
Axes = int | tuple[int, ...]  # a kernel, stride or padding: one number for every axis, or one per axis

POLICIES = ("A", "B", "C", "D")
MIN_HW, MAX_HW = 8, 64
MIN_WIDTH, MAX_WIDTH = 4, 64
SIZES = {1: (16, 128), 2: (MIN_HW, MAX_HW), 3: (4, 12)}  # input sizes per axis, by rank (volumes stay small)
WIDTHS = {1: MAX_WIDTH, 2: MAX_WIDTH, 3: 16}  # the widest stage, by rank (3-d convs cost k³ per weight)


# ---- shape arithmetic (PyTorch's formulas, written out again on purpose) -------------


def along(value: Axes, rank: int) -> tuple[int, ...]:
    """One number per spatial axis."""
    return value if isinstance(value, tuple) else (value,) * rank


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((size + 2p - d(k-1) - 1) / s) + 1; 0 when the window does not fit."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return span // stride + 1 if span >= 0 else 0


def pool_out(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    """torch.nn.MaxPool2d / AvgPool2d output size (ATen's pooling_output_shape), ceil_mode included.

    In ceil mode a window may hang over the end, so a 2x2 map pooled with k3 s2 gives 1x1.
    """
    span = size + 2 * padding - (kernel - 1) - 1 + (stride - 1 if ceil else 0)
    out = span // stride + 1  # floor division, like ATen's div_rtn
    if ceil and (out - 1) * stride >= size + padding:  # the last window must start inside the padded input
        out -= 1
    return max(out, 0)


def conv_sizes(sizes: Shape, kernel: Axes, stride: Axes, padding: Axes, dilation: int = 1) -> Shape:
    """conv_out on every axis, each with its own kernel, stride and padding."""
    rank = len(sizes)
    return tuple(
        conv_out(n, k, s, p, dilation)
        for n, k, s, p in zip(sizes, along(kernel, rank), along(stride, rank), along(padding, rank))
    )


def same_padding(kernel: Axes, dilation: int = 1) -> Axes:
    """The language's default padding, kernel // 2 × dilation, per axis where the kernel is."""
    if isinstance(kernel, tuple):
        return tuple(k // 2 * dilation for k in kernel)
    return kernel // 2 * dilation


def divisors(n: int, limit: int = 8) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


# ---- the description ----------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One stage `label: block(width, ...) xN [s2] [shortcut X]` and the shapes it maps."""

    name: str  # its graph path: the label, or layer<i> when unlabelled
    kind: str  # "basic" | "bottleneck" | "custom"
    block: str  # the block called: basic, bottleneck, bottleneck_v1 or custom<i>
    width: int
    repeats: int
    stride: int  # the stage's `s2` (a block argument: one number)
    groups: int  # groups of the strided k×k conv (1 for basic)
    kernel: Axes  # kernel of the k×k conv (custom blocks: one per axis, `k=(1, 3, 3)`)
    dilation: int
    expansion: int  # output channels = width * expansion
    shortcut: str | None  # stage-level `shortcut X`, None when the stage inherits
    policy: str  # the effective policy of the stage's residual adds
    in_shape: Shape
    out_shape: Shape
    # rendering details
    label: str | None = None
    base_width: int = 64
    se_ratio: int = 0
    attention: str = ""  # custom blocks only: "eca", or "se8" (se with timm's rounding to 8)
    norm_groups: int = 0  # custom blocks only: the last norm is `gn norm_groups` (or `evonorm`) instead of `bn`
    last_norm: str = "bn"  # custom blocks only: bn, gn, evonorm, frn or ln for the last norm
    std_conv: bool = False  # custom blocks only: the k×k conv is a weight-standardised `stdconv`
    scaled: bool = False  # custom blocks only, with std_conv: a `scaled_stdconv` (NF-ResNets), the path ends `mul`
    activation: str = "relu"  # custom blocks only: the activation after the k×k conv (`leaky_relu 0.2`, `mish`, ...)
    drop_path: float = 0.0  # custom blocks only: a `drop_path` closing the main path
    # custom blocks only: ConvNeXt's ops after the last norm, `channel_fc` and a `layer_scale` ("" none,
    # "plain": its (C,) parameter, "broadcast": (C, 1, ...)); the last norm may be `ln` too
    layer_scale: str = ""
    preact: bool = False  # custom blocks only: BN-ReLU-conv, nothing after the add
    branches: str = ""  # custom blocks only: a `branches` part after the first conv, keeping its shape:
    #                           "concat" (split), "carry" (split, Res2Net's carry), "sum", "product", "select"
    branch_count: int = 0
    post_relu: bool = True
    style: tuple = ()  # syntax choices: ("x_space", "stride_kw", "g_short", "shortcut_first", ...)
    # custom blocks only: the axes the block's stride applies to, as `s=(1, stride, stride)` (a video
    # block's spatial stride); () strides every axis, as `s=stride`
    stride_axes: tuple[bool, ...] = ()

    @property
    def out_channels(self) -> int:
        return self.width * self.expansion

    def strides(self, rank: int) -> tuple[int, ...]:
        """The first block's stride on each axis."""
        if not self.stride_axes:
            return (self.stride,) * rank
        return tuple(self.stride if on else 1 for on in self.stride_axes)


@dataclass(frozen=True)
class NetworkSpec:
    """What `networks()` generated. `source` is the .res text."""

    name: str
    input_shape: Shape  # C×L, C×H×W or C×D×H×W
    stem_width: int
    stem_kernel: Axes
    stem_stride: Axes
    stem_padding: Axes | None  # None: the default kernel//2
    stem_pool: tuple[Axes, Axes, Axes, bool] | None  # (kernel, stride, padding, ceil) of a maxpool
    stem_shape: Shape
    stages: tuple[Stage, ...]
    policy: str
    classes: int
    classes_param: bool = False  # `network n(classes = N)`, so loads(..., classes=K) overrides it
    explicit_policy: bool = True  # False: no `shortcut` line; the default policy is B
    style: tuple = ()
    source: str = field(default="", repr=False)
    outputs: str = ""  # "list" or "dict": an `output` statement returns every stage and the logits
    # with outputs: an FPN-like top-down merge of the last two stages (each a 1×1 conv to `decoder`
    # channels, the smaller resized to the larger's size: `shortcut MODE`), returned before the logits
    decoder: int = 0
    decoder_mode: str = "nearest"
    # a `space_to_depth S` before the stem's conv (TResNet's): the input's sizes are multiples of S, and the
    # conv sees C·S^rank channels of sizes / S (0: none)
    stem_space_to_depth: int = 0

    @property
    def rank(self) -> int:
        """The number of spatial axes: 1 (a sequence), 2 (an image) or 3 (a volume, a clip)."""
        return len(self.input_shape) - 1

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)
