"""Resampling: `upsample` (by a factor, nn.Upsample) and `resize` (to the size of another tensor).

`upsample MODE scale=S` multiplies every spatial size by S (one number or one per axis: floor(size·S),
as PyTorch), `upsample MODE to_input` gives the network input's spatial size back (torchvision's
segmentation heads: `F.interpolate(x, size=input_shape, ...)`). MODE is `nearest`, or `linear`
(the input's rank's: linear on C×L, bilinear on C×H×W, trilinear on C×D×H×W), or one of
`bilinear` / `trilinear` for its rank only. Neither has parameters or MACs (torchvision counts none).

`resize` is the node behind `to_input` and behind a merge's fit (`shortcut nearest`, shapes.plan_fit):
a function of two tensors in the forward, `F.interpolate(x, size=like.shape[2:], mode=...)`, so the
compiled module follows the other tensor's size at any input size, as the references do. Its
second input is a `size` edge of the op graph (graph.Role.SIZE).
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import EvalError, ShapeError
from ..values import RESAMPLE_MODES
from .base import FunctionCall, ModuleCall, OpKind, Option, Shape, axis_text, feature_map, per_axis, show_shape

# The words `upsample` and `shortcut` take (values.RESAMPLE_MODES); `linear` stands for the input's rank's.
MODES = RESAMPLE_MODES
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}  # spatial axes -> PyTorch's linear mode


def torch_mode(word: str, axes: int, what: str = "upsample") -> str:
    """PyTorch's mode for `word` on `axes` spatial axes (E0412 where the word names another rank)."""
    if word == "nearest":
        return word
    if word == "linear":
        return LINEAR[axes]
    if LINEAR.get(axes) != word:
        rank = {"bilinear": "an image (C×H×W)", "trilinear": "a volume (C×D×H×W)"}[word]
        raise ShapeError(
            "E0412",
            f"`{what} {word}` needs {rank}, but its input has {axes} spatial ax{'is' if axes == 1 else 'es'}",
            help=f"write `linear`, which is {LINEAR[axes]} here, or `nearest`",
        )
    return word


def _align(attrs: dict[str, Any], mode: str) -> tuple[tuple[str, Any], ...]:
    """align_corners, which PyTorch takes only with a linear mode (and refuses with nearest)."""
    return () if mode == "nearest" else (("align_corners", attrs["align_corners"]),)


class UpsampleOp(OpKind):
    def validate(self, attrs, span) -> None:
        if attrs["align_corners"] and attrs["mode"] == "nearest":
            raise EvalError(
                "E0203",
                "`align_corners` is for the linear modes; `nearest` takes no corners",
                span,
                help="write `upsample linear align_corners`, or leave the flag out",
            )
        if attrs["to_input"] and attrs["scale"] is not None:
            raise EvalError(
                "E0203",
                "`upsample` takes a `scale` or `to_input`, not both",
                span,
                help="`to_input` gives the network input's size back, whatever the scale",
            )

    def complete(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["scale"] is None and not attrs["to_input"]:
            attrs["scale"] = 2
        # a whole factor stays whole (`scale_factor=2`, as torchvision and smp write it)
        attrs["scale"] = _whole(attrs["scale"])
        return attrs

    def shape(self, attrs, x: Shape) -> Shape:
        c, *sizes = feature_map(self.name, x)
        torch_mode(attrs["mode"], len(sizes))
        if attrs["to_input"]:  # pragma: no cover - elaboration makes such a call a `resize` node
            raise AssertionError("`upsample to_input` is a resize")
        scale = per_axis(attrs["scale"], len(sizes), self.name, "scale")
        out = tuple(math.floor(size * s) for size, s in zip(sizes, scale))
        if min(out) < 1:
            raise ShapeError(
                "E0403",
                f"`upsample` by {axis_text(attrs['scale'])} turns {show_shape(tuple(sizes))} into {show_shape(out)}",
                help="a scale below 1 shrinks the input: use a larger scale or a larger input",
            )
        return (c, *out)

    def label(self, attrs, axes: int = 2) -> str:
        if attrs["to_input"]:
            return f"upsample {attrs['mode']}, to the input's size"
        return f"upsample {attrs['mode']}, ×{axis_text(attrs['scale'])}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        mode = torch_mode(attrs["mode"], max(rank - 1, 1))
        return ModuleCall(
            "nn.Upsample", (("scale_factor", attrs["scale"]), ("mode", mode)) + _align(attrs, mode), positional=0
        )


class ResizeOp(OpKind):
    """x resized to the spatial size of a second tensor (its `size` input): a merge's fit, `to_input`."""

    def resize_shape(self, attrs: dict[str, Any], x: Shape, like: Shape) -> Shape:
        """x's channels at `like`'s spatial size."""
        feature_map("upsample", x)
        if len(like) != len(x):
            raise ShapeError(
                "E0412",
                f"cannot resize {show_shape(x)} to the size of {show_shape(like)}: they have different ranks",
                help="resize between feature maps of the same number of spatial axes",
            )
        torch_mode(attrs["mode"], len(x) - 1)
        return (x[0], *like[1:])

    def label(self, attrs, axes: int = 2) -> str:
        return f"upsample {attrs['mode']}" + (", align corners" if attrs["align_corners"] else "")

    def forward(self, attrs, shape) -> FunctionCall:
        # folded over [x, like]: resize_as(x, like, mode=..., align_corners=...), once
        mode = torch_mode(attrs["mode"], max(len(shape) - 1, 1))
        align = None if mode == "nearest" else bool(attrs["align_corners"])
        return FunctionCall("layers.resize_as", "fold", kwargs=(("mode", mode), ("align_corners", align)))


def _whole(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_whole(v) for v in value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


ALIGN = Option("align_corners", default=False, type="bool", flag=True)
KINDS = (
    UpsampleOp(
        "upsample",
        "nearest or linear upsampling by `scale` (default 2), or `to_input`: to the network input's size",
        ("mode",),
        (
            Option("mode", default="nearest", type="word", choices=MODES),
            Option("scale", default=None, type="float", minimum=0.0, maximum=4096, above_minimum=True, per_axis=True),
            ALIGN,
            Option("to_input", default=False, type="bool", flag=True),
        ),
        feature_map=True,
        fill="#e3f1df",
    ),
    ResizeOp(
        "resize",
        "its input resized to the spatial size of a second tensor",
        (),
        (Option("mode", default="nearest", type="word", choices=MODES), ALIGN),
        internal=True,
        fill="#e3f1df",
    ),
)
