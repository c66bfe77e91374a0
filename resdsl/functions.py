"""The builtin functions of expressions: `round(x)`, `max(a, b)`, `log(x)`, `unique(widths)`, ...

Each has Python's meaning (round is half-to-even, as Python's, numpy's and torch's; int truncates),
on the language's values: numbers are ints and floats, never booleans (`int(true)` is refused as
`true + 1` is), lists are tuples. What a function cannot take is a located error: an unknown name
(E0201, with "did you mean"), a wrong number or type of arguments (E0302), an argument outside the
function's domain, such as log(0) or min([]) (E0306), a result too large (E0303). Results obey the
limits of the rest of the arithmetic (values.LIMIT, values.MAX_LIST), so no value is infinite or NaN.

Function names are a namespace of their own: `max(a, b)` calls the function even where a parameter
is named `max`, and `max` alone is that parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from . import syntax as ast
from .errors import EvalError, Span
from .values import LIMIT, MAX_LIST, Value, as_int, charge, same_value, show, suggest, type_name, value_key

Args = Sequence[tuple[Value, Span]]


def _number(value: Value, span: Span, function: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError("E0302", f"`{function}` takes numbers, not {type_name(value)} ({show(value)})", span)
    return value


def _list(value: Value, span: Span, function: str) -> tuple:
    if not isinstance(value, tuple):
        raise EvalError("E0302", f"`{function}` takes a list, not {type_name(value)} ({show(value)})", span)
    charge(len(value))
    return value


def _domain(message: str, span: Span, help: str | None = None) -> EvalError:
    return EvalError("E0306", message, span, help=help)


def checked(result: Value, span: Span, what: str) -> Value:
    """A number within the language's limits (no inf, no NaN, no integer beyond LIMIT), else E0303."""
    if isinstance(result, bool):
        return result
    if isinstance(result, int) and abs(result) > LIMIT or isinstance(result, float) and not math.isfinite(result):
        raise EvalError("E0303", f"{what} is too large", span, help=f"numbers are limited to {LIMIT:,}")
    return result


def _to_int(x: int | float, span: Span, what: str, rounding: Callable[[float], int]) -> int:
    # every float of the language is finite (checked where it is made), so rounding cannot fail
    return checked(x if isinstance(x, int) else rounding(x), span, what)  # type: ignore[return-value]


def _round(args: Args, span: Span) -> Value:
    x = _number(*args[0], "round")
    if len(args) == 1:
        return _to_int(x, span, f"round({show(x)})", round)
    digits = as_int(args[1][0], args[1][1])
    return checked(round(x, digits), span, f"round({show(x)}, {digits})")


def _min_max(function: str, pick: Callable) -> Callable[[Args, Span], Value]:
    def apply(args: Args, span: Span) -> Value:
        if len(args) == 1:
            items = _list(*args[0], function)
            if not items:
                raise _domain(f"`{function}` of an empty list", args[0][1], help="give it at least one number")
            spans = [args[0][1]] * len(items)
        else:
            items, spans = tuple(value for value, _ in args), [where for _, where in args]
        return pick(_number(item, where, function) for item, where in zip(items, spans))

    return apply


def _sum(args: Args, span: Span) -> Value:
    items = _list(*args[0], "sum")
    total = _number(*args[1], "sum") if len(args) == 2 else 0
    for item in items:
        total += _number(item, args[0][1], "sum")
        checked(total, span, "the sum")
    return total


def _range(args: Args, span: Span) -> Value:
    bounds = [as_int(value, where) for value, where in args]
    start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (bounds + [1])[:3]
    if step == 0:
        raise _domain("`range` step is 0", args[2][1], help="the step is a positive or negative whole number")
    made = range(start, stop, step)
    if len(made) > MAX_LIST:
        raise EvalError(
            "E0303", f"a range of {len(made):,} numbers", span, help=f"lists hold at most {MAX_LIST:,} items"
        )
    charge(len(made))
    return tuple(made)


def _log(args: Args, span: Span) -> Value:
    x = _number(*args[0], "log")
    if x <= 0:
        raise _domain(f"log({show(x)}) is not defined", args[0][1], help="log takes a number above 0")
    if len(args) == 1:
        return math.log(x)
    base = _number(*args[1], "log")
    if base <= 0 or base == 1:
        raise _domain(f"log to the base {show(base)} is not defined", args[1][1], help="a base above 0, other than 1")
    return math.log(x, base)


def _exp(args: Args, span: Span) -> Value:
    x = _number(*args[0], "exp")
    if x > 709:  # math.exp overflows past e**709.78
        raise EvalError("E0303", f"exp({show(x)}) is too large", span, help=f"numbers are limited to {LIMIT:,}")
    return math.exp(x)


def _sqrt(args: Args, span: Span) -> Value:
    x = _number(*args[0], "sqrt")
    if x < 0:
        raise _domain(f"sqrt({show(x)}) is not a real number", args[0][1], help="sqrt takes a number from 0")
    return math.sqrt(x)


def _unique(args: Args, span: Span) -> Value:
    seen: set = set()
    kept = []
    for item in _list(*args[0], "unique"):
        key = value_key(item)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return tuple(kept)


def _count(args: Args, span: Span) -> Value:
    value = args[1][0]
    return sum(1 for item in _list(*args[0], "count") if same_value(item, value))


def _zip(args: Args, span: Span) -> Value:
    lists = [_list(value, where, "zip") for value, where in args]
    return tuple(zip(*lists))


def _one(function: str, apply: Callable) -> Callable[[Args, Span], Value]:
    return lambda args, span: checked(apply(_number(*args[0], function)), span, f"{function}({show(args[0][0])})")


# name -> (fewest arguments, most arguments (None: any number), the function, how it is called)
FUNCTIONS: dict[str, tuple[int, int | None, Callable[[Args, Span], Value], str]] = {
    "round": (1, 2, _round, "round(x) or round(x, digits)"),
    "floor": (1, 1, lambda args, span: _to_int(_number(*args[0], "floor"), span, "floor", math.floor), "floor(x)"),
    "ceil": (1, 1, lambda args, span: _to_int(_number(*args[0], "ceil"), span, "ceil", math.ceil), "ceil(x)"),
    "int": (1, 1, lambda args, span: _to_int(_number(*args[0], "int"), span, "int", int), "int(x)"),
    "float": (1, 1, _one("float", float), "float(x)"),
    "abs": (1, 1, _one("abs", abs), "abs(x)"),
    "min": (1, None, _min_max("min", min), "min(list) or min(a, b, ...)"),
    "max": (1, None, _min_max("max", max), "max(list) or max(a, b, ...)"),
    "sum": (1, 2, _sum, "sum(list) or sum(list, start)"),
    "len": (1, 1, lambda args, span: len(_list(*args[0], "len")), "len(list)"),
    "range": (1, 3, _range, "range(stop), range(start, stop) or range(start, stop, step)"),
    "log": (1, 2, _log, "log(x) or log(x, base)"),
    "exp": (1, 1, _exp, "exp(x)"),
    "sqrt": (1, 1, _sqrt, "sqrt(x)"),
    "unique": (1, 1, _unique, "unique(list)"),
    "count": (2, 2, _count, "count(list, value)"),
    "zip": (1, None, _zip, "zip(list, list, ...)"),
}


def call_function(expr: ast.Function, args: Args) -> Value:
    """Apply the builtin `expr.name` to the evaluated `args` (value, span of the argument)."""
    entry = FUNCTIONS.get(expr.name)
    if entry is None:
        raise EvalError(
            "E0201",
            f"unknown function `{expr.name}`",
            expr.name_span,
            help=suggest(expr.name, FUNCTIONS) or f"functions: {', '.join(FUNCTIONS)}",
        )
    fewest, most, apply, usage = entry
    if len(args) < fewest or most is not None and len(args) > most or (expr.name in ("min", "max") and not args):
        raise EvalError("E0302", f"`{expr.name}` takes {_arity(fewest, most)}, not {len(args)}", expr.span, help=usage)
    if expr.name in ("min", "max") and len(args) == 1 and not isinstance(args[0][0], tuple):
        raise EvalError(
            "E0302", f"`{expr.name}` of one number", args[0][1], help=f"{usage}: a list, or two numbers or more"
        )
    return apply(args, expr.span)


def _arity(fewest: int, most: int | None) -> str:
    if most is None:
        return f"{fewest} argument{'s' if fewest != 1 else ''} or more"
    if fewest == most:
        return f"{fewest} argument{'s' if fewest != 1 else ''}"
    return f"{fewest} {'or' if most == fewest + 1 else 'to'} {most} arguments"
