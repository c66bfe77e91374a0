"""Norms: `bn` (nn.BatchNorm2d, nn.BatchNorm1d on a vector) and `gn` (nn.GroupNorm)."""

from __future__ import annotations

from ..errors import ShapeError
from .base import MAX_CHANNELS, Cost, ModuleCall, OpKind, Option, Shape


class BatchNorm(OpKind):
    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(2 * x[0], 0)  # weight and bias; the running statistics are buffers

    def label(self, attrs) -> str:
        return "batch norm" + (" (zero-init)" if attrs.get("zero_init") else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d", (
            ("num_features", channels), ("eps", attrs["eps"]), ("momentum", attrs["momentum"])), positional=1)


KINDS = (
    BatchNorm("bn", "batch normalisation; `zero_init` starts its scale at 0", (), (
        Option("zero_init", default=False, type="bool", flag=True),
        Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
        Option("momentum", default=0.1, type="float", minimum=0.0, maximum=1.0),
    ), reads_channels=True, overwritable=True, numbered=True, norm=True),
)


class GroupNorm(OpKind):
    """Group normalisation (Wu & He 2018): statistics over groups of channels, independent of the batch."""

    def shape(self, attrs, x: Shape) -> Shape:
        if x[0] % attrs["groups"]:
            raise ShapeError("E0402", f"gn groups={attrs['groups']} does not divide the {x[0]} channels",
                             help=f"choose a number of groups that divides {x[0]}")
        return x

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        return Cost(2 * x[0], 0)  # a scale and a shift per channel, as BN

    def label(self, attrs) -> str:
        return f"group norm, {attrs['groups']} groups" + (" (zero-init)" if attrs["zero_init"] else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall("nn.GroupNorm", (("num_groups", attrs["groups"]), ("num_channels", channels),
                                           ("eps", attrs["eps"])), positional=2)


KINDS += (
    GroupNorm("gn", "group normalisation over `groups` groups of channels; `zero_init` starts its scale at 0", (
        "groups",), (
        Option("groups", ("g",), default=32, minimum=1, maximum=MAX_CHANNELS),
        Option("zero_init", default=False, type="bool", flag=True),
        Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
    ), reads_channels=True, overwritable=True, numbered=True, norm=True),
)
