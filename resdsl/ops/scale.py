"""`mul`: multiplication by a constant, without parameters: the normaliser-free ResNets' residual scale α
(`mul 0.2` at the end of a main path) and their 1/β before a block (Brock et al. 2021); timm's
NormFreeBlock multiplies so in its forward. Any rank; no parameters and no MACs (torchvision's convention
counts conv and fc only)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option


class MultiplyOp(OpKind):
    def label(self, attrs, axes: int = 2) -> str:
        return f"× {attrs['factor']:g}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("Multiply", (("factor", attrs["factor"]),), positional=1)


KINDS = (
    MultiplyOp(
        "mul",
        "multiplication by a constant `factor` (no parameters)",
        ("factor",),
        (Option("factor", type="float", minimum=-1e6, maximum=1e6),),
        overwritable=True,  # a new tensor, and x·c's backward keeps only c: a residual add may write into it
        fill="#fdf1d6",
    ),
)
