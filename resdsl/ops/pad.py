"""`pad`: zero padding on every side of every spatial axis (nn.ConstantPad1d/2d/3d), as BiT's fixed-padding
stem (timm's stem.pad)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option, feature_map, nd


class PadOp(OpKind):
    def shape(self, attrs, x):
        c, *sizes = feature_map(self.name, x)
        p = attrs["padding"]
        return (c, *(size + 2 * p for size in sizes))

    def label(self, attrs, axes: int = 2) -> str:
        return f"zero pad {attrs['padding']}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(nd("nn.ConstantPad", rank), (("padding", attrs["padding"]), ("value", 0.0)), positional=2)


KINDS = (
    PadOp(
        "pad",
        "zero padding of `padding` pixels on every side",
        ("padding",),
        (Option("padding", ("p",), default=1, minimum=0, maximum=4096),),
        feature_map=True,
    ),
)
