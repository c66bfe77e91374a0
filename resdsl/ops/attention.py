"""Channel attention: `se` (squeeze-and-excitation, Hu et al. 2018, as timm's SEModule: fc1, fc2)
and `eca` (efficient channel attention, Wang et al. 2020, as timm's EcaModule: conv)."""

from __future__ import annotations

import math
from typing import Any

from ..errors import EvalError, ShapeError
from .base import MAX_CHANNELS, Cost, ModuleCall, OpKind, Option, Shape, exact_div, known


def se_hidden(attrs: dict[str, Any], channels: int) -> int:
    """Hidden width: `hidden` if given, else C / ratio, whole (divisor 1) or rounded to a multiple of
    `divisor` as timm's make_divisible(C / ratio, divisor, round_limit=0)."""
    if attrs.get("hidden") is not None:
        return attrs["hidden"]
    ratio, divisor = attrs["ratio"], attrs["divisor"]
    if divisor > 1:
        return max(divisor, int(channels / ratio + divisor / 2) // divisor * divisor)
    if channels % ratio:
        raise ShapeError(
            "E0301",
            f"`se` ratio {ratio} does not divide {channels} channels",
            help="pass `hidden=N` to choose the squeezed width yourself",
        )
    return channels // ratio


class SqueezeExciteOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        se_hidden(attrs, x[0])
        return x

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        c, h = x[0], se_hidden(attrs, x[0])
        # fc1: c -> h (1×1 conv with bias), fc2: h -> c (with bias), on a 1×1 map.
        return Cost(c * h + h + h * c + c, 2 * c * h)

    def label(self, attrs, axes: int = 2) -> str:
        return "squeeze-excite" + (f", /{attrs['ratio']}" if attrs.get("hidden") is None else f", {attrs['hidden']}")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        dims = (("dims", rank - 1),)  # Conv1d/2d/3d gates; 2 (images) is left out of ejected source
        if attrs["hidden"] is not None:
            return ModuleCall(
                "SqueezeExcite",
                (("channels", channels), ("hidden", attrs["hidden"])) + dims,
                positional=2,
                defaults=(("dims", 2),),
            )
        if known(attrs["divisor"]) == 1:
            return ModuleCall(
                "SqueezeExcite",
                (("channels", channels), ("hidden", exact_div(channels, attrs["ratio"]))) + dims,
                positional=2,
                defaults=(("dims", 2),),
            )
        # rounded: the module works the width out itself, so ejected source keeps the rule, not one value
        return ModuleCall(
            "SqueezeExcite",
            (("channels", channels), ("ratio", attrs["ratio"]), ("divisor", attrs["divisor"])) + dims,
            positional=1,
            defaults=(("ratio", 16), ("divisor", 1), ("dims", 2)),
        )


def eca_kernel(attrs: dict[str, Any], channels: int) -> int:
    """`kernel` if given, else timm's rule: t = int(|log2(C) + beta| / gamma), the next odd number >= 3."""
    if attrs.get("kernel") is not None:
        return attrs["kernel"]
    t = int(abs(math.log(channels, 2) + attrs["beta"]) / attrs["gamma"])
    return max(t if t % 2 else t + 1, 3)


class EfficientChannelAttentionOp(OpKind):
    def validate(self, attrs, span) -> None:
        # an even kernel with padding (k - 1) // 2 would give C - 1 gates for C channels
        if attrs["kernel"] is not None and attrs["kernel"] % 2 == 0:
            raise EvalError(
                "E0303",
                f"`eca` kernel {attrs['kernel']} must be odd",
                span,
                help=f"use k{attrs['kernel'] + 1} or k{attrs['kernel'] - 1}, or leave it out to size "
                "it from the channels",
            )

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        k = eca_kernel(attrs, x[0])
        return Cost(k, x[0] * k)  # a 1-d conv of kernel k along the C pooled values

    def label(self, attrs, axes: int = 2) -> str:
        return "ECA" + (f", k{attrs['kernel']}" if attrs.get("kernel") is not None else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "EfficientChannelAttention",
            (
                ("channels", channels),
                ("kernel_size", attrs["kernel"]),
                ("gamma", attrs["gamma"]),
                ("beta", attrs["beta"]),
            ),
            positional=1,
            defaults=(("kernel_size", None), ("gamma", 2.0), ("beta", 1.0)),
        )


KINDS = (
    SqueezeExciteOp(
        "se",
        "squeeze-and-excitation: pool, 1×1 conv to C/ratio, ReLU, 1×1 conv to C, sigmoid gate",
        ("ratio",),
        (
            Option("ratio", ("r",), default=16, minimum=1, maximum=MAX_CHANNELS),
            Option("hidden", default=None, minimum=1, maximum=MAX_CHANNELS),
            Option("divisor", default=1, minimum=1, maximum=MAX_CHANNELS),
        ),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        fill="#efe3f6",
    ),
    EfficientChannelAttentionOp(
        "eca",
        "efficient channel attention: pool, 1-d conv across channels, sigmoid gate",
        (),
        (
            Option("kernel", ("k",), default=None, minimum=1, maximum=4095),
            Option("gamma", default=2.0, type="float", minimum=0.0, above_minimum=True, maximum=1e6),
            Option("beta", default=1.0, type="float", minimum=-1e6, maximum=1e6),
        ),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        fill="#efe3f6",
    ),
)
