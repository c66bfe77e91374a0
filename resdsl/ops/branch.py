"""`chunk`: one branch's share of the channels in `branches(n, split = true)` (never written in a spec).

Branch i of n reads channels [i·C/n, (i+1)·C/n) of the input, as `torch.split(x, C // n, 1)[i]`
does in Res2Net, SKNet and ResNeSt. It is a view, not a module: the forward narrows the tensor.
"""

from __future__ import annotations

from ..errors import ShapeError
from .base import FunctionCall, OpKind, Option


class ChunkOp(OpKind):
    def shape(self, attrs, x):
        parts = attrs["parts"]
        if x[0] % parts:
            raise ShapeError(
                "E0408",
                f"`branches({parts}, split = true)` cannot split {x[0]} channels into {parts} equal parts",
                help=f"make the channels before the split a multiple of {parts}",
            )
        return (x[0] // parts,) + tuple(x[1:])

    def label(self, attrs, axes: int = 2) -> str:
        return f"split {attrs['index'] + 1}/{attrs['parts']}"

    def forward(self, attrs, shape) -> FunctionCall:  # torch.split(x, C // n, 1)[i], as a view
        size = shape[0]
        return FunctionCall("torch.narrow", "one", (1, attrs["index"] * size, size))


KINDS = (
    ChunkOp(
        "chunk",
        "branch `index` of `parts`: its equal share of the input's channels",
        (),
        (Option("parts", minimum=1), Option("index", minimum=0)),
        aliasing=True,
        internal=True,
        fill="#ffffff",
    ),
)
