"""`conv`: 2-d convolution, as nn.Conv2d; `stdconv`: with weight standardisation (BiT's StdConv2d)."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .base import KERNEL, MAX_CHANNELS, PADDING, Cost, ModuleCall, OpKind, Option, Shape, channels_option, spatial


class ConvOp(OpKind):
    def complete(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["padding"] is None:  # "same" padding for odd kernels, as torchvision's conv3x3
            attrs["padding"] = attrs["kernel"] // 2 * attrs["dilation"]
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
        k = attrs["kernel"]
        weights = y[0] * (x[0] // attrs["groups"]) * k * k
        return Cost(weights + (y[0] if attrs["bias"] else 0), weights * y[1] * y[2])

    def stride(self, attrs, x) -> int:
        return attrs["stride"]

    def label(self, attrs) -> str:
        k = attrs["kernel"]
        extra = "".join(
            [
                f", /{attrs['stride']}" if attrs["stride"] > 1 else "",
                f", groups {attrs['groups']}" if attrs["groups"] > 1 else "",
                f", dilation {attrs['dilation']}" if attrs["dilation"] > 1 else "",
            ]
        )
        return f"conv {k}×{k}, {attrs['out']}{extra}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "nn.Conv2d",
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
        "2-d convolution; padding defaults to kernel//2 * dilation",
        ("out",),
        (
            channels_option(),
            KERNEL,
            Option("stride", ("s",), default=1, minimum=1, maximum=4096),
            PADDING,
            Option("dilation", ("d",), default=1, minimum=1, maximum=4096),
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
        fan_in = x[0] // attrs["groups"] * attrs["kernel"] ** 2
        if fan_in < 2:  # its variance is over one value: torch refuses (a batch_norm of one value per channel)
            raise ShapeError(
                "E0410",
                f"`stdconv` standardises each filter over its {x[0] // attrs['groups']} input channel(s) × "
                f"{attrs['kernel']}×{attrs['kernel']} = {fan_in} weight, which has no variance",
                help="use `conv`, a larger kernel, or fewer groups (each filter needs two weights or more)",
            )
        return out

    def label(self, attrs) -> str:
        return "std " + super().label(attrs)

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        call = super().module(attrs, channels, rank, inplace)
        return ModuleCall("StdConv2d", call.args + (("eps", attrs["eps"]),), positional=2, defaults=(("eps", 1e-6),))


KINDS += (
    StdConvOp(
        "stdconv",
        "weight-standardised 2-d convolution (timm's StdConv2d); options as conv, plus eps",
        ("out",),
        KINDS[0].options + (Option("eps", default=1e-6, type="float", minimum=0.0, maximum=1.0, above_minimum=True),),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        fill="#dbe9f6",
    ),
)
