"""Norms: `bn` (nn.BatchNorm1d/2d/3d by the input's rank, 1d on a vector), `gn` (nn.GroupNorm), and timm's
batch-independent norms with their own nonlinearity, `evonorm` (EvoNorm-S0) and `frn` (FilterResponseNorm
with TLU). Any of them can replace `bn` throughout a scope (the `norm` statement)."""

from __future__ import annotations

from ..errors import ShapeError
from .base import MAX_CHANNELS, Cost, ModuleCall, OpKind, Option, Shape, nd

# The options of the norms over groups of channels (`gn`, `evonorm`)
GROUPED = (
    Option("groups", ("g",), default=32, minimum=1, maximum=MAX_CHANNELS),
    Option("zero_init", default=False, type="bool", flag=True),
    Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
)


class BatchNormOp(OpKind):
    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(2 * x[0], 0)  # weight and bias; the running statistics are buffers

    def label(self, attrs, axes: int = 2) -> str:
        return "batch norm" + (" (zero-init)" if attrs.get("zero_init") else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            nd("nn.BatchNorm", rank),  # BatchNorm1d for (N, C) and (N, C, L), 2d, 3d
            (("num_features", channels), ("eps", attrs["eps"]), ("momentum", attrs["momentum"])),
            positional=1,
        )


KINDS: tuple[OpKind, ...] = (
    BatchNormOp(
        "bn",
        "batch normalisation; `zero_init` starts its scale at 0",
        (),
        (
            Option("zero_init", default=False, type="bool", flag=True),
            Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
            Option("momentum", default=0.1, type="float", minimum=0.0, maximum=1.0),
        ),
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
)


class GroupNormOp(OpKind):
    """Group normalisation (Wu & He 2018): statistics over groups of channels, independent of the batch."""

    def shape(self, attrs, x: Shape) -> Shape:
        if x[0] % attrs["groups"]:
            raise ShapeError(
                "E0402",
                f"gn groups={attrs['groups']} does not divide the {x[0]} channels",
                help=f"choose a number of groups that divides {x[0]}",
            )
        return x

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(2 * x[0], 0)  # a scale and a shift per channel, as BN

    def label(self, attrs, axes: int = 2) -> str:
        return f"group norm, {attrs['groups']} groups" + (" (zero-init)" if attrs["zero_init"] else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "nn.GroupNorm",
            (("num_groups", attrs["groups"]), ("num_channels", channels), ("eps", attrs["eps"])),
            positional=2,
        )


KINDS += (
    GroupNormOp(
        "gn",
        "group normalisation over `groups` groups of channels; `zero_init` starts its scale at 0",
        ("groups",),
        GROUPED,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
)


class EvoNormOp(GroupNormOp):
    """EvoNorm-S0 (Liu et al. 2020), timm's EvoNorm2dS0: x·σ(v·x) / group_std(x) · weight + bias, statistics
    over `groups` groups of channels. It is a norm and a nonlinearity: no ReLU follows it."""

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(3 * x[0], 0)  # weight, bias and v per channel

    def label(self, attrs, axes: int = 2) -> str:
        return f"EvoNorm-S0, {attrs['groups']} groups" + (" (zero-init)" if attrs["zero_init"] else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "EvoNormS0",
            (("num_features", channels), ("groups", attrs["groups"]), ("eps", attrs["eps"])),
            positional=1,
            defaults=(("groups", 32), ("eps", 1e-5)),
        )


class FilterResponseNormOp(OpKind):
    """Filter response normalisation with a thresholded linear unit (Singh & Krishnan 2020), timm's
    FilterResponseNormTlu2d: x / sqrt(mean(x²) + eps) · weight + bias, then max(·, tau). No ReLU follows it."""

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(3 * x[0], 0)  # weight, bias and tau per channel

    def label(self, attrs, axes: int = 2) -> str:
        return "filter response norm + TLU" + (" (zero-init)" if attrs["zero_init"] else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "FilterResponseNormTlu",
            (("num_features", channels), ("eps", attrs["eps"])),
            positional=1,
            defaults=(("eps", 1e-5),),
        )


KINDS += (
    EvoNormOp(
        "evonorm",
        "EvoNorm-S0: a batch-independent norm and nonlinearity over `groups` groups of channels",
        ("groups",),
        GROUPED,
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
    FilterResponseNormOp(
        "frn",
        "filter response norm with a thresholded linear unit (its own nonlinearity)",
        (),
        (
            Option("zero_init", default=False, type="bool", flag=True),
            Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
        ),
        feature_map=True,
        reads_channels=True,
        overwritable=True,
        numbered=True,
        norm=True,
        fill="#eeeeee",
    ),
)
