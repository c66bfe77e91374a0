"""`networks()`: random *valid* residual networks as .res text, for hypothesis.

Each draw is a `NetworkSpec`: what was drawn, the shapes the generator itself
computed (with PyTorch's floor formula, independently of resdsl.shapes), and the
rendered `source`. Validity is built in, not filtered: every spatial size stays
>= 1, groups divide the channels they split, and wherever the effective shortcut
policy is A no block shrinks channels. The networks use the library blocks
(basic, bottleneck), and custom blocks with grouped and dilated convs,
pre-activation, SE, ECA, GroupNorm, EvoNorm, FRN, weight-standardised convs,
drop path and `branches` (split, carry, sum, product, select).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

Shape = tuple[int, ...]

POLICIES = ("A", "B", "C", "D")
MIN_HW, MAX_HW = 8, 64
MIN_WIDTH, MAX_WIDTH = 4, 64


# ---- shape arithmetic (PyTorch's formulas, written out again on purpose) -------------


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


def _divisors(n: int, limit: int = 8) -> list[int]:
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
    stride: int
    groups: int  # groups of the strided k×k conv (1 for basic)
    kernel: int  # kernel of the k×k conv
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
    last_norm: str = "bn"  # custom blocks only: bn, gn, evonorm or frn for the last norm
    std_conv: bool = False  # custom blocks only: the k×k conv is a weight-standardised `stdconv`
    drop_path: float = 0.0  # custom blocks only: a `drop_path` closing the main path
    preact: bool = False  # custom blocks only: BN-ReLU-conv, nothing after the add
    branches: str = ""  # custom blocks only: a `branches` part after the first conv, keeping its shape:
    #                           "concat" (split), "carry" (split, Res2Net's carry), "sum", "product", "select"
    branch_count: int = 0
    post_relu: bool = True
    style: tuple = ()  # syntax choices: ("x_space", "stride_kw", "g_short", "shortcut_first", ...)

    @property
    def out_channels(self) -> int:
        return self.width * self.expansion


@dataclass(frozen=True)
class NetworkSpec:
    """What `networks()` generated. `source` is the .res text."""

    name: str
    input_shape: Shape
    stem_width: int
    stem_kernel: int
    stem_stride: int
    stem_padding: int | None  # None: the default kernel//2
    stem_pool: tuple[int, int, int, bool] | None  # (kernel, stride, padding, ceil) of a maxpool
    stem_shape: Shape
    stages: tuple[Stage, ...]
    policy: str
    classes: int
    classes_param: bool = False  # `network n(classes = N)`, so loads(..., classes=K) overrides it
    explicit_policy: bool = True  # False: no `shortcut` line; the default policy is B
    style: tuple = ()
    source: str = field(default="", repr=False)
    outputs: str = ""  # "list" or "dict": an `output` statement returns every stage and the logits

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


# ---- rendering --------------------------------------------------------------------------


def _custom_block(stage: Stage) -> str:
    k = f"k{stage.kernel}" + (f" d{stage.dilation}" if stage.dilation != 1 else "")
    expand = f"width * {stage.expansion}" if stage.expansion != 1 else "width"
    se = [f"        se {stage.se_ratio}"] if stage.se_ratio else []
    se += {"eca": ["        eca"], "se8": ["        se 4 divisor=8"], "": []}[stage.attention]
    norm = {"bn": "bn", "gn": f"gn {stage.norm_groups}", "evonorm": f"evonorm {stage.norm_groups}", "frn": "frn"}[
        stage.last_norm
    ]
    conv = "stdconv" if stage.std_conv else "conv"
    drop = [f"        drop_path {stage.drop_path:g}"] if stage.drop_path else []
    if stage.preact:
        body = [
            f"        bn -> relu -> conv width {k} s=stride g=groups",
            f"        bn -> relu -> conv {expand} k1",
        ] + se
        tail = []
    else:
        body = (
            [
                f"        {conv} width {k} s=stride g=groups -> bn -> relu",
                *_branches(stage),
                f"        conv {expand} k1 -> {norm}",
            ]
            + se
            + drop
        )
        tail = ["    relu"] if stage.post_relu else []
    return "\n".join(
        [f"block {stage.block}(width, stride = 1, groups = 1) {{", "    residual {", *body, "    }", *tail, "}"]
    )


def _branches(stage: Stage) -> list[str]:
    """The `branches` part of a custom block: every variant keeps `width` channels and H×W."""
    n = stage.branch_count
    return {
        "": [],
        "concat": [f"        branches({n}, split = true, merge = concat) {{ conv width / {n} k3 -> relu }}"],
        "carry": [
            f"        branches({n}, split = true, merge = concat, carry = branch > 0) {{",
            f"            convs[branch]: conv width / {n} k3 -> relu",
            "        }",
        ],
        "sum": [f"        branches({n}, merge = sum) {{ paths[branch] {{ conv width k3 d=(branch + 1) -> bn }} }}"],
        "product": [f"        branches({n}, merge = product) {{ conv width k1 -> sigmoid }}"],
        "select": [
            f"        branches({n}, merge = select) {{ conv width k3 -> relu }} attend {{",
            f"            avgpool -> conv 8 k1 -> relu -> conv width * {n} k1",
            "        }",
        ],
    }[stage.branches]


def _stage_line(stage: Stage) -> str:
    args = [str(stage.width)]
    if stage.kind == "bottleneck":
        if stage.groups != 1:
            args.append(("g=" if "g_short" in stage.style else "groups=") + str(stage.groups))
        if stage.base_width != 64:
            args.append(f"base_width={stage.base_width}")
        if stage.expansion != 4:
            args.append(f"expansion={stage.expansion}")
        if stage.se_ratio:
            args.append(f"se_ratio={stage.se_ratio}")
    elif stage.kind == "custom" and stage.groups != 1:
        args.append(("g=" if "g_short" in stage.style else "groups=") + str(stage.groups))
    call = f"{stage.block}({', '.join(args)})"
    repeat = f"x {stage.repeats}" if "x_space" in stage.style else f"x{stage.repeats}"
    options = []
    if stage.stride != 1 or "explicit_s1" in stage.style:
        options.append(f"stride={stage.stride}" if "stride_kw" in stage.style else f"s{stage.stride}")
    if stage.shortcut is not None:
        sc = f"shortcut {stage.shortcut}"
        options = [sc] + options if "shortcut_first" in stage.style else options + [sc]
    label = f"{stage.label}: " if stage.label else ""
    return f"    {label}{call} {' '.join([repeat] + options)}"


def render(spec: NetworkSpec) -> str:
    """The .res text of `spec` (its `source` field is ignored)."""
    lines = []
    if any(s.kind in ("basic", "bottleneck") for s in spec.stages):
        lines += ['use "blocks.res"', ""]
    for stage in spec.stages:
        if stage.kind == "custom":
            lines += [_custom_block(stage), ""]
    header = f"network {spec.name}"
    if spec.classes_param:
        header += f"(classes = {spec.classes}, policy = {spec.policy})"
    lines.append(header + " {")
    c, h, w = spec.input_shape
    lines.append(f"    input {c} x {h} x {w}" if "spaced_input" in spec.style else f"    input {c}x{h}x{w}")
    if spec.explicit_policy:
        lines.append("    shortcut policy" if spec.classes_param else f"    shortcut {spec.policy}")
    stem = f"conv {spec.stem_width} k{spec.stem_kernel}"
    if spec.stem_stride != 1:
        stem += f" s{spec.stem_stride}"
    if spec.stem_padding is not None:
        stem += f" p={spec.stem_padding}" if "p_kw" in spec.style else f" p{spec.stem_padding}"
    stem += " -> bn -> relu"
    if spec.stem_pool is not None:
        k, s, p, ceil = spec.stem_pool
        stem += f" -> maxpool k{k} s{s} p{p}" + (" ceil" if ceil else "")
    if "no_sections" in spec.style:
        lines.append("    " + stem)
    else:
        lines += ["    stem {", "        " + stem, "    }"]
    lines += [_stage_line(stage) for stage in spec.stages]
    classes = "classes" if spec.classes_param else str(spec.classes)
    head = {
        "plain": f"avgpool -> fc {classes}",
        "flatten": f"avgpool -> flatten -> fc {classes}",
        "dropout": f"avgpool -> dropout 0.2 -> fc {classes}",
        "nobias": f"avgpool -> fc {classes} bias=false",
    }[next((x for x in ("flatten", "dropout", "nobias") if x in spec.style), "plain")]
    if "no_sections" in spec.style:
        lines.append("    " + head)
    elif "wrapped_head" in spec.style:
        lines += ["    head {", "        avgpool", f"            -> {head.split(' -> ', 1)[1]}", "    }"]
    else:
        lines += ["    head {", "        " + head, "    }"]
    if spec.outputs:  # every stage's features and the logits (`fc`: sections add no name)
        points = [s.name for s in spec.stages] + ["fc"]
        keyed = [f"f{i}: {p}" for i, p in enumerate(points[:-1])] + [f"logits: {points[-1]}"]
        lines.append("    output " + ", ".join(keyed if spec.outputs == "dict" else points))
    lines.append("}")
    return "\n".join(lines) + "\n"


# ---- valid networks ---------------------------------------------------------------------


def _block_output(shape: Shape, out_channels: int, stride: int, kernel: int, dilation: int) -> Shape:
    """Shape after one block whose strided conv has `kernel`, `dilation` and default padding."""
    _, h, w = shape
    pad = kernel // 2 * dilation
    return (out_channels, conv_out(h, kernel, stride, pad, dilation), conv_out(w, kernel, stride, pad, dilation))


@st.composite
def _stem(draw, shape: Shape):
    c, h, w = shape
    width = draw(st.integers(MIN_WIDTH, MAX_WIDTH))
    kernel = draw(st.sampled_from([1, 2, 3, 3, 5, 7]))
    stride = draw(st.sampled_from([1, 1, 2]))
    padding = draw(st.none() | st.integers(0, kernel // 2 + 1))
    p = kernel // 2 if padding is None else padding
    oh, ow = conv_out(h, kernel, stride, p), conv_out(w, kernel, stride, p)
    if min(oh, ow) < 1:  # the draw does not fit: a 3×3 'same' conv always does
        kernel, stride, padding = 3, 1, None
        oh, ow = h, w
    pool = None
    if draw(st.booleans()):
        k = draw(st.sampled_from([2, 3]))
        s = draw(st.sampled_from([1, 2]))
        pp = draw(st.integers(0, k // 2))
        ceil = draw(st.booleans())
        ph, pw = pool_out(oh, k, s, pp, ceil), pool_out(ow, k, s, pp, ceil)
        if min(ph, pw) >= 1:
            pool, oh, ow = (k, s, pp, ceil), ph, pw
    return width, kernel, stride, padding, pool, (width, oh, ow)


@st.composite
def _stage(draw, index: int, in_shape: Shape, network_policy: str, allow_special: bool):
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
        width = draw(st.integers(low, max(low, MAX_WIDTH)))

    groups, kernel, dilation, base_width, se_ratio = 1, 3, 1, 64, 0
    preact, post_relu, attention, norm_groups = False, True, "", 0
    branches, branch_count = "", 0
    last_norm, std_conv, drop_path = "bn", False, 0.0
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
        kernel = draw(st.sampled_from([1, 3, 3, 5]))
        dilation = draw(st.sampled_from([1, 1, 2])) if kernel > 1 else 1
        groups = draw(st.sampled_from(_divisors(math.gcd(cin, width))))
        preact = draw(st.booleans())
        post_relu = draw(st.booleans())
        ratio = draw(st.sampled_from([0, 0, 2, 4]))
        if ratio and width * expansion % ratio == 0:
            se_ratio = ratio
        attention = draw(st.sampled_from(["", "", "eca", "se8"]))
        if not preact:
            last_norm = draw(st.sampled_from(["bn", "bn", "gn", "evonorm", "frn"]))
            if last_norm in ("gn", "evonorm"):
                norm_groups = draw(st.sampled_from(_divisors(width * expansion)))
            # a standardised filter needs two weights or more (E0410): a k×k kernel always has them
            std_conv = kernel > 1 and draw(st.booleans())
            drop_path = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
        if not preact:
            branches = draw(st.sampled_from(["", "", "concat", "carry", "sum", "product", "select"]))
            if branches in ("concat", "carry"):
                counts = [n for n in (2, 3, 4) if width % n == 0]
                branches, branch_count = (branches, draw(st.sampled_from(counts))) if counts else ("", 0)
            elif branches:
                branch_count = draw(st.sampled_from([1, 2, 3]))
    out_shape = _block_output(in_shape, width * expansion, stride, kernel, dilation)
    return Stage(
        name="",
        kind=kind,
        block=block,
        width=width,
        repeats=repeats,
        stride=stride,
        groups=groups,
        kernel=kernel,
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
        drop_path=drop_path,
    )


@st.composite
def networks(
    draw,
    policies=POLICIES,
    square: bool | None = None,
    max_stages: int = 4,
    allow_special: bool = True,
    outputs: bool = False,
) -> NetworkSpec:
    """A valid network and its description. `square=True` keeps H == W; `outputs=True` may add an
    `output` statement returning every stage and the logits, as a list or an ordered dict."""
    policy = draw(st.sampled_from(policies))
    c = draw(st.sampled_from([1, 3, 3, 4]))
    h = draw(st.integers(MIN_HW, MAX_HW))
    is_square = draw(st.booleans() | st.just(True)) if square is None else square
    w = h if is_square else draw(st.integers(MIN_HW, MAX_HW))
    stem_width, kernel, stride, padding, pool, shape = draw(_stem((c, h, w)))
    stem_shape = shape

    n = draw(st.integers(1, max_stages))
    labels = draw(st.sampled_from(["auto", "layer", "named"]))
    stages = []
    for i in range(n):
        stage = draw(_stage(i, shape, policy, allow_special))
        label = {"auto": None, "layer": f"layer{i + 1}", "named": f"stage_{chr(97 + i)}"}[labels]
        stages.append(replace(stage, name=label or f"layer{i + 1}", label=label))
        shape = stage.out_shape

    style = tuple(s for s in ("spaced_input", "p_kw", "no_sections", "wrapped_head") if draw(st.booleans()))
    style += (draw(st.sampled_from(["plain", "plain", "flatten", "dropout", "nobias"])),)
    explicit_policy = policy != "B" or draw(st.booleans())
    spec = NetworkSpec(
        name=draw(st.sampled_from(["net", "gen", "resnet_x", "n0"])),
        input_shape=(c, h, w),
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
    )
    return replace(spec, source=render(spec))
