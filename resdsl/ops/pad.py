"""`pad`: zero padding on every side (nn.ConstantPad2d), as BiT's fixed-padding stem (timm's stem.pad)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option, feature_map


class PadOp(OpKind):
    def shape(self, attrs, x):
        c, h, w = feature_map(self.name, x)
        p = attrs["padding"]
        return (c, h + 2 * p, w + 2 * p)

    def label(self, attrs) -> str:
        return f"zero pad {attrs['padding']}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.ConstantPad2d", (("padding", attrs["padding"]), ("value", 0.0)), positional=2)


KINDS = (
    PadOp(
        "pad",
        "zero padding of `padding` pixels on every side",
        ("padding",),
        (Option("padding", ("p",), default=1, minimum=0, maximum=4096),),
        feature_map=True,
    ),
)
