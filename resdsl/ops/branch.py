"""`chunk`: one branch's share of the channels in `branches(n, split = true)` (never written in a spec).

Branch i of n reads channels [i·C/n, (i+1)·C/n) of the input, as `torch.split(x, C // n, 1)[i]`
does in Res2Net, SKNet and ResNeSt; with `split = [s0, s1, ...]` (`sizes`), the s_i channels after
the s_0 + ... + s_(i-1) of the branches before it, as `torch.split(x, [s0, s1, ...], 1)[i]`, and the
sizes must add up to C (E0413). It is a view, not a module: the forward narrows the tensor.
"""

from __future__ import annotations

from ..errors import ShapeError
from .base import FunctionCall, OpKind, Option


class ChunkOp(OpKind):
    def shape(self, attrs, x):
        parts, sizes = attrs["parts"], attrs.get("sizes")
        if sizes is not None:
            if sum(sizes) != x[0]:
                raise ShapeError(
                    "E0413",
                    f"`branches({parts}, split = {list(sizes)})` splits {sum(sizes)} channels, but its input "
                    f"has {x[0]}",
                    help=f"give sizes that add up to the input's {x[0]} channels",
                )
            return (sizes[attrs["index"]],) + tuple(x[1:])
        if x[0] % parts:
            raise ShapeError(
                "E0408",
                f"`branches({parts}, split = true)` cannot split {x[0]} channels into {parts} equal parts",
                help=f"make the channels before the split a multiple of {parts}",
            )
        return (x[0] // parts,) + tuple(x[1:])

    def label(self, attrs, axes: int = 2) -> str:
        sizes = attrs.get("sizes")
        return f"split {attrs['index'] + 1}/{attrs['parts']}" + ("" if sizes is None else f", {sizes[attrs['index']]}")

    def forward(self, attrs, shape) -> FunctionCall:  # torch.split(x, C // n, 1)[i], or by sizes, as a view
        size, sizes, index = shape[0], attrs.get("sizes"), attrs["index"]
        start = index * size if sizes is None else sum(sizes[:index])
        return FunctionCall("torch.narrow", "one", (1, start, size))


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
