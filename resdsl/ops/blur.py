"""`blurpool`: anti-aliased downsampling (Zhang 2019), as timm's BlurPool2d (over 1, 2 or 3 spatial axes).

A fixed binomial filter (1 2 1 for kernel 3) blurs each channel, then the
stride subsamples; the input is reflect-padded by ((stride - 1) + (kernel - 1)) // 2.
The filter is a buffer that is not saved, so the op has no parameters and adds no
state-dict entries; its depthwise convolution counts C · k² MACs per output pixel.
"""

from __future__ import annotations

from ..errors import ShapeError
from .base import Cost, ModuleCall, OpKind, Option, Shape, show_shape, volume, window, window_text


def blur_padding(attrs) -> int:
    return ((attrs["stride"] - 1) + (attrs["kernel"] - 1)) // 2


class BlurPoolOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        c, *sizes = x
        k, s, p = attrs["kernel"], attrs["stride"], blur_padding(attrs)
        if p >= min(sizes):
            raise ShapeError(
                "E0403",
                f"`blurpool` reflect-pads by {p}, which needs an input larger than {show_shape(tuple(sizes))}",
                help="reflect padding must be smaller than the input: use a larger input",
            )
        return (c, *(window(size, k, s, p) for size in sizes))

    def cost(self, attrs, x: Shape, y: Shape) -> Cost:
        # a depthwise k×k conv (k per axis), fixed weights
        return Cost(0, y[0] * attrs["kernel"] ** (len(y) - 1) * volume(y[1:]))

    def stride(self, attrs, x) -> int:
        return attrs["stride"]

    def label(self, attrs, axes: int = 2) -> str:
        return f"blur pool {window_text(attrs['kernel'], axes)}" + (
            f", /{attrs['stride']}" if attrs["stride"] > 1 else ""
        )

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "BlurPool",
            (
                ("channels", channels),
                ("kernel_size", attrs["kernel"]),
                ("stride", attrs["stride"]),
                ("dims", rank - 1),
            ),
            positional=1,
            defaults=(("kernel_size", 3), ("stride", 2), ("dims", 2)),
        )


KINDS = (
    BlurPoolOp(
        "blurpool",
        "anti-aliased downsampling: a binomial blur, then the stride",
        (),
        (
            Option("kernel", ("k",), default=3, minimum=2, maximum=64),
            Option("stride", ("s",), default=2, minimum=1, maximum=4096),
        ),
        feature_map=True,
        reads_channels=True,
        fill="#e3f1df",
    ),
)
