"""Element-wise activations: relu, gelu, silu, sigmoid."""

from __future__ import annotations

from dataclasses import dataclass

from .base import ModuleCall, OpKind


@dataclass(frozen=True)
class ActivationOp(OpKind):
    module_name: str = ""  # the torch.nn class
    shown: str = ""  # how drawings name it

    def label(self, attrs, axes: int = 2) -> str:
        return self.shown

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        # Only ReLU and SiLU take `inplace`; the backend asks for it where no one else reads the input.
        return ModuleCall(self.module_name, (("inplace", inplace),) if self.inplace else ())


KINDS = (
    ActivationOp("relu", "ReLU", inplace=True, module_name="nn.ReLU", shown="ReLU", fill="#fdf1d6"),
    ActivationOp("gelu", "GELU", module_name="nn.GELU", shown="GELU", fill="#fdf1d6"),
    ActivationOp("silu", "SiLU (swish)", inplace=True, module_name="nn.SiLU", shown="SiLU", fill="#fdf1d6"),
    ActivationOp("sigmoid", "logistic sigmoid", module_name="nn.Sigmoid", shown="sigmoid", fill="#fdf1d6"),
)
