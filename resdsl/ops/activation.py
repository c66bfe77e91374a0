"""Element-wise activations: relu, gelu (exact or tanh), silu, sigmoid, leaky_relu, hardswish, mish.

Each is one torch.nn class. An activation's options are its torch class's keyword arguments
(`leaky_relu 0.2` is nn.LeakyReLU(0.2), `gelu tanh` is nn.GELU(approximate="tanh")); a drawing shows
the options that differ from their defaults (`LeakyReLU 0.2`, `GELU tanh`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..values import GELU_FORMS
from .base import ModuleCall, OpKind, Option


@dataclass(frozen=True)
class ActivationOp(OpKind):
    module_name: str = ""  # the torch.nn class
    shown: str = ""  # how drawings name it
    keywords: tuple[str, ...] = ()  # the torch class's keyword for each option, in `options`' order

    def label(self, attrs, axes: int = 2) -> str:
        changed = [attrs[o.name] for o in self.options if attrs[o.name] != o.default]
        return " ".join([self.shown] + [f"{v:g}" if isinstance(v, float) else str(v) for v in changed])

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        # Options are written by keyword (`nn.GELU(approximate="tanh")`); the torch classes that take
        # `inplace` are asked for it where no one else reads the input.
        args = tuple((keyword, attrs[o.name]) for o, keyword in zip(self.options, self.keywords))
        defaults = tuple((keyword, o.default) for o, keyword in zip(self.options, self.keywords))
        return ModuleCall(
            self.module_name,
            args + ((("inplace", inplace),) if self.inplace else ()),
            defaults=defaults,
        )


FILL = "#fdf1d6"
KINDS = (
    ActivationOp("relu", "ReLU", inplace=True, module_name="nn.ReLU", shown="ReLU", fill=FILL),
    ActivationOp(
        "gelu",
        "GELU, exact (erf) or its tanh approximation (`gelu tanh`)",
        ("approximate",),
        (Option("approximate", default="none", type="word", choices=GELU_FORMS),),
        module_name="nn.GELU",
        shown="GELU",
        keywords=("approximate",),
        fill=FILL,
    ),
    ActivationOp("silu", "SiLU (swish)", inplace=True, module_name="nn.SiLU", shown="SiLU", fill=FILL),
    ActivationOp("sigmoid", "logistic sigmoid", module_name="nn.Sigmoid", shown="sigmoid", fill=FILL),
    ActivationOp(
        "leaky_relu",
        "leaky ReLU: x for x >= 0, slope · x below",
        ("slope",),
        # a negative slope is refused: torch's in-place LeakyReLU cannot differentiate it
        (Option("slope", default=0.01, type="float", minimum=0.0, maximum=1.0),),
        inplace=True,
        module_name="nn.LeakyReLU",
        shown="LeakyReLU",
        keywords=("negative_slope",),
        fill=FILL,
    ),
    ActivationOp(
        "hardswish",
        "hard swish: x · relu6(x + 3) / 6",
        inplace=True,
        module_name="nn.Hardswish",
        shown="hardswish",
        fill=FILL,
    ),
    ActivationOp("mish", "Mish: x · tanh(softplus(x))", inplace=True, module_name="nn.Mish", shown="Mish", fill=FILL),
)
