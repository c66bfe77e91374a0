"""Ops as PyTorch constructor calls in the ejected source, their arguments as Python expressions.

`op_module` mirrors the elaborator (resdsl/elaborate.py: `op_attributes`) and
`module_call` (module.py), but on `Sym`s, so that a block class reads
`nn.Conv2d(in_channels, width, kernel_size=3, stride=stride, padding=1, bias=False)`
and its defaults (conv padding `kernel // 2 * dilation`, pool stride = kernel,
pool padding `(kernel - 1) // 2`) are written as the expressions they are.
`shortcut_call` writes the shortcut modules the shape checker inserted, which
are concrete: the network class builds them for the blocks that need them.
"""

from __future__ import annotations

from typing import Callable

from .. import syntax as ast
from ..graph import OpGraph
from ..ops import OPS, Option
from .eject_expr import Call, Sym, Unsupported, binary, literal, same_value, translate
from .module import TORCH_DEFAULTS, module_call

_SIMPLE = {"gelu": "nn.GELU", "sigmoid": "nn.Sigmoid", "identity": "nn.Identity", "flatten": "nn.Flatten"}


def bind_op(call: ast.Call, env: dict[str, Sym], symbol: Callable[[str], str]) -> dict[str, Sym | None]:
    """The op's options as Syms, as ops.bind matches them (positional, keyword, alias, bare flag)."""
    spec = OPS[call.name]
    values: dict[str, Sym | None] = {}
    slots = list(spec.positional)
    for arg in call.args:
        expr = arg.value
        if arg.name is None and isinstance(expr, ast.Name) and expr.id not in env:
            flag = spec.option(expr.id)
            if flag is not None and flag.flag:  # `bn zero_init`
                values[flag.name] = literal(True)
                continue
        option = spec.option(slots.pop(0) if arg.name is None else arg.name)
        assert option is not None, "the spec was checked"
        values[option.name] = _coerce(option, translate(expr, env, symbol))
    for option in spec.options:
        values.setdefault(option.name, None if option.default is None else literal(option.default))
    return values


def _coerce(option: Option, value: Sym) -> Sym:
    """`16.0` where a whole number is needed is 16 for the elaborator; int() says so in Python."""
    if option.type == "int" and isinstance(value.sample, float):
        return literal(int(value.sample)) if value.const else Sym(f"int({value.text})", sample=int(value.sample))
    return value


def _keyword(name: str, value: Sym | None, default: object) -> list[tuple[str, str]]:
    """`name=value`, left out where it is PyTorch's own default."""
    if value is None or value.const and same_value(value.sample, default):
        return []
    return [(name, value.arg())]


def op_module(kind: str, a: dict[str, Sym | None], channels: Sym | None, rank: int,
              inplace: bool) -> tuple[Call, Sym | None, int]:
    """(constructor call, output channels, output rank) of one op on a tensor of `channels` and `rank`
    (3: C×H×W, 1: a vector). Output channels are None where they depend on H×W (flatten)."""
    def need(value: Sym | None) -> str:
        if value is None:
            raise Unsupported(f"`{kind}` after `flatten` inside a block: its width depends on the input's H×W")
        return value.arg()

    if kind == "conv":
        padding = a["padding"] or binary("*", binary("//", a["kernel"], literal(2)), a["dilation"])
        args = (need(channels), a["out"].arg(), ("kernel_size", a["kernel"].arg()),
                *_keyword("stride", a["stride"], 1), *_keyword("padding", padding, 0),
                *_keyword("dilation", a["dilation"], 1), *_keyword("groups", a["groups"], 1),
                *_keyword("bias", a["bias"], True))
        return Call("nn.Conv2d", args), a["out"], 3
    if kind == "bn":
        args = (need(channels), *_keyword("eps", a["eps"], 1e-5), *_keyword("momentum", a["momentum"], 0.1))
        return Call("nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d", args), channels, rank
    if kind == "fc":  # on a vector, or on a pooled C×1×1 map that the forward flattens
        return Call("nn.Linear", (need(channels), a["out"].arg(), *_keyword("bias", a["bias"], True))), a["out"], 1
    if kind in ("maxpool", "avgpool") and a["kernel"] is not None:
        kernel = a["kernel"]
        stride = a["stride"] or kernel
        padding = a["padding"] or binary("//", binary("-", kernel, literal(1)), literal(2))
        # PyTorch's pools default their stride to the kernel, not to 1.
        args = (("kernel_size", kernel.arg()), *([] if stride.text == kernel.text else [("stride", stride.arg())]),
                *_keyword("padding", padding, 0), *_keyword("ceil_mode", a["ceil"], False))
        return Call("nn.MaxPool2d" if kind == "maxpool" else "nn.AvgPool2d", args), channels, rank
    if kind == "avgpool":
        return Call("nn.AdaptiveAvgPool2d", ("1",)), channels, rank
    if kind == "se":
        hidden = a["hidden"]
        if hidden is None:
            if channels is None:
                need(None)
            hidden = binary("/", channels, a["ratio"])
        return Call("SqueezeExcite", (need(channels), hidden.arg())), channels, rank
    if kind in ("relu", "silu"):
        return Call("nn.ReLU" if kind == "relu" else "nn.SiLU", (("inplace", "True"),) if inplace else ()), \
            channels, rank
    if kind == "dropout":
        return Call("nn.Dropout", (a["p"].arg(),)), channels, rank
    if kind == "flatten":
        return Call("nn.Flatten", ()), channels if rank == 1 else None, 1
    if kind in _SIMPLE:
        return Call(_SIMPLE[kind], ()), channels, rank
    raise Unsupported(f"the op `{kind}`")


# ---- the shortcuts the shape checker inserted --------------------------------------------

def shortcut_paths(ops: OpGraph) -> dict[str, list[str]]:
    """Inserted shortcut path (`layer2.0.downsample`) -> its nodes in order."""
    found: dict[str, list[str]] = {}
    for name, data in ops.nodes.items():
        if data.get("inserted"):
            found.setdefault(ops.nodes[data["merge"]]["shortcut_name"], []).append(name)
    return found


def shortcut_call(ops: OpGraph, path: str, nodes: list[str]) -> Call:
    """`ZeroPadShortcut(2, 16)`, or an nn.Sequential of the projection; a slot the graph leaves
    empty (ResNet-D at stride 1: no pool in slot 0, as timm) holds an nn.Identity."""
    calls = [_concrete(*module_call(ops.nodes[n]["kind"], ops.nodes[n]["attrs"], ops.nodes[n]["in_shape"], False))
             for n in nodes]
    if nodes == [path]:
        return calls[0]
    slots = [int(n.rpartition(".")[2]) for n in nodes]
    if slots != list(range(slots[0], slots[-1] + 1)):  # pragma: no cover - _insert_shortcut numbers them so
        raise Unsupported(f"the shortcut {path} has gaps between its modules")
    return Call("nn.Sequential", tuple([Call("nn.Identity", ())] * slots[0] + calls))


_POSITIONAL = ("in_channels", "out_channels", "num_features", "in_features", "out_features", "output_size")


def _concrete(constructor: str, args: list[tuple[str, object]]) -> Call:
    values = dict(args)
    out: list = []
    for name, value in args:
        if constructor == "ZeroPadShortcut" or name in _POSITIONAL:
            out.append(repr(value))
        elif name == "stride" and "kernel_size" in values:  # pools: PyTorch's default stride is the kernel
            if value != values["kernel_size"]:
                out.append((name, repr(value)))
        elif not (name in TORCH_DEFAULTS and same_value(value, TORCH_DEFAULTS[name])):
            out.append((name, repr(value)))
    return Call(constructor, tuple(out))

