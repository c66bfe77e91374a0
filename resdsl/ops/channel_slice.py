"""`slice START [SIZE]`: a run of the input's channels, [START, START + SIZE) (all of them from START when
SIZE is left out), as DPN's `x[:, :num_1x1_c]` and `x[:, num_1x1_c:]`.

It is a view, not a module: the forward narrows the tensor on the channel axis, `torch.narrow(x, 1,
START, SIZE)`, on any rank (a vector's features, a sequence's, an image's, a volume's channels). A run
that does not lie in the input's channels is E0413. No parameters, no MACs.
"""

from __future__ import annotations

from ..errors import ShapeError
from .base import MAX_CHANNELS, FunctionCall, OpKind, Option, Shape


def run(attrs, channels: int) -> tuple[int, int]:
    """[start, end) of the channels the slice takes from `channels` (E0413 where they are not there)."""
    start, size = attrs["start"], attrs["size"]
    end = channels if size is None else start + size
    if end > channels or start >= channels:
        wanted = f"channels {start} to {end - 1}" if size is not None else f"channels from {start}"
        raise ShapeError(
            "E0413",
            f"`slice {start}{'' if size is None else f' {size}'}` takes {wanted}, but its input has {channels}"
            f" (0 to {channels - 1})",
            help=(
                f"start below {channels}"
                if start >= channels
                else f"take at most {channels - start} channels from {start}: `slice {start} {channels - start}`"
            ),
        )
    return start, end


class SliceOp(OpKind):
    def shape(self, attrs, x: Shape) -> Shape:
        start, end = run(attrs, x[0])
        return (end - start,) + tuple(x[1:])

    def label(self, attrs, axes: int = 2) -> str:
        size = attrs["size"]
        return f"channels {attrs['start']}:" + ("" if size is None else str(attrs["start"] + size))

    def forward(self, attrs, shape) -> FunctionCall:  # x[:, start:start + size], as a view
        return FunctionCall("torch.narrow", "one", (1, attrs["start"], shape[0]))

    def out_channels(self, attrs, channels, rank):
        return channels - attrs["start"] if attrs["size"] is None else attrs["size"]


KINDS = (
    SliceOp(
        "slice",
        "the channels [start, start + size) of its input (from start on when size is left out)",
        ("start", "size"),
        (
            Option("start", minimum=0, maximum=MAX_CHANNELS - 1),
            Option("size", default=None, minimum=1, maximum=MAX_CHANNELS),
        ),
        aliasing=True,
        fill="#ffffff",
    ),
)
