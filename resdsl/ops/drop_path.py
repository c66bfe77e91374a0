"""`drop_path`: stochastic depth (Huang et al. 2016), timm's DropPath.

In training each example's input is zeroed with probability `rate` and the survivors scaled by
1 / (1 - rate); in eval mode it is the identity. Put it at the end of a residual main path, with a
rate that grows with depth (timm: `drop_path_rate · i / (blocks - 1)` for the network's i-th block;
a stage's `repetition` gives i, see specs/resnetv2.res).
"""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option


class DropPathOp(OpKind):
    def label(self, attrs, axes: int = 2) -> str:
        return f"drop path {attrs['rate']:g}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("DropPath", (("rate", attrs["rate"]),), positional=1)


KINDS = (
    DropPathOp(
        "drop_path",
        "stochastic depth: drops the whole input of an example with probability `rate` (training only)",
        ("rate",),
        (Option("rate", default=0.0, type="float", minimum=0.0, maximum=1.0),),
        aliasing=True,
    ),
)
