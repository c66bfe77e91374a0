"""`conv`: convolution over 1, 2 or 3 spatial axes (nn.Conv1d/2d/3d, by the input's rank); `stdconv`: with
weight standardisation (BiT's StdConv2d). Kernel, stride, padding and dilation take one number or one per axis
(`k=(3, 1, 1)`: R(2+1)D's temporal conv)."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .base import (
    KERNEL,
    MAX_CHANNELS,
    PADDING,
    Cost,
    ModuleCall,
    OpKind,
    Option,
    Shape,
    axis_text,
    channels_option,
    elementwise,
    nd,
    per_axis,
    spatial,
    volume,
    window_text,
)


class ConvOp(OpKind):
    def complete(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["padding"] is None:  # "same" padding for odd kernels, as torchvision's conv3x3
            attrs["padding"] = elementwise(lambda k, d: k // 2 * d, attrs["kernel"], attrs["dilation"])
        return attrs

    def shape(self, attrs, x: Shape) -> Shape:
        c = x[0]
        out, groups = attrs["out"], attrs["groups"]
        if c % groups or out % groups:
            bad, which = (c, "input") if c % groups else (out, "output")
            raise ShapeError(
                "E0402",
                f"groups={groups} does not divide the {which} channels ({bad})",
                help=f"groups must divide both the input ({c}) and output ({out}) channels",
            )
        return (out,) + spatial(self.name, x, attrs)[1:]

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        weights = y[0] * (x[0] // attrs["groups"]) * volume(per_axis(attrs["kernel"], len(x) - 1))
        return Cost(weights + (y[0] if attrs["bias"] else 0), weights * volume(y[1:]))

    def stride(self, attrs, x):
        return attrs["stride"]

    def label(self, attrs, axes: int = 2) -> str:
        k, s, d = attrs["kernel"], attrs["stride"], attrs["dilation"]
        extra = "".join(
            [
                f", /{axis_text(s)}" if s != 1 else "",
                f", groups {attrs['groups']}" if attrs["groups"] > 1 else "",
                f", dilation {axis_text(d)}" if d != 1 else "",
            ]
        )
        return f"conv {window_text(k, axes)}, {attrs['out']}{extra}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            nd("nn.Conv", rank),
            (
                ("in_channels", channels),
                ("out_channels", attrs["out"]),
                ("kernel_size", attrs["kernel"]),
                ("stride", attrs["stride"]),
                ("padding", attrs["padding"]),
                ("dilation", attrs["dilation"]),
                ("groups", attrs["groups"]),
                ("bias", attrs["bias"]),
            ),
            positional=2,
        )

    def out_channels(self, attrs, channels, rank):
        return attrs["out"]


KINDS: tuple[OpKind, ...] = (
    ConvOp(
        "conv",
        "convolution (1-d, 2-d or 3-d by the input); padding defaults to kernel//2 * dilation",
        ("out",),
        (
            channels_option(),
            KERNEL,
            Option("stride", ("s",), default=1, minimum=1, maximum=4096, per_axis=True),
            PADDING,
            Option("dilation", ("d",), default=1, minimum=1, maximum=4096, per_axis=True),
            Option("groups", ("g",), default=1, minimum=1, maximum=MAX_CHANNELS),
            Option("bias", default=False, type="bool", flag=True),
        ),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        fill="#dbe9f6",
    ),
)


class StdConvOp(ConvOp):
    """Weight standardisation (Qiao et al. 2019, BiT): each filter is normalised to zero mean and unit
    variance (plus `eps`) before the convolution, as timm's StdConv2d. Same shape, parameters and MACs."""

    def shape(self, attrs, x: Shape) -> Shape:
        out = super().shape(attrs, x)
        kernel = per_axis(attrs["kernel"], len(x) - 1)
        fan_in = x[0] // attrs["groups"] * volume(kernel)
        if fan_in < 2:  # its variance is over one value: torch refuses (a batch_norm of one value per channel)
            raise ShapeError(
                "E0410",
                f"`stdconv` standardises each filter over its {x[0] // attrs['groups']} input channel(s) × "
                f"{axis_text(kernel)} = {fan_in} weight, which has no variance",
                help="use `conv`, a larger kernel, or fewer groups (each filter needs two weights or more)",
            )
        return out

    def label(self, attrs, axes: int = 2) -> str:
        return "std " + super().label(attrs, axes)

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        call = super().module(attrs, channels, rank, inplace)
        return ModuleCall(
            nd("StdConv", rank), call.args + (("eps", attrs["eps"]),), positional=2, defaults=(("eps", 1e-6),)
        )


KINDS += (
    StdConvOp(
        "stdconv",
        "weight-standardised convolution (timm's StdConv2d); options as conv, plus eps",
        ("out",),
        KINDS[0].options + (Option("eps", default=1e-6, type="float", minimum=0.0, maximum=1.0, above_minimum=True),),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        fill="#dbe9f6",
    ),
)


class ScaledStdConvOp(StdConvOp):
    """Scaled weight standardisation (Brock et al. 2021, the normaliser-free ResNets), as timm's
    ScaledStdConv2d: each filter standardised (zero mean, unit variance plus `eps`), times a learned
    per-filter `gain` (shape out×1×1×1; `gain=false`: none) and the fixed gamma / √fan_in, fan_in being
    the filter's weights (in / groups · kernel volume). `gamma` is the nonlinearity's correction
    (timm's _nonlin_gamma: 1.7139588594436646 for ReLU). Parameters: conv's, plus `out` for the gain;
    MACs: conv's (the standardisation works on the weights, not the input)."""

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        cost = super().cost(attrs, x, y)
        return Cost(cost.params + (y[0] if attrs["gain"] else 0), cost.macs)

    def label(self, attrs, axes: int = 2) -> str:
        return "scaled " + super().label(attrs, axes) + (f", gamma {attrs['gamma']:g}" if attrs["gamma"] != 1 else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        call = super().module(attrs, channels, rank, inplace)
        extra = (("gamma", attrs["gamma"]), ("gain", attrs["gain"]), ("gain_init", attrs["gain_init"]))
        return ModuleCall(
            nd("ScaledStdConv", rank),
            call.args + extra,
            positional=2,
            defaults=(("eps", 1e-6), ("gamma", 1.0), ("gain", True), ("gain_init", 1.0)),
        )


KINDS += (
    ScaledStdConvOp(
        "scaled_stdconv",
        "scaled weight-standardised convolution (timm's ScaledStdConv2d, NF-ResNets): stdconv times a learned "
        "`gain` per filter and gamma / √fan_in",
        ("out",),
        KINDS[1].options
        + (
            Option("gamma", default=1.0, type="float", minimum=0.0, maximum=1e6, above_minimum=True),
            Option("gain", default=True, type="bool", flag=True),
            Option("gain_init", default=1.0, type="float", minimum=-1e6, maximum=1e6),
        ),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        fill="#dbe9f6",
    ),
)
