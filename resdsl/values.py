"""Values of the language and the evaluation of expressions.

A value is an int, a float, a bool, a tuple of values (a list literal), or a
`Symbol`: a bare name that is not a parameter, such as a shortcut policy
(`A`) or a block (`bottleneck`) passed as a parameter. Arithmetic is exact:
`/` on integers must divide evenly, otherwise E0301 names both operands.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import EvalError, Span  # noqa: F401 - EvalError: raised here, imported from here by older code

POLICIES = ("A", "B", "C", "D", "identity", "none")
# The norms a `norm` statement may choose (ops/ marks them `norm=True`; a test keeps the two equal).
NORMS = ("bn", "gn", "evonorm", "frn", "frozen_bn", "ln")
# What `branches(merge = ...)` may ask for: the merge op kinds' `merge_word`s, which resdsl/ops fills in
# when it collects the kinds (values sits below ops, so it cannot ask them; importing resdsl imports ops).
BRANCH_MERGES: list[str] = []
# The resampling modes: `upsample MODE` and the fit a `shortcut MODE` statement declares (ops/upsample.py).
RESAMPLE_MODES = ("nearest", "linear", "bilinear", "trilinear")
# The forms of `gelu` (ops/activation.py): exact, or torch's tanh approximation (`gelu tanh`).
GELU_FORMS = ("none", "tanh")
LIMIT = 2**63 - 1  # every int a tensor dimension could ever hold
MAX_LIST = 100_000  # the longest list `+` and `*` may build (no list of the language needs more)
# The work one comprehension, with those nested in it, may do: items made plus list items read by the
# functions and operators inside it (a comprehension over range(100000) of sum(range(100000)) would
# otherwise take hours). About a second of evaluation; RegNet's generator spends under a hundred.
MAX_WORK = 1_000_000


class WorkBudget:
    """The work done by the outermost comprehension being evaluated (`depth` of them are open)."""

    depth = 0
    done = 0


def charge(items: int) -> None:
    """Count `items` of list work against the open comprehension's budget (none open: free, as every
    list is at most MAX_LIST long)."""
    if WorkBudget.depth:
        WorkBudget.done += items
        if WorkBudget.done > MAX_WORK:
            raise TooMuchWork()


class TooMuchWork(Exception):
    """Raised where the budget runs out; the outermost comprehension reports it at its own span."""


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str

    def __str__(self) -> str:
        return self.name


Value = int | float | bool | Symbol | tuple


def value_key(value: Value) -> object:
    """A hashable key that tells values apart as the language does: `2`, `2.0` and `true` are three
    values (Python's `2 == 2.0 == True` would share a memo entry between them)."""
    if isinstance(value, tuple):
        return tuple(value_key(v) for v in value)
    return (type(value).__name__, value)


def show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction"
    if isinstance(value, tuple):
        return "a list"
    return f"the name `{value}`"


def suggest(word: str, candidates) -> str | None:
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def same_value(a: Value, b: Value) -> bool:
    """Equality of the language: `true` is not `1` (Python says it is), lists compare item by item."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def as_number(value: Value, span: Span) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError("E0302", f"expected a number, found {type_name(value)}", span)
    return value


def as_int(value: object, span: Span) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise EvalError("E0302", f"expected an integer, found {type_name(value)} ({show(value)})", span)
    return value


def as_bool(value: object, span: Span) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value != 0
    raise EvalError("E0302", f"expected true or false, found {type_name(value)}", span)
