"""What a network returns: one tensor, or several named points (`output` statement, docs/language.md §21).

A network without an `output` statement returns the tensor its body ends with, as before. With
`output a, b, c` it returns a list of those points' tensors (timm's `features_only`), and with
`output 0: a, aux: b` an ordered dict keyed as written (torchvision's `IntermediateLayerGetter`);
`output a` alone returns one tensor. Each output's shape, channels and stride (the input's size
over the output's, per spatial axis: timm's `reduction`) are known statically.

This module holds the data and its presentation; it imports nothing above graph and errors, so the
checked `Network` (network.py) can carry it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import Span
from .graph import Shape, show_shape


@dataclass(frozen=True)
class OutputPoint:
    """An `output` entry as elaborated: its key (None in a list), the point as written, its node."""

    key: str | None
    point: str  # `layer1`, `aux_classifier`, `stages.3` (indices evaluated)
    node: str  # the node whose tensor it is: the point itself, or the last op of the container it names
    span: Span  # the entry in the `output` statement


@dataclass(frozen=True)
class Output:
    """One output of a checked network."""

    key: str | None
    point: str
    node: str
    shape: Shape
    stride: tuple[int | float, ...]  # input size / output size per spatial axis (() for a vector)
    span: Span

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def name(self) -> str:
        """How messages and tables name it: its key, else its point."""
        return self.key if self.key is not None else self.point

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "point": self.point,
            "node": self.node,
            "shape": list(self.shape),
            "channels": self.channels,
            "stride": list(self.stride),
        }


def form(outputs: tuple[Output, ...] | tuple[OutputPoint, ...]) -> str:
    """What the compiled module returns: "tensor" (one output without a key, or no `output`
    statement), "list" (several without keys) or "dict" (keyed: an OrderedDict, in order)."""
    if any(o.key is not None for o in outputs):
        return "dict"
    return "list" if len(outputs) > 1 else "tensor"


def stride(input_shape: Shape, shape: Shape) -> tuple[int | float, ...]:
    """The input's size over the output's per spatial axis (shapes are (C, *spatial)): a whole
    number where it divides (4 for ResNet's layer1 at 224), else the exact ratio as a float."""
    if len(shape) != len(input_shape) or len(shape) < 2:
        return ()  # a vector, or a map of another rank than the input
    # (integer arithmetic, not fractions.Fraction: `check` imports nothing it can do without)
    return tuple(i // o if i % o == 0 else round(i / o, 6) for i, o in zip(input_shape[1:], shape[1:], strict=True))


def make_outputs(
    points: tuple[OutputPoint, ...], shapes: dict[str, Shape | None], input_shape: Shape
) -> tuple[Output, ...]:
    """The outputs with their shapes and strides, once shapes are inferred."""
    found = []
    for p in points:
        shape = shapes[p.node]
        assert shape is not None  # shape inference succeeded for every node, or the pipeline stopped
        found.append(Output(p.key, p.point, p.node, shape, stride(input_shape, shape), p.span))
    return tuple(found)


def show_outputs(outputs: tuple[Output, ...], fallback: Shape, show: Callable[[Shape], str] = show_shape) -> str:
    """`1000`, `[256x56x56, 512x28x28]` (a list) or `{0: 256x56x56, aux: 21x64x64}` (a dict)."""
    kind = form(outputs)
    if kind == "tensor" or not outputs:
        return show(outputs[0].shape if outputs else fallback)
    if kind == "list":
        return "[" + ", ".join(show(o.shape) for o in outputs) + "]"
    return "{" + ", ".join(f"{o.key}: {show(o.shape)}" for o in outputs) + "}"


def show_stride(value: tuple[int | float, ...]) -> str:
    """`4` when every axis agrees, `4x2` when not, `-` for a vector."""
    if not value:
        return "-"
    return str(value[0]) if len(set(value)) == 1 else "x".join(str(v) for v in value)
