"""The evaluation of expressions: arithmetic, lists, comprehensions and the builtin functions.

Values and their rules (what a value is, equality, the limits) are values.py's; the builtin functions
are functions.py's, which this module calls. `/` on integers must divide evenly, otherwise E0301
names both operands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from . import syntax as ast
from .errors import EvalError
from .functions import call_function
from .values import (
    BRANCH_MERGES,
    GELU_FORMS,
    LIMIT,
    MAX_LIST,
    MAX_WORK,
    NORMS,
    POLICIES,
    RESAMPLE_MODES,
    Symbol,
    TooMuchWork,
    Value,
    WorkBudget,
    as_bool,
    as_int,
    as_number,
    charge,
    same_value,
    show,
    suggest,
    type_name,
)


def evaluate(expr: ast.Expr, env: Mapping[str, Value], symbols: frozenset[str] | set[str]) -> Value:
    """Evaluate `expr`; `env` holds parameters, `symbols` the names of blocks."""
    if isinstance(expr, ast.Number):
        value = expr.value
        if isinstance(value, int) and abs(value) > LIMIT or isinstance(value, float) and not math.isfinite(value):
            raise EvalError("E0303", "number is too large", expr.span, help=f"numbers are limited to {LIMIT:,}")
        return value
    if isinstance(expr, ast.Boolean):
        return expr.value
    if isinstance(expr, ast.Name):
        if expr.id in env:
            return env[expr.id]
        if (
            expr.id in POLICIES
            or expr.id in NORMS
            or expr.id in BRANCH_MERGES
            or expr.id in RESAMPLE_MODES
            or expr.id in GELU_FORMS
            or expr.id in symbols
        ):
            return Symbol(expr.id)
        raise EvalError(
            "E0201",
            f"unknown name `{expr.id}`",
            expr.span,
            help=suggest(expr.id, list(env) + list(symbols))
            or (f"parameters in scope: {', '.join(sorted(env))}" if env else None),
        )
    if isinstance(expr, ast.ListExpr):
        return tuple(evaluate(item, env, symbols) for item in expr.items)
    if isinstance(expr, ast.Ternary):
        test = as_bool(evaluate(expr.test, env, symbols), expr.test.span)
        return evaluate(expr.then if test else expr.orelse, env, symbols)
    if isinstance(expr, ast.Index):
        base = evaluate(expr.base, env, symbols)
        if not isinstance(base, tuple):
            raise EvalError("E0302", f"only a list can be indexed, not {type_name(base)}", expr.base.span)
        i = as_int(evaluate(expr.index, env, symbols), expr.index.span)
        if not -len(base) <= i < len(base):
            raise EvalError("E0305", f"index {i} is out of range for a list of {len(base)}", expr.index.span)
        return base[i]
    if isinstance(expr, ast.Unary):
        operand = evaluate(expr.operand, env, symbols)
        if expr.op == "not":
            return not as_bool(operand, expr.operand.span)
        return -as_number(operand, expr.operand.span)
    if isinstance(expr, ast.Binary):
        return _binary(expr, env, symbols)
    if isinstance(expr, ast.Function):
        return call_function(expr, [(evaluate(arg, env, symbols), arg.span) for arg in expr.args])
    if isinstance(expr, ast.Comprehension):
        return _comprehension(expr, env, symbols)
    raise TypeError(expr)  # pragma: no cover - the parser builds no other node


def _comprehension(expr: ast.Comprehension, env: Mapping[str, Value], symbols) -> tuple:
    """`[item for name in iterable if condition]`: `name` bound to each item in turn, over the scope's
    names (it hides a parameter of that name inside the brackets only, as in Python)."""
    outermost = WorkBudget.depth == 0
    if outermost:
        WorkBudget.done = 0
    WorkBudget.depth += 1
    try:
        iterable = evaluate(expr.iterable, env, symbols)
        if not isinstance(iterable, tuple):
            raise EvalError(
                "E0302",
                f"a comprehension goes over a list, not {type_name(iterable)}",
                expr.iterable.span,
                help="for example `[w * 2 for w in widths]` or `[i for i in range(4)]`",
            )
        made = []
        inner = dict(env)
        names = expr.variables
        for item in iterable:
            charge(1)
            if len(names) == 1:
                inner[names[0]] = item
            elif isinstance(item, tuple) and len(item) == len(names):
                inner.update(zip(names, item))
            else:
                raise EvalError(
                    "E0302",
                    f"{len(names)} names ({', '.join(names)}) for an item that is {type_name(item)} ({show(item)})",
                    expr.iterable.span,
                    help=f"each item must be a list of {len(names)}, as `zip` makes",
                )
            if expr.condition is None or as_bool(evaluate(expr.condition, inner, symbols), expr.condition.span):
                made.append(evaluate(expr.item, inner, symbols))
        return tuple(made)
    except TooMuchWork:
        if not outermost:
            raise
        raise EvalError(
            "E0303",
            f"this comprehension does more than {MAX_WORK:,} steps of work",
            expr.span,
            help="no network needs lists this long; is a range too large?",
        ) from None
    finally:
        WorkBudget.depth -= 1


def _binary(expr: ast.Binary, env: Mapping[str, Value], symbols) -> Value:
    op = expr.op
    if op in ("and", "or"):
        left = as_bool(evaluate(expr.left, env, symbols), expr.left.span)
        if (op == "and") != left:
            return left
        return as_bool(evaluate(expr.right, env, symbols), expr.right.span)
    a = evaluate(expr.left, env, symbols)
    b = evaluate(expr.right, env, symbols)
    if op in ("==", "!="):
        charge(len(a) if isinstance(a, tuple) else 0)
        return same_value(a, b) == (op == "==")
    if op in ("in", "not in"):
        charge(len(b) if isinstance(b, tuple) else 0)
        if not isinstance(b, tuple):
            raise EvalError(
                "E0302",
                f"`{op}` needs a list on its right, found {type_name(b)}",
                expr.right.span,
                help="for example `depth in [18, 34, 50]`",
            )
        return any(same_value(a, item) for item in b) == (op == "in")
    if isinstance(a, tuple) or isinstance(b, tuple):
        return _list_binary(expr, a, b)
    x = as_number(a, expr.left.span)
    y = as_number(b, expr.right.span)
    if op in ("<", "<=", ">", ">="):
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if op in ("/", "//", "%") and y == 0 or op == "**" and x == 0 and y < 0:
        raise EvalError("E0304", f"division by zero in `{show(x)} {op} {show(y)}`", expr.span)
    if op == "**":
        result = _power(x, y, expr)
    elif op == "+":
        result = x + y
    elif op == "-":
        result = x - y
    elif op == "*":
        result = x * y
    elif op == "//":
        result = x // y
    elif op == "%":
        result = x % y
    elif isinstance(x, int) and isinstance(y, int):
        if x % y:
            raise EvalError(
                "E0301",
                f"`{x} / {y}` is not a whole number ({x / y:g})",
                expr.span,
                help="use `//` to round down, or pick values that divide evenly",
            )
        result = x // y
    else:
        result = x / y
    if isinstance(result, int) and abs(result) > LIMIT or isinstance(result, float) and not math.isfinite(result):
        # `1e308 * 10` is inf and `inf - inf` is NaN, which every range check would let through
        # (NaN < 0 and NaN > 1 are both false): no value of the language is infinite or NaN.
        raise EvalError(
            "E0303", f"`{show(x)} {op} {show(y)}` is too large", expr.span, help=f"results are limited to {LIMIT:,}"
        )
    return result


def _power(x: int | float, y: int | float, expr: ast.Binary) -> int | float:
    """`x ** y` as Python's (an int to a negative int is a float), refused before it is worked out
    where the result would pass LIMIT (`10 ** 10 ** 10` would take hours), or is not a real number."""
    if x < 0 and isinstance(y, float) and not y.is_integer():
        raise EvalError(
            "E0306",
            f"`({show(x)}) ** {show(y)}`: a negative number to a fractional power is not a real number",
            expr.span,
        )
    if abs(x) > 1 and y > 0 and y * math.log2(abs(x)) > 64:
        raise EvalError(
            "E0303", f"`{show(x)} ** {show(y)}` is too large", expr.span, help=f"results are limited to {LIMIT:,}"
        )
    try:
        return x**y
    except OverflowError:  # a float underflow is 0.0; only tiny bases to large negative powers get here
        raise EvalError(
            "E0303", f"`{show(x)} ** {show(y)}` is too large", expr.span, help=f"results are limited to {LIMIT:,}"
        ) from None


def _list_binary(expr: ast.Binary, a: Value, b: Value) -> tuple:
    """Lists join with `+` and repeat with `*` (`[size] * spatial_dims`), as Python's."""
    if expr.op == "+" and isinstance(a, tuple) and isinstance(b, tuple):
        result = a + b
    elif expr.op == "*" and (isinstance(a, tuple) or isinstance(b, tuple)) and not isinstance(a, type(b)):
        items, count, where = (a, b, expr.right) if isinstance(a, tuple) else (b, a, expr.left)
        assert isinstance(items, tuple)  # exactly one side is a list
        times = as_int(count, where.span)
        if times < 0 or len(items) * times > MAX_LIST:
            raise EvalError(
                "E0303", f"a list repeated {times} times", expr.span, help=f"lists hold 0 to {MAX_LIST:,} items"
            )
        result = items * times
    else:
        raise EvalError(
            "E0302",
            f"`{expr.op}` on {type_name(a)} and {type_name(b)}",
            expr.span,
            help="lists join with `+` and repeat with `*` (`[64] * 3`); other arithmetic takes numbers",
        )
    if len(result) > MAX_LIST:
        raise EvalError(
            "E0303", f"a list of {len(result):,} items", expr.span, help=f"lists hold at most {MAX_LIST:,} items"
        )
    charge(len(result))
    return result
