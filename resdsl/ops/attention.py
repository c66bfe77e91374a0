"""`se`: squeeze-and-excitation (Hu et al. 2018), as timm's SEModule (fc1, fc2)."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from .base import MAX_CHANNELS, Cost, ModuleCall, OpKind, Option, Shape, exact_div


def se_hidden(attrs: dict[str, Any], channels: int) -> int:
    """Hidden width: `hidden` if given, else C / ratio (whole)."""
    if attrs.get("hidden") is not None:
        return attrs["hidden"]
    ratio = attrs["ratio"]
    if channels % ratio:
        raise ShapeError("E0301", f"`se` ratio {ratio} does not divide {channels} channels",
                         help="pass `hidden=N` to choose the squeezed width yourself")
    return channels // ratio


class SqueezeExcite(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        se_hidden(attrs, x[0])
        return x

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        c, h = x[0], se_hidden(attrs, x[0])
        # fc1: c -> h (1×1 conv with bias), fc2: h -> c (with bias), on a 1×1 map.
        return Cost(c * h + h + h * c + c, 2 * c * h)

    def label(self, attrs) -> str:
        return "squeeze-excite" + (f", /{attrs['ratio']}" if attrs.get("hidden") is None else f", {attrs['hidden']}")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        hidden = attrs["hidden"] if attrs["hidden"] is not None else exact_div(channels, attrs["ratio"])
        return ModuleCall("SqueezeExcite", (("channels", channels), ("hidden", hidden)), positional=2)


KINDS = (
    SqueezeExcite("se", "squeeze-and-excitation: pool, 1×1 conv to C/ratio, ReLU, 1×1 conv to C, sigmoid gate",
                  ("ratio",), (
                      Option("ratio", ("r",), default=16, minimum=1, maximum=MAX_CHANNELS),
                      Option("hidden", default=None, minimum=1, maximum=MAX_CHANNELS),
                  ), feature_map=True, reads_channels=True, overwritable=True),
)
