"""`bn`: batch normalisation, as nn.BatchNorm2d (nn.BatchNorm1d on a vector)."""

from __future__ import annotations

from .base import Cost, ModuleCall, OpKind, Option, Shape


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
    ), reads_channels=True, overwritable=True),
)
