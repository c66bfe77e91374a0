"""`frozen_bn`: batch norm whose statistics and affine parameters are fixed buffers, as torchvision's
FrozenBatchNorm2d in its detection backbones (`resnet_fpn_backbone`). It has no parameters (so it
counts none, as torchvision's `sum(p.numel() for p in model.parameters())`) and no
`num_batches_tracked`, so a detection backbone's state dict loads with strict=True. `norm frozen_bn`
makes every `bn` of a scope one (the `norm` statement, docs/language.md §13)."""

from __future__ import annotations

from .base import ModuleCall, OpKind, Option


class FrozenBatchNormOp(OpKind):
    def label(self, attrs, axes: int = 2) -> str:
        return "frozen batch norm"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("FrozenBatchNorm", (("num_features", channels), ("eps", attrs["eps"])), positional=1)


KINDS = (
    FrozenBatchNormOp(
        "frozen_bn",
        "batch norm with fixed statistics and scale (buffers only, no parameters): torchvision's FrozenBatchNorm2d",
        (),
        (
            # `zero_init` starts its scale at 0 as `bn`'s, so the blocks that pass it work under `norm frozen_bn`
            Option("zero_init", default=False, type="bool", flag=True),
            Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
        ),
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
)
