"""Ops as PyTorch constructor calls in the ejected source, their arguments as Python expressions.

`op_module` asks the op's definition (resdsl/ops/) for its module, as
`module_call` (module.py) does, but on `Sym`s, so that a block class reads
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
from ..ops import ALL, OPS, ModuleCall, Option
from .eject_expr import Call, Sym, Unsupported, literal, same_value, translate
from .module import TORCH_DEFAULTS, module_call


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


def op_module(kind: str, a: dict[str, Sym | None], channels: Sym | None, rank: int,
              inplace: bool) -> tuple[Call, Sym | None, int]:
    """(constructor call, output channels, output rank) of one op on a tensor of `channels` and `rank`
    (3: C×H×W, 1: a vector): the op definition's own module description, worked out on Syms.
    Output channels are None where they depend on H×W (flatten)."""
    op = ALL[kind]
    if channels is None and op.reads_channels:
        raise Unsupported(f"`{kind}` after `flatten` inside a block: its width depends on the input's H×W")
    attrs = op.complete(dict(a))
    return render_call(op.module(attrs, channels, rank, inplace)), op.out_channels(attrs, channels, rank), \
        op.out_rank(rank)


def render_call(call: ModuleCall) -> Call:
    """A module description as source: the first `positional` arguments bare, the rest as keywords,
    leaving out those equal to PyTorch's own defaults (a pool's stride defaults to its kernel)."""
    values = dict(call.args)
    defaults = {**TORCH_DEFAULTS, **dict(call.defaults)}
    out: list = []
    for i, (name, value) in enumerate(call.args):
        text = value.arg() if isinstance(value, Sym) else repr(value)
        if i < call.positional:
            out.append(text)
        elif name == "stride" and call.constructor in POOLS:
            if not _same(value, values["kernel_size"]):
                out.append((name, text))
        elif not (name in defaults and _same(value, defaults[name])):
            out.append((name, text))
    return Call(call.constructor, tuple(out))


POOLS = ("nn.MaxPool2d", "nn.AvgPool2d")


def _same(value: object, other: object) -> bool:
    """Is an argument (a number or a Sym) the same as `other` for every use of the class?"""
    if isinstance(value, Sym):
        if isinstance(other, Sym):
            return value.text == other.text
        return value.const and same_value(value.sample, other)
    if isinstance(other, Sym):
        return other.const and same_value(value, other.sample)
    return same_value(value, other)


# ---- the shortcuts the shape checker inserted --------------------------------------------

def shortcut_paths(ops: OpGraph) -> dict[str, list[str]]:
    """Inserted shortcut path (`layer2.0.downsample`) -> its nodes in order."""
    found: dict[str, list[str]] = {}
    for name, data in ops.nodes.items():
        if data.inserted:
            found.setdefault(ops.nodes[data.merge].shortcut_name, []).append(name)
    return found


def shortcut_call(ops: OpGraph, path: str, nodes: list[str]) -> Call:
    """`ZeroPadShortcut(2, 16)`, or an nn.Sequential of the projection; a slot the graph leaves
    empty (ResNet-D at stride 1: no pool in slot 0, as timm) holds an nn.Identity."""
    calls = [render_call(module_call(ops.nodes[n].kind, ops.nodes[n].attrs, ops.nodes[n].in_shape, False))
             for n in nodes]
    if nodes == [path]:
        return calls[0]
    slots = [int(n.rpartition(".")[2]) for n in nodes]
    if slots != list(range(slots[0], slots[-1] + 1)):  # pragma: no cover - _insert_shortcut numbers them so
        raise Unsupported(f"the shortcut {path} has gaps between its modules")
    return Call("nn.Sequential", tuple([Call("nn.Identity", ())] * slots[0] + calls))


def helpers_in(call: Call) -> set[str]:
    """The classes of backend/layers.py a call (and the calls inside it) constructs."""
    found = set() if call.func.startswith("nn.") else {call.func}
    for arg in call.args:
        value = arg[1] if isinstance(arg, tuple) else arg
        if isinstance(value, Call):
            found |= helpers_in(value)
    return found
