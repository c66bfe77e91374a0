"""`space_to_depth SIZE`: every SIZE×SIZE patch of pixels becomes SIZE² channels (TResNet's stem, timm's
SpaceToDepth(block_size=4)), on any rank: C×L gives C·s × L/s, C×H×W gives C·s² × H/s × W/s, C×D×H×W gives
C·s³ × D/s × H/s × W/s.

The channels come out in timm's order: patch position first, then the input channel (output channel
(i·s + j)·C + c holds input channel c at offset (i, j) of each patch, on an image). Every spatial size
must be a multiple of SIZE (E0414): timm's view() would fail on the others. No parameters, no MACs;
the op subsamples by SIZE, as a stride-SIZE conv does.
"""

from __future__ import annotations

from ..errors import ShapeError
from .base import ModuleCall, OpKind, Option, Shape, feature_map, show_shape


class SpaceToDepthOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        c, *sizes = feature_map(self.name, x)
        s = attrs["size"]
        if any(size % s for size in sizes):
            patch = "×".join([str(s)] * len(sizes))
            odd = [str(size) for size in sizes if size % s]
            odd_text = ", ".join(odd[:-1]) + " and " + odd[-1]
            raise ShapeError(
                "E0414",
                f"`space_to_depth {s}` cuts {show_shape(tuple(sizes))} into {patch} patches, but "
                + (f"{odd[0]} is not a multiple of {s}" if len(odd) == 1 else f"{odd_text} are not multiples of {s}"),
                help=f"give the op an input whose every spatial size is a multiple of {s}",
            )
        return (c * s ** len(sizes), *(size // s for size in sizes))

    def stride(self, attrs, x) -> int:
        return attrs["size"]

    def label(self, attrs, axes: int = 2) -> str:
        return f"space to depth, /{attrs['size']}"

    def module(self, attrs, channels, rank, inplace) -> ModuleCall:
        return ModuleCall(
            "SpaceToDepth", (("size", attrs["size"]), ("dims", rank - 1)), positional=1, defaults=(("dims", 2),)
        )

    def out_channels(self, attrs, channels, rank):  # C·s per spatial axis (symbolic when ejecting: no `**`)
        for _ in range(rank - 1):
            channels = channels * attrs["size"]
        return channels


KINDS = (
    SpaceToDepthOp(
        "space_to_depth",
        "each size×size patch of pixels made size² channels (TResNet's stem)",
        ("size",),
        (Option("size", default=4, minimum=1, maximum=4096),),
        feature_map=True,
        aliasing=False,
        fill="#f4f4f4",
    ),
)
