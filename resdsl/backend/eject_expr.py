"""Partial evaluation of the language's expressions into Python expressions, for `--emit python`.

A block class is specialised to one network: a parameter whose value is the same in every call
of the template there is a constant, and every expression of constants is folded to its value
(by the language's own evaluator, evaluation.evaluate), so `conv width * base_width / 64 * groups`
becomes `nn.Conv2d(inplanes, planes, ...)` in ResNet-50 and `if blur and stride == 2` disappears
when `blur` is false. What is left depends on the parameters that vary between the calls, and is
built as a Python `ast` expression, printed with `ast.unparse`.

A `Py` is such an expression together with its value in each live call (`samples`). The samples
decide what Python needs and the language does not say: its `/` is exact on whole numbers (E0301
otherwise), so it is `//` when every sample is an int, and `/` on floats. A `Py` supports
arithmetic, so the op definitions (resdsl/ops/), written on numbers, describe their module on Pys
too: a conv's default padding `kernel // 2 * dilation` folds to `1` for a constant 3×3.
"""

from __future__ import annotations

import ast as py
import keyword
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import syntax as ast
from ..errors import EvalError
from ..evaluation import evaluate
from ..values import POLICIES, Symbol, Value, same_value


class Unsupported(Exception):
    """Something one block class cannot express; that block is written flat (eject.py)."""


@dataclass(frozen=True)
class Py:
    node: py.expr
    samples: tuple[Any, ...]  # its value in each live call, in order
    const: bool = False  # the same in every call of the template, whatever the arguments

    @property
    def text(self) -> str:
        return py.unparse(self.node)

    @property
    def value(self) -> Any:
        return self.samples[0] if self.samples else None

    def __add__(self, other: object) -> Py:
        return binary("+", self, lift(other, self))

    def __radd__(self, other: object) -> Py:
        return binary("+", lift(other, self), self)

    def __sub__(self, other: object) -> Py:
        return binary("-", self, lift(other, self))

    def __rsub__(self, other: object) -> Py:
        return binary("-", lift(other, self), self)

    def __mul__(self, other: object) -> Py:
        return binary("*", self, lift(other, self))

    def __rmul__(self, other: object) -> Py:
        return binary("*", lift(other, self), self)

    def __floordiv__(self, other: object) -> Py:
        return binary("//", self, lift(other, self))

    def __rfloordiv__(self, other: object) -> Py:
        return binary("//", lift(other, self), self)

    def __truediv__(self, other: object) -> Py:  # the language's exact division
        return binary("/", self, lift(other, self))

    def __rtruediv__(self, other: object) -> Py:
        return binary("/", lift(other, self), self)


def constant(value: Any, count: int, symbol: Callable[[str], str] = repr) -> Py:
    """A constant, its samples `count` copies of it; `symbol` writes a block name as its class."""
    return Py(literal_node(value, symbol), (value,) * count, True)


def lift(value: object, like: Py) -> Py:
    return value if isinstance(value, Py) else constant(value, len(like.samples))


def literal_node(value: Any, symbol: Callable[[str], str] = repr) -> py.expr:
    if isinstance(value, tuple):
        return py.Tuple([literal_node(v, symbol) for v in value], py.Load())
    if isinstance(value, Symbol):
        return py.Constant(value.name) if value.name in POLICIES else py.Name(symbol(value.name), py.Load())
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return py.UnaryOp(py.USub(), py.Constant(-value))
    return py.Constant(value)


def name(identifier: str, samples: tuple) -> Py:
    return Py(py.Name(identifier, py.Load()), samples)


_BINARY = {"+": py.Add, "-": py.Sub, "*": py.Mult, "/": py.Div, "//": py.FloorDiv, "%": py.Mod, "**": py.Pow}
# The builtins (resdsl/functions.py) that are Python's own, written as calls in ejected source; a block
# whose varying values go through another (log, unique, ...) is written flat.
_PYTHON_FUNCTIONS = frozenset({"round", "int", "float", "abs", "min", "max", "sum", "len"})
_COMPARE = {
    "==": py.Eq,
    "!=": py.NotEq,
    "<": py.Lt,
    "<=": py.LtE,
    ">": py.Gt,
    ">=": py.GtE,
    "in": py.In,
    "not in": py.NotIn,
}


def _apply(op: str, x: Any, y: Any) -> Any:
    if op in ("==", "!="):
        return same_value(x, y) == (op == "==")
    if op in ("in", "not in"):
        return any(same_value(x, item) for item in y) == (op == "in")
    if op == "/" and _is_int(x) and _is_int(y):
        return x // y
    return {
        "+": lambda: x + y,
        "-": lambda: x - y,
        "*": lambda: x * y,
        "/": lambda: x / y,
        "//": lambda: x // y,
        "**": lambda: x**y,
        "%": lambda: x % y,
        "<": lambda: x < y,
        "<=": lambda: x <= y,
        ">": lambda: x > y,
        ">=": lambda: x >= y,
        "and": lambda: x and y,
        "or": lambda: x or y,
    }[op]()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def binary(op: str, a: Py, b: Py) -> Py:
    try:
        samples = tuple(_apply(op, x, y) for x, y in zip(a.samples, b.samples))
    except Exception:  # pragma: no cover - the elaborator evaluated these values already
        samples = a.samples
    if a.const and b.const:
        return constant(samples[0], len(samples)) if samples else a
    # what a person simplifies: x * 1, x // 1, x + 0, 1 * x, 0 + x, and (x * c) / c
    if op in ("*", "//", "/") and _is_one(b) or op in ("+", "-") and _is_zero(b):
        return Py(a.node, samples)
    if op == "*" and _is_one(a) or op == "+" and _is_zero(a):
        return Py(b.node, samples)
    if (
        op in ("/", "//")
        and b.const
        and _is_int(b.value)
        and b.value
        and isinstance(a.node, py.BinOp)
        and isinstance(a.node.op, py.Mult)
        and isinstance(a.node.right, py.Constant)
        and _is_int(a.node.right.value)
        and all(_is_int(s) for s in a.samples)
    ):
        factor = a.node.right.value
        if b.value % factor == 0:  # (x * 4) // 64 is x // 16 on whole numbers
            inner = Py(a.node.left, tuple(s // factor for s in a.samples))
            return (
                binary("//", inner, constant(b.value // factor, len(samples)))
                if b.value != factor
                else Py(a.node.left, samples)
            )
    if op in ("and", "or"):
        return Py(py.BoolOp(py.And() if op == "and" else py.Or(), [a.node, b.node]), samples)
    if op in _COMPARE:
        return Py(py.Compare(a.node, [_COMPARE[op]()], [b.node]), samples)
    python = op
    if op == "/" and all(_is_int(x) and _is_int(y) for x, y in zip(a.samples, b.samples)):
        python = "//"  # exact on whole numbers: the spec guarantees (E0301) that nothing is dropped
    return Py(py.BinOp(a.node, _BINARY[python](), b.node), samples)


def _is_one(p: Py) -> bool:
    return p.const and _is_int(p.value) and p.value == 1


def _is_zero(p: Py) -> bool:
    return p.const and _is_int(p.value) and p.value == 0


def negate(p: Py) -> Py:
    samples = tuple(not s for s in p.samples)
    if p.const:
        return constant(samples[0], len(samples))
    node = p.node
    if isinstance(node, py.Compare) and len(node.ops) == 1:
        inverse = {
            py.Eq: py.NotEq,
            py.NotEq: py.Eq,
            py.Lt: py.GtE,
            py.GtE: py.Lt,
            py.Gt: py.LtE,
            py.LtE: py.Gt,
            py.In: py.NotIn,
            py.NotIn: py.In,
        }[type(node.ops[0])]
        return Py(py.Compare(node.left, [inverse()], node.comparators), samples)
    return Py(py.UnaryOp(py.Not(), node), samples)


class Evaluator:
    """Partial evaluation of expressions over the live calls of one template.

    `envs` holds each live call's values (the elaborator's); `free` maps the parameters that vary
    between calls to the Python name that holds them (a constructor parameter, a local, a loop
    variable). Every other name is a constant: its value is the same in every env."""

    def __init__(
        self,
        envs: list[Mapping[str, Value]],
        free: Mapping[str, str],
        symbols: frozenset[str],
        symbol: Callable[[str], str],
    ):
        self.envs, self.free, self.symbols, self.symbol = envs, free, symbols, symbol

    def known(self, expr: ast.Expr) -> bool:
        return not (ast_names(expr) & set(self.free))

    def samples(self, expr: ast.Expr) -> tuple:
        try:
            return tuple(evaluate(expr, env, self.symbols) for env in self.envs)
        except EvalError as exc:  # pragma: no cover - the elaborator evaluated it in every one of them
            raise Unsupported(f"an expression that fails in a call: {exc.message}") from None

    def __call__(self, expr: ast.Expr) -> Py:
        if self.known(expr):
            samples = self.samples(expr)
            if any(not same_value(s, samples[0]) for s in samples):  # pragma: no cover - constants agree
                raise Unsupported("a constant with different values")
            return constant(samples[0], len(samples), self.symbol)
        if isinstance(expr, ast.Name):
            return name(self.free[expr.id], self.samples(expr))
        if isinstance(expr, ast.Binary):
            left = self(expr.left)
            if expr.op in ("and", "or") and left.const:  # short-circuit on a constant
                if bool(left.value) == (expr.op == "or"):
                    return left
                return self(expr.right)
            right = self(expr.right)
            if expr.op in ("and", "or") and right.const:  # `x and false` is false, `x or false` is x
                samples = self.samples(expr)
                return right if bool(right.value) == (expr.op == "or") else Py(left.node, samples)
            return binary(expr.op, left, right)
        if isinstance(expr, ast.Unary):
            operand = self(expr.operand)
            if expr.op == "not":
                return negate(operand)
            return Py(py.UnaryOp(py.USub(), operand.node), tuple(-s for s in operand.samples))
        if isinstance(expr, ast.Ternary):
            test = self(expr.test)
            if test.const:
                return self(expr.then) if test.value else self(expr.orelse)
            then, orelse = self(expr.then), self(expr.orelse)
            samples = tuple(t if c else e for c, t, e in zip(test.samples, then.samples, orelse.samples))
            if py.dump(then.node) == py.dump(orelse.node):
                return Py(then.node, samples)
            bound = _bound(test.node, then.node, orelse.node)  # `a if a > 8 else 8` is `max(8, a)`
            if bound is not None:
                return Py(py.Call(py.Name(bound, py.Load()), [orelse.node, then.node], []), samples)
            return Py(py.IfExp(test.node, then.node, orelse.node), samples)
        if isinstance(expr, ast.Index):
            base, index = self(expr.base), self(expr.index)
            return Py(py.Subscript(base.node, index.node, py.Load()), self.samples(expr))
        if isinstance(expr, ast.ListExpr):
            items = [self(item) for item in expr.items]
            return Py(py.Tuple([i.node for i in items], py.Load()), self.samples(expr))
        if isinstance(expr, ast.Function) and expr.name in _PYTHON_FUNCTIONS:
            args = [self(arg).node for arg in expr.args]
            return Py(py.Call(py.Name(expr.name, py.Load()), args, []), self.samples(expr))
        raise Unsupported(f"an expression of kind {type(expr).__name__}")  # pragma: no cover


def _bound(test: py.expr, then: py.expr, orelse: py.expr) -> str | None:
    """`max` for `a if a > b else b` (and `>=`), `min` for `a if a < b else b` and `b if a > b else a`."""
    if not (isinstance(test, py.Compare) and len(test.ops) == 1):
        return None
    left, right = py.dump(test.left), py.dump(test.comparators[0])
    larger = isinstance(test.ops[0], (py.Gt, py.GtE))
    if not larger and not isinstance(test.ops[0], (py.Lt, py.LtE)):
        return None
    if (left, right) == (py.dump(then), py.dump(orelse)):  # a if a > b else b
        return "max" if larger else "min"
    if (left, right) == (py.dump(orelse), py.dump(then)):  # b if a > b else a
        return "min" if larger else "max"
    return None


def ast_names(expr: ast.Expr) -> set[str]:
    """Every name an expression reads."""
    if isinstance(expr, ast.Name):
        return {expr.id}
    children = ast.children(expr)
    return set().union(*(ast_names(c) for c in children)) if children else set()


def substitute(p: Py, names: Mapping[str, Py], samples: tuple) -> Py:
    """`p` (an expression of a class's parameters) with each parameter replaced by an expression of
    the caller's: what a nested block gives, in the terms of the block that calls it."""

    class Replace(py.NodeTransformer):
        def visit_Name(self, node: py.Name) -> py.expr:
            return names[node.id].node if node.id in names else node

    if p.const:
        return constant(p.value, len(samples))
    return Py(Replace().visit(py.parse(p.text, mode="eval")).body, samples)


def class_name(text: str) -> str:
    """`bottleneck` -> `Bottleneck`, `preact_basic` -> `PreactBasic`, `resnext50_32x4d` -> `Resnext50_32x4d`."""
    out = ""
    for part in (p for p in text.split("_") if p):
        glue = "_" if out and out[-1].isdigit() and part[0].isdigit() else ""
        out += glue + part[0].upper() + part[1:]
    return out or "Block"


def identifier(text: str, taken: set[str]) -> str:
    """A Python name for `text` that is no keyword and none of `taken`."""
    out = text
    while keyword.iskeyword(out) or out in taken:
        out += "_"
    return out


def py_string(text: str) -> str:
    """A string literal in double quotes, as the rest of the ejected file writes them."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if text.isprintable() else repr(text)
