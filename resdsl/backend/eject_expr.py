"""Expressions of the language as Python source, for the ejected file (`compile --emit python`).

A `Sym` is a piece of Python source standing for a value: a parameter of the
class being written (`width`), a constant (`64`), or an expression of them
(`width * base_width // 64 * groups`). Constants fold as they are combined,
so the network class reads `nn.Conv2d(3, 64, ...)` while a block class reads
`nn.Conv2d(in_channels, width, ...)`. Every Sym also carries `sample`, its
value for one real use of the template: it decides between `//` and `/`,
since the language's `/` is exact on integers (E0301 otherwise) and ordinary
division on floats.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Callable, Mapping

from .. import syntax as ast
from ..values import POLICIES, Symbol

# How tightly the outermost operator of a piece of source binds, as in Python's grammar.
TERNARY, OR, AND, NOT, CMP, ADD, MUL, NEG, ATOM = range(1, 10)
_LEVEL = {"or": OR, "and": AND, "+": ADD, "-": ADD, "*": MUL, "/": MUL, "//": MUL, "%": MUL}
UNKNOWN = object()  # a sample that could not be worked out


class Unsupported(Exception):
    """Something the ejector cannot write as general Python; the message says what."""


@dataclass(frozen=True)
class Sym:
    text: str
    prec: int = ATOM
    const: bool = False       # `text` is a literal, the same for every use
    sample: object = UNKNOWN  # the value in the use the class is written from

    def wrapped(self, level: int) -> str:
        """The text, parenthesised if it binds looser than `level`."""
        return self.text if self.prec >= level else f"({self.text})"

    def arg(self) -> str:
        """As a call argument: a conditional is parenthesised for the reader, as torchvision writes it."""
        return self.wrapped(OR)

    # Arithmetic, so that an op's definition (resdsl/ops/) written on numbers writes source on Syms:
    # `kernel // 2 * dilation` gives `kernel // 2 * dilation`, or `1` where kernel is the constant 3.
    def __add__(self, other: object) -> "Sym":
        return binary("+", self, _sym(other))

    def __radd__(self, other: object) -> "Sym":
        return binary("+", _sym(other), self)

    def __sub__(self, other: object) -> "Sym":
        return binary("-", self, _sym(other))

    def __rsub__(self, other: object) -> "Sym":
        return binary("-", _sym(other), self)

    def __mul__(self, other: object) -> "Sym":
        return binary("*", self, _sym(other))

    def __rmul__(self, other: object) -> "Sym":
        return binary("*", _sym(other), self)

    def __floordiv__(self, other: object) -> "Sym":
        return binary("//", self, _sym(other))

    def __rfloordiv__(self, other: object) -> "Sym":
        return binary("//", _sym(other), self)

    def __truediv__(self, other: object) -> "Sym":  # the language's exact division (`//` on integers)
        return binary("/", self, _sym(other))

    def __rtruediv__(self, other: object) -> "Sym":
        return binary("/", _sym(other), self)


def _sym(value: object) -> Sym:
    return value if isinstance(value, Sym) else literal(value)


def literal(value: object, symbol: Callable[[str], str] = repr) -> Sym:
    """A constant; `symbol` writes a block name as Python (its class)."""
    return Sym(py_value(value, symbol), NEG if _negative(value) else ATOM, True, value)


def py_value(value: object, symbol: Callable[[str], str] = repr) -> str:
    if isinstance(value, tuple):
        items = [py_value(v, symbol) for v in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if isinstance(value, Symbol):
        return py_string(value.name) if value.name in POLICIES else symbol(value.name)
    return repr(value)


def py_string(text: str) -> str:
    """A string literal in double quotes, as the rest of the ejected file writes them."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if text.isprintable() else repr(text)


def _negative(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def same_value(a: object, b: object) -> bool:
    """Equality of the language: `true` is not `1`, and lists compare item by item."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b if isinstance(a, (int, float)) else a == b


def _truth(value: object) -> bool:
    if isinstance(value, (bool, int)) or is_int(value):
        return bool(value)
    raise TypeError(value)


def _apply(op: str, x: object, y: object) -> object:
    """The language's binary operators on values; UNKNOWN where either side is unknown or it fails."""
    if x is UNKNOWN or y is UNKNOWN:
        return UNKNOWN
    try:
        if op == "and":
            return _truth(x) and _truth(y)
        if op == "or":
            return _truth(x) or _truth(y)
        if op in ("==", "!="):
            return same_value(x, y) == (op == "==")
        if op in ("in", "not in"):
            return any(same_value(x, item) for item in y) == (op == "in")
        if op == "/" and is_int(x) and is_int(y):
            return x // y if x % y == 0 else UNKNOWN
        return {"<": lambda: x < y, "<=": lambda: x <= y, ">": lambda: x > y, ">=": lambda: x >= y,
                "+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
                "//": lambda: x // y, "%": lambda: x % y}[op]()
    except Exception:  # a sample that cannot be worked out only loses the `//` hint
        return UNKNOWN


def binary(op: str, a: Sym, b: Sym, symbol: Callable[[str], str] = repr) -> Sym:
    value = _apply(op, a.sample, b.sample)
    if a.const and b.const and value is not UNKNOWN:
        return literal(value, symbol)
    # Small simplifications a person would make: x * 1, x + 0, x // 1.
    if op in ("*", "//", "/") and b.const and is_int(b.sample) and b.sample == 1 or op in ("+", "-") and \
            b.const and is_int(b.sample) and b.sample == 0:
        return Sym(a.text, a.prec, False, value if value is not UNKNOWN else a.sample)
    if op == "*" and a.const and is_int(a.sample) and a.sample == 1 or op == "+" and a.const and \
            is_int(a.sample) and a.sample == 0:
        return Sym(b.text, b.prec, False, value if value is not UNKNOWN else b.sample)
    python = op
    if op == "/" and not (isinstance(a.sample, float) or isinstance(b.sample, float)):
        python = "//"  # exact division of integers: the spec guarantees (E0301) that nothing is dropped
    level = _LEVEL.get(op, CMP)
    if level == CMP:
        text = f"{a.wrapped(CMP + 1)} {python} {b.wrapped(CMP + 1)}"
    else:
        text = f"{a.wrapped(level)} {python} {b.wrapped(level + 1)}"
    return Sym(text, level, False, value)


_INVERSE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "in": "not in", "not in": "in"}


def negate(expr: ast.Expr, env: Mapping[str, Sym], symbol: Callable[[str], str] = repr) -> Sym:
    """`not expr`, written as `stride != 1` rather than `not stride == 1`."""
    if isinstance(expr, ast.Binary) and expr.op in _INVERSE:
        return translate(ast.Binary(_INVERSE[expr.op], expr.left, expr.right, expr.span), env, symbol)
    return unary("not", translate(expr, env, symbol), symbol)


def unary(op: str, a: Sym, symbol: Callable[[str], str] = repr) -> Sym:
    if op == "not":
        value = UNKNOWN if a.sample is UNKNOWN else not _truth_or_unknown(a.sample)
        return literal(value, symbol) if a.const and value is not UNKNOWN else Sym(f"not {a.wrapped(NOT)}", NOT,
                                                                                     False, value)
    value = -a.sample if isinstance(a.sample, (int, float)) and not isinstance(a.sample, bool) else UNKNOWN
    return literal(value, symbol) if a.const and value is not UNKNOWN else Sym(f"-{a.wrapped(NEG)}", NEG, False,
                                                                                value)


def _truth_or_unknown(value: object) -> object:
    try:
        return _truth(value)
    except TypeError:
        return UNKNOWN


def ternary(test: Sym, then: Sym, orelse: Sym) -> Sym:
    if test.const and test.sample is not UNKNOWN:
        return then if _truth_or_unknown(test.sample) else orelse
    if then.text == orelse.text:
        return then
    chosen = _truth_or_unknown(test.sample)
    sample = UNKNOWN if chosen is UNKNOWN else (then.sample if chosen else orelse.sample)
    return Sym(f"{then.wrapped(OR)} if {test.wrapped(OR)} else {orelse.wrapped(TERNARY)}", TERNARY, False, sample)


def index(base: Sym, i: Sym, symbol: Callable[[str], str] = repr) -> Sym:
    try:
        value = base.sample[i.sample] if base.sample is not UNKNOWN and i.sample is not UNKNOWN else UNKNOWN
    except (TypeError, IndexError):
        value = UNKNOWN
    if base.const and i.const and value is not UNKNOWN:
        return literal(value, symbol)
    return Sym(f"{base.wrapped(ATOM)}[{i.text}]", ATOM, False, value)


def translate(expr: ast.Expr, env: Mapping[str, Sym], symbol: Callable[[str], str] = repr) -> Sym:
    """A language expression as Python, its names looked up in `env` (block names and policies are
    constants; `symbol` writes a block name as its class)."""
    if isinstance(expr, (ast.Number, ast.Boolean)):
        return literal(expr.value)
    if isinstance(expr, ast.Name):
        if expr.id in env:
            return env[expr.id]
        return literal(Symbol(expr.id), symbol)
    if isinstance(expr, ast.ListExpr):
        items = [translate(item, env, symbol) for item in expr.items]
        if all(item.const for item in items):
            return literal(tuple(item.sample for item in items), symbol)
        text = f"({items[0].text},)" if len(items) == 1 else f"({', '.join(i.arg() for i in items)})"
        samples = tuple(i.sample for i in items)
        return Sym(text, ATOM, False, UNKNOWN if UNKNOWN in samples else samples)
    if isinstance(expr, ast.Unary):
        return unary(expr.op, translate(expr.operand, env, symbol), symbol)
    if isinstance(expr, ast.Binary):
        return binary(expr.op, translate(expr.left, env, symbol), translate(expr.right, env, symbol), symbol)
    if isinstance(expr, ast.Ternary):
        return ternary(translate(expr.test, env, symbol), translate(expr.then, env, symbol),
                       translate(expr.orelse, env, symbol))
    if isinstance(expr, ast.Index):
        return index(translate(expr.base, env, symbol), translate(expr.index, env, symbol), symbol)
    raise Unsupported(f"an expression of kind {type(expr).__name__}")


def free_names(expr: ast.Expr) -> set[str]:
    """Every name an expression reads."""
    if isinstance(expr, ast.Name):
        return {expr.id}
    children: tuple = ()
    if isinstance(expr, ast.ListExpr):
        children = expr.items
    elif isinstance(expr, ast.Unary):
        children = (expr.operand,)
    elif isinstance(expr, ast.Binary):
        children = (expr.left, expr.right)
    elif isinstance(expr, ast.Ternary):
        children = (expr.test, expr.then, expr.orelse)
    elif isinstance(expr, ast.Index):
        children = (expr.base, expr.index)
    return set().union(*(free_names(c) for c in children)) if children else set()


def class_name(name: str) -> str:
    """`bottleneck` -> `Bottleneck`, `preact_basic` -> `PreactBasic`, `resnext50_32x4d` -> `Resnext50_32x4d`."""
    parts = [p for p in name.split("_") if p]
    out = ""
    for part in parts:
        glue = "_" if out and out[-1].isdigit() and part[0].isdigit() else ""
        out += glue + part[0].upper() + part[1:]
    return out or "Block"


def identifier(name: str, taken: set[str]) -> str:
    """A Python name for `name` that is no keyword and none of `taken` (names the source already uses)."""
    out = name
    while keyword.iskeyword(out) or out in taken:
        out += "_"
    return out


# ---- calls, laid out ------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    """`func(arg, ..., key=value)`, where an argument may itself be a Call (e.g. a downsample)."""

    func: str
    args: tuple  # str | Call | tuple[str, str | Call] (a keyword argument)


def fmt(node: "str | Call", indent: int = 0, width: int = 120, used: int = 0, split: bool = False) -> str:
    """Source for `node` on a line indented by `indent` after `used` other characters. In order of
    preference: one line; the last argument's call opened at the end of the line (torchvision's
    `downsample = nn.Sequential(` style); the arguments packed under the opening parenthesis; one
    argument a line. `split` asks for the last."""
    if isinstance(node, str):
        return node
    one = flat(node)
    if not split and indent + used + len(one) <= width:
        return one
    last = node.args[-1] if node.args else None
    value = last[1] if isinstance(last, tuple) else last
    if not split and isinstance(value, Call) and value.args:
        head = f"{node.func}(" + "".join(_flat_arg(a) + ", " for a in node.args[:-1]) + \
            (f"{last[0]}=" if isinstance(last, tuple) else "")
        if indent + used + len(head) + len(value.func) + 1 <= width:
            return head + fmt(value, indent, width, used + len(head), split=True) + ")"
    if not split:
        packed = _packed(node, indent + used + len(node.func) + 1, width)
        if packed is not None:
            return packed
    pad = " " * (indent + 4)
    lines = [pad + _arg(a, indent + 4, width) + "," for a in node.args]
    return f"{node.func}(\n" + "\n".join(lines) + "\n" + " " * indent + ")"


def _packed(node: Call, column: int, width: int) -> str | None:
    """The arguments filled into lines that start under the opening parenthesis, if that fits in 3 lines."""
    lines, current = [], ""
    for arg in (_flat_arg(a) for a in node.args):
        if current and column + len(current) + len(arg) + 1 > width:
            lines.append(current.rstrip())
            current = ""
        current += arg + ", "
    lines.append(current[:-2] + ")")
    if len(lines) > 3 or any(column + len(line) > width for line in lines):
        return None
    return f"{node.func}(" + ("\n" + " " * column).join(lines)


def flat(node: "str | Call") -> str:
    """`node` on one line."""
    if isinstance(node, str):
        return node
    return f"{node.func}({', '.join(_flat_arg(a) for a in node.args)})"


def _flat_arg(arg) -> str:
    return f"{arg[0]}={flat(arg[1])}" if isinstance(arg, tuple) else flat(arg)


def _arg(arg, indent: int, width: int) -> str:
    if isinstance(arg, tuple):
        key, value = arg
        return f"{key}={fmt(value, indent, width, used=len(key) + 1)}"
    return fmt(arg, indent, width)
