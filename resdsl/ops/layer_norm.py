"""`ln`: layer normalisation over the channels, as timm's LayerNorm2d and torchvision's ConvNeXt
LayerNorm2d on a feature map (F.layer_norm over C with the channels moved last, any rank), and as
nn.LayerNorm on a vector. A `norm` statement may choose it for `bn` (`norm ln`)."""

from __future__ import annotations

from .base import Cost, ModuleCall, OpKind, Option, Shape

EPS = 1e-6  # timm's LayerNorm / LayerNorm2d and torchvision's ConvNeXt (nn.LayerNorm's own is 1e-5)


class LayerNormOp(OpKind):
    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(2 * x[0], 0)  # weight and bias of shape (C,); no statistics are kept

    def label(self, attrs, axes: int = 2) -> str:
        return "layer norm" + (" (zero-init)" if attrs.get("zero_init") else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        # a vector (N, C) is nn.LayerNorm's own case; a feature map moves its channels last and back
        if rank == 1:
            return ModuleCall("nn.LayerNorm", (("normalized_shape", channels), ("eps", attrs["eps"])), positional=1)
        args = (("num_channels", channels), ("eps", attrs["eps"]))
        return ModuleCall("ChannelLayerNorm", args, positional=1, defaults=(("eps", EPS),))


KINDS = (
    LayerNormOp(
        "ln",
        "layer normalisation over the channels at each position (over the features of a vector)",
        (),
        (
            # `zero_init` starts its scale at 0 as `bn`'s, so the blocks that pass it work under `norm ln`
            Option("zero_init", default=False, type="bool", flag=True),
            Option("eps", default=EPS, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
        ),
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
)
