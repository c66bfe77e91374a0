"""The abstract syntax tree of a .res file.

Every node carries the `Span` it was parsed from, so any later stage can point
a diagnostic at the exact source text. The tree is immutable: elaboration
reads it, never edits it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import Span

# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: int | float
    span: Span


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-" or "not"
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / // % == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Ternary:
    then: Expr
    test: Expr
    orelse: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Index:
    base: Expr
    index: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Function:
    """`round(x)`, `max(a, b)`: a builtin function (resdsl/functions.py) applied to its arguments."""

    name: str
    name_span: Span
    args: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Comprehension:
    """`[item for variable in iterable if condition]`: a list made item by item, as Python's. Several
    variables (`for w, g in zip(widths, groups)`) take each item's items apart."""

    item: Expr
    variables: tuple[str, ...]
    iterable: Expr
    condition: Expr | None
    span: Span


Expr = Number | Boolean | Name | ListExpr | Unary | Binary | Ternary | Index | Function | Comprehension


def children(expr: Expr) -> tuple[Expr, ...]:
    """The expressions directly inside `expr`, in the order they are written."""
    if isinstance(expr, ListExpr):
        return expr.items
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Binary):
        return (expr.left, expr.right)
    if isinstance(expr, Ternary):
        return (expr.then, expr.test, expr.orelse)
    if isinstance(expr, Index):
        return (expr.base, expr.index)
    if isinstance(expr, Function):
        return expr.args
    if isinstance(expr, Comprehension):
        return (expr.item, expr.iterable) + (() if expr.condition is None else (expr.condition,))
    return ()


@dataclass(frozen=True, slots=True)
class Interpolation:
    """A quoted name with `{expr}` in it, a part of a label or group name: `"block1-{repetition}"`.

    `pieces` alternate text and expressions; `text` is the name as written (no quotes), for messages.
    The name is made where it is used, each value written as the language shows it (naming.py)."""

    pieces: tuple[str | Expr, ...]
    text: str
    span: Span

    def __str__(self) -> str:
        return self.text


# ---- statements ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    """`expr` (name is None), `name=expr`, or a shorthand like `k3` (name "k")."""

    name: str | None
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Repeat:
    """`x N` after a block call, plus the stage options that follow it."""

    count: Expr
    options: tuple[Arg, ...]
    shortcuts: tuple[Expr, ...]  # more than one is an error, reported by the elaborator
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """An op (`conv 64 k3`) or a block call (`basic(64)`), optionally repeated."""

    name: str
    name_span: Span
    args: tuple[Arg, ...]
    repeat: Repeat | None
    span: Span


@dataclass(frozen=True, slots=True)
class Body:
    statements: tuple[Statement, ...]
    span: Span


# A label's or a group name's dotted parts, each a name and an index expression or None:
# `stages[0].blocks` is (("stages", 0), ("blocks", None)). A part with several indices goes on with
# nameless pairs: `inner_blocks[3][0]` is (("inner_blocks", 3), ("", 0)). (labels.py reads them.)
# A quoted part with `{expr}` in it is an `Interpolation`, evaluated where the label is used.
LabelParts = tuple[tuple["str | Interpolation", Expr | None], ...]


@dataclass(frozen=True, slots=True)
class BadName:
    """A quoted part of a label or group name that cannot name a module (`"a.b"`, `""`): the elaborator
    reports it (E0210) with the spec's other errors, and names the element automatically."""

    written: str  # as written, quotes included
    reason: str
    span: Span


@dataclass(frozen=True, slots=True)
class Group:
    """`name { ... }`: a named sequential group (an nn.Sequential). Its name is a path, as a label:
    `paths[branch] { ... }` is group `paths.<branch>` (an entry of an nn.ModuleList), and
    `trunk.block1 { ... }` the group `block1` inside the container `trunk`. A name used again in the
    same scope reopens the group."""

    name: str  # the parts' names joined by dots, for messages
    body: Body
    span: Span
    parts: LabelParts = ()
    name_span: Span | None = None
    word: bool = False  # its first part a plain name (`residul { ... }`): W0201 looks at it
    bad: BadName | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """`stem { ... }` / `head { ... }`: presentation only, adds no name level."""

    kind: str
    body: Body
    span: Span


@dataclass(frozen=True, slots=True)
class Residual:
    """`residual { main path }` (merge "add") or `dense { ... }` (merge "concat").

    `args` are the merge's options, e.g. `residual(project_from = preact, project_norm = false)`.
    """

    merge: str
    body: Body
    span: Span
    args: tuple[Arg, ...] = ()
    shortcut: Body | None = None  # `residual { ... } shortcut { ... }`: the shortcut path the block writes


@dataclass(frozen=True, slots=True)
class Cond:
    test: Expr
    then: Body
    orelse: Body | Cond | None
    span: Span


@dataclass(frozen=True, slots=True)
class Branches:
    """`branches(n, split = ..., merge = ..., carry = ..., groups = ...) { body } [attend { body }]`.

    The body is elaborated once per branch with `branch` bound to 0 .. n-1; `args[0]` is n,
    the others the options; `attend` is the body that turns the branches' sum into the
    attention logits of `merge = select`.
    """

    args: tuple[Arg, ...]
    body: Body
    attend: Body | None
    span: Span


@dataclass(frozen=True, slots=True)
class Tap:
    """`from layer3`: the chain goes on from a labelled point's tensor (a side branch, an FPN's lateral).

    `parts` is the point's dotted path with its indices, as a label's (`Link.label_parts`)."""

    parts: LabelParts
    span: Span


Element = Call | Group | Section | Residual | Cond | Branches | Tap


@dataclass(frozen=True, slots=True)
class Link:
    label: str | None
    label_span: Span | None
    element: Element
    span: Span
    # The label's dotted parts with their indices: `stages[0].blocks` is (("stages", 0), ("blocks", None));
    # `label` is the parts joined by dots, for a label without indices.
    label_parts: LabelParts = ()
    bad: BadName | None = None  # a quoted part of the label that cannot name a module

    @property
    def indexed(self) -> bool:
        """Is the label evaluated where it is used (an index, or a quoted part with `{expr}`)?"""
        return any(index is not None or not isinstance(name, str) for name, index in self.label_parts)


def mentions(expr: Expr, name: str) -> bool:
    """Does `expr` read the name `name`? (e.g. a stage argument that uses `repetition`)"""
    if isinstance(expr, Name):
        return expr.id == name
    return any(mentions(child, name) for child in children(expr))


def part_mentions(part: str | Interpolation, name: str) -> bool:
    """Does a label's part read `name` (`"b{repetition + 1}"`)?"""
    return isinstance(part, Interpolation) and any(
        mentions(piece, name) for piece in part.pieces if not isinstance(piece, str)
    )


@dataclass(frozen=True, slots=True)
class Chain:
    links: tuple[Link, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Input:
    dims: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Shortcut:
    policy: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Norm:
    """`norm gn`: the norm every `bn` of the scope (and the projections inserted there) becomes."""

    kind: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Defaults:
    """`defaults unit(groups = groups, ...)`: keyword arguments for every later call of `unit` in the body
    (`defaults unit1, unit2(...)`: of each of them)."""

    blocks: tuple[tuple[str, Span], ...]
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Require:
    """`require depth in [18, 34], "message"`: a condition on a template's parameters."""

    test: Expr
    message: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class OutputItem:
    """One returned point: `layer1` (a list entry), or `0: layer1` / `aux: aux` (a keyed entry)."""

    key: str | None
    parts: LabelParts  # the point's dotted path, as a label's
    point_span: Span
    span: Span


@dataclass(frozen=True, slots=True)
class Output:
    """`output a, b` or `output k: a, j: b`: what the network returns, a list or an ordered dict."""

    items: tuple[OutputItem, ...]
    span: Span


Statement = Chain | Input | Shortcut | Norm | Defaults | Require | Output


# ---- top level -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Use:
    path: str
    span: Span


@dataclass(frozen=True, slots=True)
class Template:
    """A `block` or `network` definition."""

    kind: str  # "block" | "network"
    name: str
    params: tuple[Param, ...]
    body: Body
    span: Span
    name_span: Span


@dataclass(frozen=True, slots=True)
class Alias:
    """`network resnet50 = resnet(depth=50)`: a template with new defaults."""

    kind: str  # "block" | "network"
    name: str
    target: str
    target_span: Span
    args: tuple[Arg, ...]
    span: Span
    name_span: Span


Definition = Template | Alias


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: str
    uses: tuple[Use, ...]
    definitions: tuple[Definition, ...]
