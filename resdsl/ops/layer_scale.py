"""`layer_scale`: a learned multiplier per channel (Touvron et al. 2021, CaiT; ConvNeXt's γ).

It is no module but a bare parameter of its enclosing container, named by the op's label, as the
references keep it: torchvision's CNBlock holds `features.1.0.layer_scale` of shape (C, 1, 1), timm's
ConvNeXtBlock `stages.0.blocks.0.gamma` of shape (C,), timm's LayerScale module `ls.gamma` (a label
`ls.gamma:` puts the parameter on the container `ls`). The parameter starts at `init` everywhere;
`broadcast` stores it with a 1 per spatial axis, (C, 1, 1) on an image, as torchvision does, else (C,).
The forward multiplies the input by it per channel (`layers.scale_channels`); the product is the same
either way, so the layout only decides the state dict's shape.
"""

from __future__ import annotations

from .base import Cost, OpKind, Option, ParameterCall, Shape, known


class LayerScaleOp(OpKind):
    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(x[0], 0)  # one factor per channel; an element-wise product counts no MACs (as FlopCounterMode)

    def label(self, attrs, axes: int = 2) -> str:
        return f"layer scale {attrs['init']:g}"

    def parameter(self, attrs, channels, rank) -> ParameterCall:
        # `broadcast` is a number here, or a constant of the ejector's (which refuses one that varies)
        shape = (channels,) + ((1,) * (rank - 1) if known(attrs["broadcast"]) else ())
        return ParameterCall(shape, attrs["init"], "layers.scale_channels")


KINDS = (
    LayerScaleOp(
        "layer_scale",
        "a learned scale per channel, a bare parameter named by the op's label (ConvNeXt's γ)",
        ("init",),
        (
            Option("init", default=1e-6, type="float", minimum=-1e6, maximum=1e6),
            Option("broadcast", default=False, type="bool", flag=True),
        ),
        reads_channels=True,
        overwritable=True,
        fill="#e8e0f0",
    ),
)
