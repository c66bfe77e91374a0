"""`maxpool` and `avgpool` (local with a kernel; global average pooling without one), over 1, 2 or 3
spatial axes (nn.MaxPool1d/2d/3d ...); kernel, stride and padding take one number or one per axis."""

from __future__ import annotations

from typing import Any

from ..errors import EvalError, ShapeError
from .base import (
    CEIL,
    KERNEL,
    PADDING,
    STRIDE,
    ModuleCall,
    OpKind,
    Option,
    Shape,
    axis_text,
    elementwise,
    feature_map,
    nd,
    per_axis,
    show_shape,
    spatial,
    window_text,
)


class PoolOp(OpKind):
    def is_global(self, attrs) -> bool:
        return attrs["kernel"] is None

    def validate(self, attrs, span) -> None:
        if self.is_global(attrs) and (
            attrs["stride"] or attrs["padding"] or attrs["ceil"] or not attrs["count_include_pad"]
        ):
            raise EvalError(
                "E0203",
                "global `avgpool` (no kernel) takes no stride, padding, ceil or count_include_pad",
                span,
                help="give a kernel (`avgpool k2 s2`) to pool locally",
            )

    def complete(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not self.is_global(attrs):  # PyTorch's pools default their stride to the kernel, not to 1
            attrs["stride"] = attrs["stride"] if attrs["stride"] is not None else attrs["kernel"]
            if attrs["padding"] is None:
                attrs["padding"] = elementwise(lambda k: (k - 1) // 2, attrs["kernel"])
        return attrs

    def advice(self, attrs, given):
        # `avgpool k8` pads (8-1)//2 = 3 by the language's same-padding rule, where PyTorch's
        # AvgPool2d(8), which a port from torchvision or a paper copies, pads 0: a silent change of
        # every output. A pool whose windows do not overlap (kernel == stride) and pads only because
        # of the rule is that case.
        if self.is_global(attrs) or "padding" in given or isinstance(attrs["kernel"], tuple):
            return None  # (a per-axis kernel is new code, not a port of AvgPool2d(k))
        if attrs["padding"] == 0 or attrs["stride"] != attrs["kernel"]:
            return None
        k, p = attrs["kernel"], attrs["padding"]
        return (
            "W0401",
            f"`{self.name} k{k}` pads {p} on each side (the same-padding rule, (kernel-1)//2), "
            f"where PyTorch's {self.module(attrs, 0, 3, False).constructor.split('.')[-1]}({k}) pads 0",
            f"write `{self.name} k{k} p0` for PyTorch's pooling, or `p{p}` to keep the padding",
        )

    def shape(self, attrs, x: Shape) -> Shape:
        if self.is_global(attrs):
            return (feature_map(self.name, x)[0],) + (1,) * (len(x) - 1)
        y = spatial(self.name, x, attrs)
        axes = len(x) - 1
        kernel, padding = per_axis(attrs["kernel"], axes), per_axis(attrs["padding"], axes)
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise ShapeError(
                "E0303",
                f"`{self.name}` padding {axis_text(attrs['padding'])} is more than half its kernel "
                f"{axis_text(attrs['kernel'])}",
                help="PyTorch requires pool padding <= kernel/2",
            )
        if axes == 3 and self.name == "avgpool" and any(size < k for size, k in zip(x[1:], kernel)):
            # AvgPool3d refuses a kernel larger than its unpadded input (torch's avg_pool3d shape check); the
            # other pools, MaxPool3d included, only need a window in the padded input
            raise ShapeError(
                "E0403",
                f"`{self.name}` with kernel {window_text(attrs['kernel'], axes)} on a {show_shape(x[1:])} input: "
                "PyTorch's AvgPool3d needs the kernel within the unpadded input",
                help="use a larger input, or a smaller kernel on the short axes (`k=(1, 3, 3)`)",
            )
        return y

    def stride(self, attrs, x):
        if self.is_global(attrs):  # the whole input, axis by axis
            return tuple(x[1:]) if x is not None and len(x) > 1 else 1
        return attrs["stride"]

    def label(self, attrs, axes: int = 2) -> str:
        if self.is_global(attrs):
            return "global avg pool"
        s = attrs["stride"]
        return f"{self.name[:3]} pool {window_text(attrs['kernel'], axes)}" + (f", /{axis_text(s)}" if s != 1 else "")

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        if self.is_global(attrs):
            return ModuleCall(nd("nn.AdaptiveAvgPool", rank), (("output_size", 1),), positional=1)
        args = (
            ("kernel_size", attrs["kernel"]),
            ("stride", attrs["stride"]),
            ("padding", attrs["padding"]),
            ("ceil_mode", attrs["ceil"]),
        )
        if self.name == "maxpool":
            return ModuleCall(nd("nn.MaxPool", rank), args)
        return ModuleCall(nd("nn.AvgPool", rank), args + (("count_include_pad", attrs["count_include_pad"]),))


KINDS = (
    PoolOp(
        "maxpool",
        "max pooling; stride defaults to the kernel, padding to (kernel-1)//2",
        (),
        (KERNEL, STRIDE, PADDING, CEIL),
        feature_map=True,
        fill="#e3f1df",
    ),
    PoolOp(
        "avgpool",
        "average pooling; without a kernel, global average pooling to C×1×1 (1 on every spatial axis)",
        (),
        (
            Option("kernel", ("k",), default=None, minimum=1, maximum=4096, per_axis=True),
            STRIDE,
            PADDING,
            CEIL,
            # timm's ResNet-D shortcut pools with count_include_pad=False
            Option("count_include_pad", default=True, type="bool"),
        ),
        feature_map=True,
        fill="#e3f1df",
    ),
)
