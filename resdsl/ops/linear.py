"""Ops on vectors and pass-throughs: `fc`, `flatten`, `dropout`, `identity`."""

from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, ModuleCall, OpKind, Option, Shape, channels_option, show_shape


class LinearOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        if len(x) > 1 and any(size != 1 for size in x[1:]):
            raise ShapeError(
                "E0405",
                f"`fc` on a {show_shape(x)} feature map",
                help="pool it first (`avgpool` without a kernel pools globally) or `flatten` it",
            )
        return (attrs["out"],)

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        n_in = x[0]  # a vector, or a pooled C×1×1 map (shape() refuses any other)
        return Cost(n_in * y[0] + (y[0] if attrs["bias"] else 0), n_in * y[0])

    def label(self, attrs, axes: int = 2) -> str:
        return f"fc, {attrs['out']}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        # On a C×1×1 map the forward flattens first, as torchvision's `torch.flatten(x, 1)`.
        return ModuleCall(
            "nn.Linear",
            (("in_features", channels), ("out_features", attrs["out"]), ("bias", attrs["bias"])),
            positional=2,
        )

    def out_channels(self, attrs, channels, rank):
        return attrs["out"]

    def out_rank(self, rank: int) -> int:
        return 1


class FlattenOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        size = 1
        for d in x:
            size *= d
        return (size,)

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.Flatten")

    def out_channels(self, attrs, channels, rank):
        return channels if rank == 1 else None  # C·H·W: unknown to a block class

    def out_rank(self, rank: int) -> int:
        return 1


class DropoutOp(OpKind):
    def label(self, attrs, axes: int = 2) -> str:
        return f"dropout {attrs['p']:g}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.Dropout", (("p", attrs["p"]),), positional=1)


class IdentityOp(OpKind):
    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.Identity")


KINDS = (
    FlattenOp("flatten", "C×H×W feature map to a vector of C·H·W", aliasing=True),
    LinearOp(
        "fc",
        "fully connected layer on a vector (or a C×1×1 map)",
        ("out",),
        (channels_option(), Option("bias", default=True, type="bool", flag=True)),
        reads_channels=True,
        fill="#f6dde3",
    ),
    DropoutOp(
        "dropout",
        "dropout with probability p",
        ("p",),
        (Option("p", default=0.5, type="float", minimum=0.0, maximum=1.0),),
        aliasing=True,
    ),
    IdentityOp("identity", "passes its input through", aliasing=True),
)
