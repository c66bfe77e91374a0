"""The merges: ops that combine several tensors into one (never written as an op in a spec).

A residual block's merge takes the main path and the shortcut (`residual { ... }`: `add`, with the
shortcut the policy plans in shapes.py; `dense { ... }`: `concat`); a `branches` construct's merge
takes every branch, in order (`branches(n, merge = WORD)`, WORD being a kind's `merge_word`).
`add` is both the residual add and the branches' `sum`: which it is follows from its inputs'
roles (graph.Inputs: a shortcut, or branches), not from two kinds.

Each kind gives its shape rule over its inputs (`merge_shape`), its cost (none: torchvision counts
no MACs for element-wise ops), the function the forward calls (`forward`, data that the fx backend
and the ejector both read), and its drawing (`label`, `circle`, `fill`). A new merge is one more
kind here: `merge_word` makes `branches(merge = ...)` accept it.
"""

from __future__ import annotations

from typing import TypedDict

from ..errors import ShapeError
from .base import FunctionCall, OpKind, Option, Shape
from .base import show_shape as _show


class MergeOp(OpKind):
    """An element-wise merge: every input has one shape, which is the output's."""

    def merge_shape(self, attrs, inputs, weights=None, residual=False) -> Shape:
        first = inputs[0]
        if any(b != first for b in inputs):
            if attrs.get("carry"):  # Res2Net's carry: sp = sp + spx[i], the previous branch's output plus this share
                raise ShapeError(
                    "E0409",
                    f"`carry` adds the previous branch's output ({_show(inputs[1])}) to "
                    f"this branch's share of the input ({_show(first)}): the shapes differ",
                    help="a carried branch must give its share's channels and H×W",
                )
            raise ShapeError(
                "E0409",
                f"`merge = {self.merge_word}` of branches with different shapes: "
                + ", ".join(_show(b) for b in inputs),
                help="every branch must give the same channels and H×W",
            )
        return first

    def label(self, attrs, axes: int = 2) -> str:
        return self.symbol

    symbol = "?"
    function = ""

    def forward(self, attrs, shape) -> FunctionCall:
        return FunctionCall(self.function, "fold")


class AddOp(MergeOp):
    """`residual { ... }`'s add (its shortcut planned by shapes.plan_shortcut, which may insert a
    projection) and `branches(merge = sum)`; the residual add may write into its main path (`+=`)."""

    symbol = "+"
    function = "operator.add"

    def forward(self, attrs, shape) -> FunctionCall:
        return FunctionCall(self.function, "fold", inplace="operator.iadd")


class ProductOp(MergeOp):
    symbol = "×"
    function = "operator.mul"


class MaximumOp(MergeOp):
    symbol = "max"
    function = "torch.maximum"


class ConcatOp(OpKind):
    """Channels side by side: DenseNet's [input, new features], or the branches in order."""

    def merge_shape(self, attrs, inputs, weights=None, residual=False) -> Shape:
        first = inputs[0]
        if residual:
            main, shortcut = inputs
            if len(main) != len(shortcut) or main[1:] != shortcut[1:]:
                raise ShapeError(
                    "E0404",
                    f"concat of {_show(main)} (main path) with {_show(shortcut)} (input): spatial sizes differ",
                    help="a dense block must keep H×W: use stride 1 inside it",
                )
        elif any(len(b) != len(first) or b[1:] != first[1:] for b in inputs):
            raise ShapeError(
                "E0404",
                f"concat of branches {', '.join(_show(b) for b in inputs)}: spatial sizes differ",
                help="every branch must give the same H×W",
            )
        return (sum(b[0] for b in inputs),) + first[1:]

    def operands(self, inputs, residual):
        return [inputs[1], inputs[0]] if residual else inputs  # DenseNet order: the block's input first

    def label(self, attrs, axes: int = 2) -> str:
        return "concat"

    def forward(self, attrs, shape) -> FunctionCall:
        return FunctionCall("torch.cat", "list", (1,))


class SelectOp(MergeOp):
    """SKNet's and ResNeSt's attention across branches: a softmax over the branches (a sigmoid for
    one) of `attend`'s n·C logits weighs them (layers.select_branches)."""

    symbol = "select"

    def merge_shape(self, attrs, inputs, weights=None, residual=False) -> Shape:
        first = super().merge_shape(attrs, inputs)
        n, c, groups = len(inputs), first[0], attrs["groups"]
        assert weights is not None
        if (
            weights[0] != n * c
            or len(weights) != len(first)
            or (len(first) > 1 and weights[1:] not in ((1,) * (len(first) - 1), first[1:]))
        ):
            want = _show((n * c,) + (1,) * (len(first) - 1))
            raise ShapeError(
                "E0409",
                f"`attend` gives {_show(weights)}, but selecting among {n} branches "
                f"of {_show(first)} needs {want} attention logits",
                help=f"end the attend body with a 1×1 conv to {n} × {c} = {n * c} channels",
            )
        if c % groups:
            raise ShapeError("E0409", f"`groups = {groups}` does not divide the branches' {c} channels")
        return first

    def forward(self, attrs, shape) -> FunctionCall:
        return FunctionCall("layers.select_branches", "list", kwargs=(("groups", attrs["groups"]),), weights_first=True)


class _MergeFlags(TypedDict):
    internal: bool
    merge: bool
    fill: str


MERGE: _MergeFlags = {"internal": True, "merge": True, "fill": "#ffffff"}
KINDS = (
    ConcatOp("concat", "its inputs side by side along the channels", merge_word="concat", **MERGE),
    AddOp(
        "add",
        "the sum of its inputs: a residual block's main path and shortcut, or branches",
        merge_word="sum",
        circle=True,
        planned=True,
        **MERGE,
    ),
    ProductOp("product", "the element-wise product of its inputs", merge_word="product", circle=True, **MERGE),
    SelectOp(
        "select",
        "the branches weighed by a softmax over `attend`'s logits",
        (),
        (Option("groups", default=1, minimum=1),),
        merge_word="select",
        **MERGE,
    ),
    MaximumOp("max", "the element-wise maximum of its inputs", merge_word="max", **MERGE),
)
