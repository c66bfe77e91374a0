"""The built-in ops: their arguments, defaults and the ranges values must lie in.

Shapes live in shapes.py and parameter / MAC counts in analysis.py; this
module only answers "what does `conv 64 k3 s2` mean?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import Span
from .values import EvalError, Value, as_bool, as_int, show, suggest, type_name

REQUIRED = object()
MAX_CHANNELS = 2**31 - 1  # torch sizes are int64, but no real layer is wider than this


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    aliases: tuple[str, ...] = ()
    default: object = REQUIRED
    type: str = "int"  # "int" | "float" | "bool"
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is refused (BN's eps: torch divides by sqrt(var + eps))
    flag: bool = False  # may be written bare, e.g. `bn zero_init`


@dataclass(frozen=True, slots=True)
class OpSpec:
    kind: str
    positional: tuple[str, ...]
    options: tuple[Option, ...]
    summary: str

    def option(self, word: str) -> Option | None:
        for opt in self.options:
            if word == opt.name or word in opt.aliases:
                return opt
        return None


def _channels(name: str = "out") -> Option:
    return Option(name, minimum=1, maximum=MAX_CHANNELS)


_KERNEL = Option("kernel", ("k",), minimum=1, maximum=4096)
_STRIDE = Option("stride", ("s",), default=None, minimum=1, maximum=4096)
_PADDING = Option("padding", ("p",), default=None, minimum=0, maximum=4096)
_CEIL = Option("ceil", default=False, type="bool", flag=True)

OPS: dict[str, OpSpec] = {spec.kind: spec for spec in (
    OpSpec("conv", ("out",), (
        _channels(), _KERNEL,
        Option("stride", ("s",), default=1, minimum=1, maximum=4096),
        _PADDING,
        Option("dilation", ("d",), default=1, minimum=1, maximum=4096),
        Option("groups", ("g",), default=1, minimum=1, maximum=MAX_CHANNELS),
        Option("bias", default=False, type="bool", flag=True),
    ), "2-d convolution; padding defaults to kernel//2 * dilation"),
    OpSpec("bn", (), (
        Option("zero_init", default=False, type="bool", flag=True),
        Option("eps", default=1e-5, type="float", minimum=0.0, maximum=1.0, above_minimum=True),
        Option("momentum", default=0.1, type="float", minimum=0.0, maximum=1.0),
    ), "batch normalisation; `zero_init` starts its scale at 0"),
    OpSpec("relu", (), (), "ReLU"),
    OpSpec("gelu", (), (), "GELU"),
    OpSpec("silu", (), (), "SiLU (swish)"),
    OpSpec("sigmoid", (), (), "logistic sigmoid"),
    OpSpec("maxpool", (), (_KERNEL, _STRIDE, _PADDING, _CEIL),
           "max pooling; stride defaults to the kernel, padding to (kernel-1)//2"),
    OpSpec("avgpool", (), (Option("kernel", ("k",), default=None, minimum=1, maximum=4096), _STRIDE, _PADDING, _CEIL),
           "average pooling; without a kernel, global average pooling to C×1×1"),
    OpSpec("flatten", (), (), "C×H×W feature map to a vector of C·H·W"),
    OpSpec("fc", ("out",), (_channels(), Option("bias", default=True, type="bool", flag=True)),
           "fully connected layer on a vector (or a C×1×1 map)"),
    OpSpec("dropout", ("p",), (Option("p", default=0.5, type="float", minimum=0.0, maximum=1.0),),
           "dropout with probability p"),
    OpSpec("se", ("ratio",), (
        Option("ratio", ("r",), default=16, minimum=1, maximum=MAX_CHANNELS),
        Option("hidden", default=None, minimum=1, maximum=MAX_CHANNELS),
    ), "squeeze-and-excitation: pool, 1×1 conv to C/ratio, ReLU, 1×1 conv to C, sigmoid gate"),
    OpSpec("identity", (), (), "passes its input through"),
)}


@dataclass(frozen=True, slots=True)
class BoundArg:
    """One evaluated argument: `bare` is the identifier when written as a bare name."""

    name: str | None
    value: Value | None
    span: Span
    bare: str | None = None


def bind(spec: OpSpec, args: list[BoundArg], call_span: Span) -> dict[str, Value]:
    """Match evaluated arguments to an op's options; raise EvalError on misuse."""
    values: dict[str, Value] = {}
    where: dict[str, Span] = {}
    slots = list(spec.positional)
    for arg in args:
        if arg.name is None:
            flag = spec.option(arg.bare) if arg.bare else None
            if flag is not None and flag.flag:
                name, value = flag.name, True
            elif arg.value is None:  # an op's name where a value belongs
                raise EvalError("E0204", f"`{arg.bare}` is an op, not an argument of `{spec.kind}`", arg.span,
                                help=f"is a `->` missing before `{arg.bare}`?")
            elif slots:
                name, value = slots.pop(0), arg.value
            else:
                hint = None
                if spec.positional == ():
                    hint = f"`{spec.kind}` takes only named options: " + ", ".join(_option_list(spec))
                raise EvalError("E0204", f"too many positional arguments for `{spec.kind}`", arg.span, help=hint)
        else:
            option = spec.option(arg.name)
            if option is None:
                raise EvalError("E0203", f"`{spec.kind}` has no option `{arg.name}`", arg.span,
                                help=suggest(arg.name, [w for o in spec.options for w in (o.name, *o.aliases)])
                                or "options: " + ", ".join(_option_list(spec)))
            name, value = option.name, arg.value
        if name in values:
            raise EvalError("E0205", f"option `{name}` of `{spec.kind}` is given twice", arg.span,
                            notes=(f"first given at {where[name]}",))
        values[name] = _check(spec, spec.option(name), value, arg.span)
        where[name] = arg.span
    for option in spec.options:
        if option.name not in values:
            if option.default is REQUIRED:
                example = {"out": f"`{spec.kind} 64`", "kernel": "`k3` for a 3×3 kernel"}.get(option.name,
                                                                                             f"`{option.name}=...`")
                raise EvalError("E0204", f"`{spec.kind}` needs `{option.name}`", call_span, help=f"add {example}")
            values[option.name] = option.default
    return values


def _option_list(spec: OpSpec) -> list[str]:
    return [o.name + (f" ({'/'.join(o.aliases)})" if o.aliases else "") for o in spec.options]


def _check(spec: OpSpec, option: Option, value: Value, span: Span) -> Value:
    if option.type == "bool":
        return as_bool(value, span)
    if option.type == "int":
        value = as_int(value, span)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError("E0302", f"`{option.name}` of `{spec.kind}` must be a number, found {type_name(value)}", span)
    else:
        value = float(value)
    low, high = option.minimum, option.maximum
    # Written so that NaN fails too: every comparison with NaN is false, so `not (low <= value)` catches it.
    in_range = math.isfinite(value) and (low is None or (value > low if option.above_minimum else value >= low)) \
        and (high is None or value <= high)
    if not in_range:
        lowest = f"above {show(low)}" if option.above_minimum else f"at least {show(low)}"
        bounds = lowest if high is None else (f"above {show(low)} and at most {show(high)}" if option.above_minimum
                                              else f"between {show(low)} and {high:,}")
        raise EvalError("E0303", f"`{option.name}` of `{spec.kind}` is {show(value)}; it must be {bounds}", span)
    return value
