"""The state of the elaboration walk: what is in scope, and how nodes get their names.

Names follow torchvision's module paths, so weights line up by name: within a
scope conv and bn are numbered from 1 (`conv1`, `bn1`); other kinds take
their bare name the first time and a number after (`relu`, `relu2`).
Children of a named group `g { ... }` are numbered 0, 1, ... as in an
nn.Sequential. One registry per network (`Names`) holds every path named so
far, so a dotted label or a reopened group adds to a container wherever it is
written, and a clash is found whichever scope wrote the first name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import syntax as ast
from .errors import EvalError, Reporter, Span
from .evaluation import evaluate
from .graph import FAILED, Node, OpGraph, Role
from .ops import ALL
from .values import Value, value_key

# A block or network name resolved through its aliases: its template, and the default expression of
# each parameter (an alias's bindings replacing the template's own; None: the parameter has none)
Resolved = tuple[ast.Template, dict[str, ast.Expr | None]]

NUMBERED_KINDS = frozenset(name for name, kind in ALL.items() if kind.numbered)  # conv1, bn1, gn1


@dataclass(frozen=True)
class Context:
    env: dict[str, Value]
    policy: str = "B"
    trace: tuple[tuple[Span, str], ...] = ()
    calls: tuple[str, ...] = ()
    stage: str | None = None
    block: str | None = None
    block_type: str | None = None
    section: str | None = None
    env_key: object = None  # a hashable stand-in for `env`, for memoising ops
    norm: str = "bn"  # what `bn` builds here: the kind a `norm` statement chose
    norm_span: Span | None = None  # that statement, for messages
    fit: str | None = None  # `shortcut nearest`: how merges here resize a smaller input up (shapes.plan_fit)
    # `defaults NAME(...)` statements in force: the keyword arguments (value, span) each later call of
    # NAME in this template's body gets unless it gives them itself
    defaults: tuple[tuple[str, dict], ...] = ()

    @staticmethod
    def key_of(env: dict[str, Value]) -> object:
        try:
            key = tuple((name, value_key(value)) for name, value in env.items())
            hash(key)
            return key
        except TypeError:  # pragma: no cover - every value of the language is hashable
            return object()


class Names:
    """Every module path of the network named so far: one registry for the whole network, so that a
    dotted label, an index or a reopened group may add to a container from anywhere in its scope, and
    a clash is found wherever its two names were written."""

    def __init__(self) -> None:
        # Ops, merges, block calls and stages: nothing may be named inside them from outside (a block's
        # own ops are named by its own scope, below its path).
        self.closed: dict[str, Span | None] = {}
        # Containers that dotted or indexed labels made (`convs` of `convs[0]:`) and named groups: other
        # labels and groups may add to them.
        self.open: dict[str, Span | None] = {}
        self.groups: dict[str, Scope] = {}  # each group's scope, which a group reopened continues

    def __contains__(self, path: str) -> bool:
        return path in self.closed or path in self.open

    def first(self, path: str) -> Span | None:
        """Where `path` was named first (None: an automatic name)."""
        return self.closed[path] if path in self.closed else self.open.get(path)


class Scope:
    """Hands out the names of one module level (a network, a block instance, a group)."""

    def __init__(self, prefix: str, indexed: bool = False, names: Names | None = None):
        self.prefix, self.indexed = prefix, indexed
        self.names = names if names is not None else Names()  # the network's, shared by every scope in it
        self.counts: dict[str, int] = {}
        self.index = 0
        self.stages = 0
        self.duplicates: list[tuple[str, Span, Span | None]] = []

    def child(self, path: str, indexed: bool = False) -> Scope:
        """The scope of a block instance or group at `path` (a full path)."""
        return Scope(path + ".", indexed, self.names)

    def reserve(self, name: str) -> None:
        """Keep `name` from labels and automatic names (the network's `input`)."""
        self.names.closed[self.prefix + name] = None

    def used(self, local: str) -> bool:
        return self.prefix + local in self.names

    def claim(self, label: str | None, kind: str, span: Span, module: bool = True) -> str:
        """A fresh name: `label` if given and free, else an automatic one.

        A label already used is recorded in `duplicates` (label, span, first use) and an
        automatic name is handed out instead, so elaboration can go on.
        """
        if label is not None:
            blocked = self.blocked(label)
            if blocked is None:
                self.contain(label, span)
                self.names.closed[self.prefix + label] = span
                return self.prefix + label
            self.duplicates.append((label, span, blocked[0]))
            kind = label.partition(".")[0]
        while True:
            if self.indexed and module:
                name = str(self.index)
                self.index += 1
            else:
                n = self.counts[kind] = self.counts.get(kind, 0) + 1
                name = f"{kind}{n}" if kind in NUMBERED_KINDS or n > 1 else kind
            if self.prefix + name not in self.names:
                self.names.closed[self.prefix + name] = None
                return self.prefix + name

    def group(self, label: str, span: Span) -> tuple[str, Scope]:
        """The path and scope of the group `label`: a new one, or the one it had (a group reopened goes
        on numbering its children where it stopped, as appending to an nn.Sequential does). A container
        that labels made (`g.extra:`) becomes a group; a name of an op, block call or stage cannot."""
        blocked = self.blocked(label, group=True)
        if blocked is not None:
            self.duplicates.append((label, span, blocked[0]))
            path = self.claim(None, label.partition(".")[0], span, module=False)
            return path, self.child(path, indexed=True)
        self.contain(label, span)
        path = self.prefix + label
        self.names.open.setdefault(path, span)
        scope = self.names.groups.get(path)
        if scope is None:
            scope = self.names.groups[path] = self.child(path, indexed=True)
        return path, scope

    def blocked(self, local: str, group: bool = False) -> tuple[Span | None] | None:
        """What keeps `local` from being named here, as (where it was first named,), or None: a part of its
        path that names an op, a block call or a stage, or the path itself already named (a group may
        reopen a group, or a container that labels made)."""
        parts = local.split(".")
        for depth in range(1, len(parts)):
            path = self.prefix + ".".join(parts[:depth])
            if path in self.names.closed:
                return (self.names.closed[path],)
        path = self.prefix + local
        if path in self.names.closed or (path in self.names.open and not group):
            return (self.names.first(path),)
        return None

    def contain(self, local: str, span: Span) -> None:
        """`a.b.c` makes `a` and `a.b` containers (open: other labels may add to them)."""
        parts = local.split(".")
        for depth in range(1, len(parts)):
            self.names.open.setdefault(self.prefix + ".".join(parts[:depth]), span)


class TooLarge(Exception):
    """Raised when the network grows past MAX_NODES or MAX_WORK (elaborate.py reports E0504)."""


MAX_NODES = 250_000  # 3x a 10,000-block network; reached in about a second
# Block instances and ops created, together: blocks that create no ops never reach MAX_NODES, so
# `e0() x1000` inside `x1000` must be bounded by the work done, not by what it produced.
MAX_WORK = 300_000


class Walk:
    """The state and helpers of the elaboration walk, shared by its parts.

    The walk is one class, `elaborate._Elaborator`, assembled from one mixin per concern, each a
    subclass of this one: `binding.Binding` (a call matched to its template), `calls.CallElaborator`
    (ops, block calls, stages, `defaults`), `naming.Naming` (its base: names claimed and checked,
    groups) and `branches.BranchElaborator` (the multi-branch construct). What they share is declared
    here; `_Elaborator` supplies the walk itself (`body`, `element`, `policy`), `Naming` the names
    (`name`) and `Binding` the binding (`resolve`, `bind_parameters`), declared below as what every
    part may call.
    """

    library: Any  # library.Library: the definitions in scope
    reporter: Reporter
    graph: OpGraph
    symbols: frozenset[str]  # the names that are blocks
    seq: int  # execution order of the next node
    work: int  # ops and block instances made, against MAX_WORK

    # ---- shared helpers --------------------------------------------------------------------
    def error(
        self, ctx: Context, code: str, message: str, span: Span, help: str | None = None, notes: tuple[str, ...] = ()
    ) -> None:
        self.reporter.error(code, message, span, help=help, notes=notes, trace=ctx.trace)

    def fail(self, ctx: Context, exc: EvalError) -> None:
        self.error(ctx, exc.code, exc.message, exc.span, exc.help, exc.notes)

    def eval(self, expr: ast.Expr, ctx: Context) -> Value:
        return evaluate(expr, ctx.env, self.symbols)

    def count_work(self) -> None:
        self.work += 1
        if self.work > MAX_WORK or len(self.graph) >= MAX_NODES:
            raise TooLarge

    def add_node(self, node: str, ctx: Context, kind: str, span: Span, source: str | None, **fields: Any) -> str:
        self.count_work()
        self.seq += 1
        # The part (a summary row, a `--freeze` unit) is where the spec puts the op: its `stem` or `head`
        # section, else its top-level module (a stage `layer2`, a block call `trans1`, a group, an op).
        part = ctx.section or node.partition(".")[0]
        self.graph.add_node(
            node,
            Node(
                kind,
                span,
                trace=ctx.trace,
                stage=ctx.stage,
                block=ctx.block,
                block_type=ctx.block_type,
                part=part,
                seq=self.seq,
                **fields,
            ),
        )
        if source is not None:
            self.graph.add_edge(source, node, Role.MAIN)
        return node

    def failed(self, current: str, ctx: Context, span: Span) -> str:
        """A placeholder for something that failed: its shape is unknown, and so is everything after it."""
        return self.add_node(f"<failed {self.seq + 1}>", ctx, FAILED, span, current)

    # ---- the walk itself (elaborate._Elaborator) --------------------------------------------
    def body(self, body: ast.Body, current: str, scope: Scope, ctx: Context, top: bool = False) -> str:
        raise NotImplementedError  # pragma: no cover - elaborate._Elaborator

    def name(
        self,
        scope: Scope,
        ctx: Context,
        label: str | None,
        kind: str,
        span: Span,
        module: bool = True,
        label_span: Span | None = None,
        what: str = "label",
    ) -> str:
        raise NotImplementedError  # pragma: no cover - naming.Naming

    def policy(self, expr: ast.Expr, ctx: Context) -> str:
        raise NotImplementedError  # pragma: no cover - elaborate._Elaborator

    def shortcut(self, expr: ast.Expr, ctx: Context) -> Context:
        raise NotImplementedError  # pragma: no cover - elaborate._Elaborator

    # ---- binding (binding.Binding) -----------------------------------------------------------
    def resolve(self, name: str, ctx: Context, span: Span | None, seen: tuple[str, ...] = ()) -> Resolved | None:
        raise NotImplementedError  # pragma: no cover - binding.Binding

    def bind_parameters(
        self,
        template: ast.Template,
        defaults: dict[str, ast.Expr | None],
        positional: list[tuple[Value, Span]],
        keywords: dict[str, tuple[Value, Span]],
        span: Span,
        ctx: Context,
        what: str,
        shown: str | None = None,
        called: str | None = None,
    ) -> dict[str, Value] | None:
        raise NotImplementedError  # pragma: no cover - binding.Binding
