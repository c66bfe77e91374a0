"""What an op kind is: one definition holds everything resdsl knows about it.

An `OpKind` gives an op's arguments (with ranges and defaults), the defaults
that depend on other arguments, its output shape, parameter and MAC counts,
how much it subsamples, its label in drawings, and the PyTorch module it
compiles to. Every stage of the pipeline asks the op's definition rather than
testing `kind == "conv"`, so adding an op means adding one file to this
package (see conv.py for the pattern; `OPS` finds it by itself).

The module description (`module`) is plain data, a constructor name and its
arguments, so this package never imports torch: the backend builds the module
from it, and the ejector writes it as source. It is written with ordinary
arithmetic on the arguments, which are numbers when compiling and symbolic
expressions (`width * 4`) when ejecting a block class, so one description
serves both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, cast

from ..errors import EvalError, ShapeError, Span
from ..values import Symbol, Value, as_bool, as_int, show, suggest, type_name

Shape = tuple[int, ...]
REQUIRED = object()
MAX_CHANNELS = 2**31 - 1  # torch sizes are int64, but no real layer is wider than this


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    aliases: tuple[str, ...] = ()
    default: object = REQUIRED
    type: str = "int"  # "int" | "float" | "bool" | "word" (one of `choices`, kept as its name)
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is refused (BN's eps: torch divides by sqrt(var + eps))
    flag: bool = False  # may be written bare, e.g. `bn zero_init`
    per_axis: bool = False  # one number, or one per spatial axis: `k=(3, 7, 7)` (an int option)
    choices: tuple[str, ...] = ()  # the words a "word" option takes (`upsample bilinear`)


def channels_option(name: str = "out") -> Option:
    return Option(name, minimum=1, maximum=MAX_CHANNELS)


KERNEL = Option("kernel", ("k",), minimum=1, maximum=4096, per_axis=True)
STRIDE = Option("stride", ("s",), default=None, minimum=1, maximum=4096, per_axis=True)
PADDING = Option("padding", ("p",), default=None, minimum=0, maximum=4096, per_axis=True)
CEIL = Option("ceil", default=False, type="bool", flag=True)


@dataclass(frozen=True, slots=True)
class Cost:
    params: int
    macs: int


NO_COST = Cost(0, 0)


@dataclass(frozen=True, slots=True)
class ModuleCall:
    """A PyTorch module as data: `nn.Conv2d(in, out, kernel_size=3, ...)`.

    `constructor` is `nn.NAME` (torch.nn) or the name of a class in resdsl/backend/layers.py;
    the first `positional` arguments are written without their names in ejected source, and
    arguments equal to `defaults` (or to torch.nn's usual defaults) are left out of it.
    Values are numbers, or symbolic expressions when the ejector asks.
    """

    constructor: str
    args: tuple[tuple[str, Any], ...] = ()
    positional: int = 0
    defaults: tuple[tuple[str, Any], ...] = ()  # the constructor's own defaults, left out of ejected source


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A function of the forward as data, for the ops that are no module (the merges, `chunk`).

    `function` is `operator.NAME`, `torch.NAME` or `layers.NAME` (resdsl/backend/layers.py). How it
    takes the op's inputs (see `OpKind.operands` for their order) is `inputs`:
      "fold": a binary function applied left to right, `(a + b) + c`, the last call named after the op
      "list": one call on the list of inputs, `torch.cat([a, b], 1)`
      "one":  one call on the only input, `torch.narrow(x, 1, start, size)`
    then `args` and `kwargs`. `weights_first` puts `select`'s attention logits before the list;
    `inplace` is the function a residual merge calls where it may write into its main path
    (`operator.iadd`: `out += identity`, as torchvision).
    """

    function: str
    inputs: str = "fold"
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    weights_first: bool = False
    inplace: str | None = None


@dataclass(frozen=True, slots=True)
class ParameterCall:
    """A parameter as data, for an op that is a bare parameter of its enclosing container rather than a
    module (layer scale: torchvision's `features.1.0.layer_scale`, timm's `stages.0.blocks.0.gamma`).

    The parameter sits at the op's own path, `torch.full(shape, fill)` to start with; the forward
    calls `function` (`layers.NAME`) on the op's input and the parameter. `shape` holds numbers, or
    symbolic expressions when the ejector asks.
    """

    shape: tuple[Any, ...]
    fill: Any  # a number, or the ejector's expression
    function: str


@dataclass(frozen=True)
class OpKind:
    """One kind of op. Subclasses override the rules that differ from "keeps its input's shape,
    has no parameters, costs nothing"."""

    name: str
    summary: str
    positional: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()
    feature_map: bool = False  # needs a C×H×W input (E0406 on a vector)
    reads_channels: bool = False  # its module's constructor needs the input's channels
    inplace: bool = False  # may overwrite its input (ReLU(inplace=True)) where that is safe
    aliasing: bool = False  # its output may be its input or a view of it (Identity, Flatten)
    overwritable: bool = False  # its output is new and autograd keeps no reference to it (conv, BN, SE's
    #                               product), so a residual add may write into it: `out += identity`
    internal: bool = False  # inserted by the shape checker only; a spec cannot call it
    numbered: bool = False  # named `conv1`, `conv2` within a scope (torchvision); else `relu`, `relu2`
    norm: bool = False  # a norm a `norm` statement may choose for `bn` (values.NORMS lists them)
    fill: str = "#f4f4f4"  # its box's colour in drawings
    # merges (resdsl/ops/merge.py): functions of several inputs, drawn as a symbol
    merge: bool = False  # a merge of a residual block (main path and shortcut) or of `branches`
    merge_word: str | None = None  # what `branches(merge = ...)` calls it (None: `branches` cannot ask for it)
    circle: bool = False  # drawn as a small circle around its label (`+`), not a box
    planned: bool = False  # as a residual merge, its shortcut is planned (shapes.plan_shortcut: `add`)

    def option(self, word: str) -> Option | None:
        for opt in self.options:
            if word == opt.name or word in opt.aliases:
                return opt
        return None

    def option_words(self) -> list[str]:
        """Every name an option answers to (`kernel` and `k`, ...)."""
        return [word for opt in self.options for word in (opt.name, *opt.aliases)]

    def make(self, **given: Any) -> dict[str, Any]:
        """Complete arguments for an op the shape checker inserts (a projection's conv and BN): the
        given values over the defaults, completed as a call in a spec would be."""
        unknown = set(given) - {o.name for o in self.options}
        assert not unknown, f"`{self.name}` has no option {unknown}"
        attrs = {o.name: given.get(o.name, o.default) for o in self.options}
        assert REQUIRED not in attrs.values(), f"`{self.name}` needs {[k for k, v in attrs.items() if v is REQUIRED]}"
        return self.complete(attrs)

    # ---- arguments -------------------------------------------------------------------------
    def complete(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Fill the defaults that depend on other arguments (conv padding = kernel // 2 * dilation).

        Runs on numbers and, for ejected source, on symbolic values: plain arithmetic only."""
        return attrs

    def validate(self, attrs: dict[str, Value], span: Span) -> None:
        """Refuse combinations of arguments that each lie in range but not together (EvalError)."""

    def advice(self, attrs: dict[str, Value], given: frozenset[str]) -> tuple[str, str, str] | None:
        """A warning for valid arguments that probably do not mean what was meant: (code, message,
        help), or None. `given` holds the options the spec wrote; `attrs` are completed."""
        return None

    # ---- shapes and costs ------------------------------------------------------------------
    def shape(self, attrs: dict[str, Value], x: Shape) -> Shape:
        """The output shape for input `x` (ShapeError if impossible)."""
        return x

    def cost(self, attrs: dict[str, Value], x: Shape, y: Shape) -> Cost:
        """Parameters and multiply-accumulates (torchvision's convention: conv and fc only)."""
        return NO_COST

    def stride(self, attrs: dict[str, Value], x: Shape | None) -> int:
        """How much the op subsamples H and W (for a shortcut's stride)."""
        return 1

    # ---- presentation and compilation ------------------------------------------------------
    def label(self, attrs: dict[str, Value], axes: int = 2) -> str:
        """A short description for drawings: `conv 3×3, 64, /2` (`axes`: the input's spatial axes)."""
        return self.name

    def module(self, attrs: dict[str, Any], channels: Any, rank: int, inplace: bool) -> ModuleCall:
        """The PyTorch module for an input of `channels` and `rank` (3: C×H×W, 1: a vector)."""
        raise NotImplementedError(self.name)  # pragma: no cover - every kind defines its module

    def parameter(self, attrs: dict[str, Any], channels: Any, rank: int) -> ParameterCall | None:
        """The bare parameter the op is, for the ops that are no module (`layer_scale`); None: a module."""
        return None

    def out_channels(self, attrs: dict[str, Any], channels: Any, rank: int) -> Any:
        """Output channels as the ejector tracks them (None where they depend on H×W)."""
        return channels

    def out_rank(self, rank: int) -> int:
        return rank

    # ---- the ops that are functions in the forward, not modules (merges, `chunk`) -------------
    def forward(self, attrs: dict[str, Any], shape: Shape) -> FunctionCall | None:
        """The function the forward calls for this op, given its output `shape`; None: a module."""
        return None

    def merge_shape(
        self, attrs: dict[str, Value], inputs: list[Shape], weights: Shape | None = None, residual: bool = False
    ) -> Shape:
        """A merge's output shape from its inputs' (ShapeError if they do not fit): the branches in
        order, or for a `residual` / `dense` merge [main path, shortcut]; `weights`: `select`'s logits."""
        raise NotImplementedError(self.name)  # pragma: no cover - every merge defines its rule

    def merge_cost(self, attrs: dict[str, Value], inputs: list[Shape], y: Shape) -> Cost:
        """A merge's parameters and MACs (torchvision's convention counts neither for element-wise ops)."""
        return NO_COST

    def operands(self, inputs: list[Any], residual: bool) -> list[Any]:
        """The order the forward passes a merge's inputs in ([main, shortcut] for a residual merge)."""
        return inputs


# ---- helpers for the definitions ---------------------------------------------------------------


def show_shape(shape: Shape | None) -> str:
    """`64x56x56` (`?` when unknown), as messages write shapes."""
    return "?" if shape is None else "x".join(str(d) for d in shape)


# A shape is (C, *spatial): (C,) a vector, (C, L) a sequence, (C, H, W) an image, (C, D, H, W) a volume.
SPATIAL_NAMES = {1: "C×L", 2: "C×H×W", 3: "C×D×H×W"}


def feature_map(kind: str, shape: Shape) -> Shape:
    """`shape` if it has spatial axes (1, 2 or 3 of them), else E0406."""
    if len(shape) < 2:
        raise ShapeError(
            "E0406",
            f"`{kind}` needs a feature map (C×L, C×H×W or C×D×H×W), but its input is a vector of {shape[0]}",
            help="feature-map ops (conv, bn, pools, se) come before `flatten` / `fc`",
        )
    return shape


def nd(constructor: str, rank: int) -> str:
    """The torch class for a tensor of `rank` (len(shape)): `nd("nn.Conv", 3)` is `nn.Conv2d`;
    a vector (rank 1) takes the 1-d class, as BatchNorm1d normalises (N, C)."""
    return f"{constructor}{max(rank - 1, 1)}d"


def per_axis(value: Any, axes: int, kind: str = "", option: str = "") -> tuple:
    """One value per spatial axis: a number is repeated, a list must have one item per axis (E0411)."""
    if not isinstance(value, tuple):
        return (value,) * axes
    if len(value) != axes:
        raise ShapeError(
            "E0411",
            f"`{option}` of `{kind}` gives {len(value)} sizes {show(value)}, but its input has {axes} spatial "
            f"ax{'is' if axes == 1 else 'es'}",
            help=f"give one number for every axis, or {axes} numbers, one per axis",
        )
    return value


def axis_text(value: Any, sep: str = "×") -> str:
    """A per-axis value as labels show it: `3` for 3, `1×3×3` for (1, 3, 3)."""
    return sep.join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def window_text(value: Any, axes: int) -> str:
    """A kernel as labels show it for `axes` spatial axes: `3×3` for 3 on an image, `3` on a sequence."""
    return axis_text(value) if isinstance(value, tuple) else "×".join([str(value)] * max(axes, 1))


def uniform(values: tuple) -> Any:
    """A per-axis tuple as one number when every axis has the same (the module is then written as
    torchvision writes it, `stride=2`), else the tuple."""
    return values[0] if len(set(values)) == 1 else values


def elementwise(fn, *values: Any) -> Any:
    """`fn` on numbers, or axis by axis when any value is a per-axis tuple (`complete`'s defaults:
    padding = kernel // 2 * dilation for `k=(1, 3, 3)`). bind() made the tuples' lengths agree."""
    tuples = [v for v in values if isinstance(v, tuple)]
    if not tuples:
        return fn(*values)
    n = len(tuples[0])
    return tuple(fn(*(v[i] if isinstance(v, tuple) else v for v in values)) for i in range(n))


def volume(sizes) -> int:
    """The product of sizes (a kernel's weights per filter, an output's positions)."""
    total = 1
    for size in sizes:
        total *= size
    return total


def window(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    """PyTorch's pooling_output_shape (floor division rounds toward -inf, as its div_rtn)."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def spatial(kind: str, shape: Shape, attrs: dict[str, Value]) -> Shape:
    """C×(spatial sizes) after a window of `kernel`, `stride`, `padding` (and `dilation`, `ceil` where the
    op has them), each one number or one per axis."""
    c, *sizes = feature_map(kind, shape)
    n = len(sizes)
    k = per_axis(attrs["kernel"], n, kind, "kernel")
    s = per_axis(attrs["stride"], n, kind, "stride")
    p = per_axis(attrs["padding"], n, kind, "padding")
    d = per_axis(attrs.get("dilation", 1), n, kind, "dilation")
    ceil = attrs.get("ceil", False)
    assert isinstance(ceil, bool)  # `bind` checked it as a boolean option
    out = tuple(window(*axis, ceil=ceil) for axis in zip(sizes, k, s, p, d))
    if min(out) < 1:
        dilation = attrs.get("dilation", 1)
        raise ShapeError(
            "E0403",
            f"`{kind}` with kernel {axis_text(attrs['kernel'])}, stride {axis_text(attrs['stride'])}, "
            f"padding {axis_text(attrs['padding'])}"
            f"{f', dilation {axis_text(dilation)}' if dilation != 1 else ''} turns {show_shape(tuple(sizes))} "
            f"into {show_shape(tuple(max(o, 0) for o in out))}",
            help="the input is too small here: use a larger input, a smaller kernel or fewer strides",
        )
    return (c, *out)


def known(value: Any) -> Any:
    """The number an argument stands for: itself, or a constant Sym's value (None if symbolic)."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return value.value if getattr(value, "const", False) else None


def exact_div(a: Any, b: Any) -> Any:
    """a / b where the rules guarantee it divides: `//` on numbers, the language's exact `/` on symbols."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return a / b


# ---- binding a call's arguments ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoundArg:
    """One evaluated argument: `bare` is the identifier when written as a bare name."""

    name: str | None
    value: Value | None
    span: Span
    bare: str | None = None


def bind(spec: OpKind, args: list[BoundArg], call_span: Span) -> dict[str, Value]:
    """Match evaluated arguments to an op's options, complete and validate them; raise EvalError on misuse."""
    values: dict[str, Any] = {}  # Values, and None for the defaults `complete` works out
    where: dict[str, Span] = {}
    slots = list(spec.positional)
    for arg in args:
        value: Value | None
        if arg.name is None:
            flag = spec.option(arg.bare) if arg.bare else None
            if flag is not None and flag.flag:
                name, value = flag.name, True
            elif arg.value is None:  # an op's name where a value belongs
                raise EvalError(
                    "E0204",
                    f"`{arg.bare}` is an op, not an argument of `{spec.name}`",
                    arg.span,
                    help=f"is a `->` missing before `{arg.bare}`?",
                )
            elif slots:
                name, value = slots.pop(0), arg.value
            else:
                hint = None
                if spec.positional == ():
                    hint = f"`{spec.name}` takes only named options: " + ", ".join(_option_list(spec))
                raise EvalError("E0204", f"too many positional arguments for `{spec.name}`", arg.span, help=hint)
        else:
            option = spec.option(arg.name)
            if option is None:
                raise no_option(spec, arg.name, arg.span)
            name, value = option.name, arg.value
        if name in values:
            raise EvalError(
                "E0205",
                f"option `{name}` of `{spec.name}` is given twice",
                arg.span,
                notes=(f"first given at {where[name]}",),
            )
        option = spec.option(name)
        assert option is not None  # `name` is an option's own name: a flag's, a positional slot's or a named one's
        values[name] = _check(spec, option, value, arg.span)
        where[name] = arg.span
    for option in spec.options:
        if option.name not in values:
            if option.default is REQUIRED:
                example = {"out": f"`{spec.name} 64`", "kernel": "`k3` for a 3×3 kernel"}.get(
                    option.name, f"`{option.name}=...`"
                )
                raise EvalError("E0204", f"`{spec.name}` needs `{option.name}`", call_span, help=f"add {example}")
            values[option.name] = option.default
    lengths = {name: len(v) for name, v in values.items() if isinstance(v, tuple)}  # only per-axis options take lists
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"`{name}` {n}" for name, n in lengths.items())
        raise EvalError(
            "E0411",
            f"the per-axis options of `{spec.name}` give different numbers of axes: {shown}",
            where[max(lengths, key=lambda name: where[name].column)],
            help="give every per-axis option the same number of sizes, or one number",
        )
    spec.validate(values, call_span)
    return spec.complete(values)


def match_options(spec: OpKind, args, is_parameter) -> dict[str, Any]:
    """Which expression of a valid call gives each option it writes (`True` for a bare flag): the
    matching `bind` does, on the call's syntax (`args`: syntax.Arg), for the ejector's expressions.
    `is_parameter(word)` tells a parameter's name from a bare flag (`bn zero_init`)."""
    slots, found = list(spec.positional), {}
    for arg in args:
        expr = arg.value
        word = getattr(expr, "id", None) if type(expr).__name__ == "Name" else None
        flag = spec.option(word) if arg.name is None and word is not None and not is_parameter(word) else None
        if flag is not None and flag.flag:
            found[flag.name] = True
        elif arg.name is None:
            found[slots.pop(0)] = expr
        else:
            found[_named_option(spec, arg.name).name] = expr
    return found


def given_options(spec: OpKind, args: list[BoundArg]) -> frozenset[str]:
    """The options a call writes (by name, shorthand, flag or position), after `bind` accepted it."""
    slots, given = list(spec.positional), set()
    for arg in args:
        flag = spec.option(arg.bare) if arg.name is None and arg.bare else None
        if arg.name is not None:
            given.add(_named_option(spec, arg.name).name)
        elif flag is not None and flag.flag:
            given.add(flag.name)
        elif slots:
            given.add(slots.pop(0))
    return frozenset(given)


def no_option(spec: OpKind, word: str, span: Span) -> EvalError:
    """E0203 for `conv 8 gain=2`, and for a bare `conv 8 gain` that can only be read as a flag."""
    return EvalError(
        "E0203",
        f"`{spec.name}` has no option `{word}`",
        span,
        help=suggest(word, spec.option_words()) or "options: " + ", ".join(_option_list(spec)),
    )


def _named_option(spec: OpKind, word: str) -> Option:
    """The option a call names `word` (by name or shorthand), in a call `bind` accepted."""
    option = spec.option(word)
    assert option is not None, f"`{spec.name}` has no option `{word}`: `bind` refuses the call"
    return option


def _option_list(spec: OpKind) -> list[str]:
    return [o.name + (f" ({'/'.join(o.aliases)})" if o.aliases else "") for o in spec.options]


def _check(spec: OpKind, option: Option, value: Value | None, span: Span) -> Value:
    # `value` is None for an op's name given to an option (`conv out=relu`): refused below as "the name `None`"
    if option.type == "bool":
        return as_bool(value, span)
    if option.type == "word":  # a bare word of the language (a Symbol), kept as its name
        if not isinstance(value, Symbol) or value.name not in option.choices:
            raise EvalError(
                "E0302",
                f"`{option.name}` of `{spec.name}` is {show(value) if value is not None else 'missing'}; it must be "
                + " or ".join(f"`{c}`" for c in option.choices),
                span,
                help=suggest(str(value), option.choices),
            )
        return cast(Value, value.name)
    if option.per_axis and isinstance(value, tuple):  # one number per spatial axis, each in range
        if not 1 <= len(value) <= 3:
            raise EvalError(
                "E0411",
                f"`{option.name}` of `{spec.name}` gives {len(value)} sizes {show(value)}",
                span,
                help="give one number for every axis, or one per spatial axis (1, 2 or 3 of them)",
            )
        return tuple(_check(spec, replace(option, per_axis=False), item, span) for item in value)
    if option.type == "int":
        value = as_int(value, span)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError("E0302", f"`{option.name}` of `{spec.name}` must be a number, found {type_name(value)}", span)
    else:
        value = float(value)
    low, high = option.minimum, option.maximum
    # Written so that NaN fails too: every comparison with NaN is false, so `not (low <= value)` catches it.
    in_range = (
        math.isfinite(value)
        and (low is None or (value > low if option.above_minimum else value >= low))
        and (high is None or value <= high)
    )
    if not in_range:
        # every option that is a number has a minimum (a bool option returned above)
        lowest = f"above {low}" if option.above_minimum else f"at least {low}"
        bounds = (
            lowest
            if high is None
            else (f"above {low} and at most {high}" if option.above_minimum else f"between {low} and {high:,}")
        )
        raise EvalError("E0303", f"`{option.name}` of `{spec.name}` is {show(value)}; it must be {bounds}", span)
    return value
