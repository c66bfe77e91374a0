"""`channel_fc`: a fully connected layer over the channels at every position of a feature map (on a
vector, over its features, as `fc`): torchvision's CNBlock and timm's ConvNeXtBlock apply nn.Linear to
the channels-last map. It is a 1×1 convolution whose weights are shaped as nn.Linear's, (out, in), so
their state dicts load; the module moves the channels last, applies the Linear and moves them back.
`fc` itself stays a layer on a vector (or a pooled C×1×1 map), so an unpooled map given to it is still
the error it usually is (E0405)."""

from __future__ import annotations

from .base import Cost, ModuleCall, OpKind, Option, Shape, channels_option, volume


class ChannelLinearOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        return (attrs["out"],) + x[1:]

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        weights = x[0] * y[0]
        return Cost(weights + (y[0] if attrs["bias"] else 0), weights * volume(y[1:]))  # a MAC per weight and position

    def label(self, attrs, axes: int = 2) -> str:
        return f"fc over channels, {attrs['out']}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        constructor = "nn.Linear" if rank == 1 else "ChannelLinear"
        return ModuleCall(
            constructor,
            (("in_features", channels), ("out_features", attrs["out"]), ("bias", attrs["bias"])),
            positional=2,
        )

    def out_channels(self, attrs, channels, rank):
        return attrs["out"]


KINDS = (
    ChannelLinearOp(
        "channel_fc",
        "fully connected over the channels at every position (nn.Linear on the channels-last map)",
        ("out",),
        (channels_option(), Option("bias", default=True, type="bool", flag=True)),
        reads_channels=True,
        overwritable=True,
        fill="#f6dde3",
    ),
)
