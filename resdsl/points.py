"""Elaborating named points: `from POINT` (a chain that starts at a labelled tensor) and `output`.

A point is written as a label is (`layer3`, `aux.head`, `convs[2]`) and names, in the scope where it
is written, a labelled op (its tensor), or a block call, stage or group (the tensor of the last op
made in it: what it gives), or a section (`stem`: its last op). It must already be made where it is
written, so a point always names a tensor computed before.

    from layer3 -> aux_classifier { conv 256 k3 -> bn -> relu -> conv classes k1 }
    output out: classifier, aux: aux_classifier

`from` is a side branch: the chain goes on from the point's tensor, and the tensor that was current
before it is left as it was (so it must reach an output some other way). `output` lists what the
network returns (outputs.py); it belongs to the network's own body, once. With either, every op must
reach an output: an op whose result nothing reads (a head left behind a side branch) is E0212.
"""

from __future__ import annotations

from . import syntax as ast
from .errors import Span
from .graph import FAILED
from .naming import Naming
from .outputs import OutputPoint
from .scope import Context, Scope


class PointElaborator(Naming):
    """The walk's named points (scope.Walk): `from` and `output`."""

    outputs: list[OutputPoint]
    output_span: Span | None  # the `output` statement taken (None: the network returns its last tensor)
    tapped: bool  # a `from` was elaborated: some tensors may feed nothing

    def point_node(self, path: str, scope: Scope) -> str | None:
        """The node whose tensor the point `path` of `scope` is, among the nodes made so far."""
        full = scope.prefix + path
        nodes = self.graph.nodes
        if full in nodes and nodes[full].kind != FAILED:
            return full
        inside = full + "."
        for name in reversed(nodes):  # the last op made in the container: its output
            if name.startswith(inside):
                return name if nodes[name].kind != FAILED else None
        if not scope.prefix:  # a section (`stem`, `head`) names no container, but is a part
            for name in reversed(nodes):
                if nodes[name].part == path and name != "input":
                    return name if nodes[name].kind != FAILED else None
        return None

    def unknown_point(self, ctx: Context, path: str, span: Span, what: str) -> None:
        self.error(
            ctx,
            "E0201",
            f"no op, block, stage or group named `{path}` before this {what}",
            span,
            help="a point names something made above it in the same body: label an op (`feat: relu`), "
            "or name a block call, stage or group",
        )

    def tap(self, element: ast.Tap, current: str, scope: Scope, ctx: Context) -> str:
        """`from POINT`: the chain goes on from the point's tensor."""
        path = self.label_path(element.parts, ctx)
        if path is None:
            return current
        node = self.point_node(path, scope)
        if node is None:
            self.unknown_point(ctx, path, element.span, "`from`")
            return current
        self.tapped = True
        return node

    def output_statement(self, stmt: ast.Output, scope: Scope, ctx: Context) -> None:
        """`output [KEY:] POINT, ...`: what the network returns (outputs.py)."""
        if scope.prefix or ctx.block is not None:
            self.error(
                ctx,
                "E0208",
                "`output` belongs to a network's own body",
                stmt.span,
                help="a block gives one tensor; name the block's points in the network's `output`",
            )
            return
        if self.output_span is not None:
            self.error(
                ctx,
                "E0208",
                "a network has one `output` statement",
                stmt.span,
                notes=(f"the first is at {self.output_span}",),
            )
            return
        self.output_span = stmt.span
        keyed = [item.key is not None for item in stmt.items]
        if any(keyed) and not all(keyed):
            missing = stmt.items[keyed.index(False)]
            self.error(
                ctx,
                "E0208",
                "either every output has a key (an ordered dict) or none has (a list)",
                missing.span,
                help="write `KEY: point` for every entry, or drop the keys",
            )
            return
        keys: dict[str, Span] = {}
        for item in stmt.items:
            if item.key is not None:
                if item.key in keys:
                    self.error(
                        ctx,
                        "E0206",
                        f"the output key `{item.key}` is used twice",
                        item.span,
                        notes=(f"first used at {keys[item.key]}",),
                    )
                    continue
                keys[item.key] = item.span
            path = self.label_path(item.parts, ctx)
            if path is None:
                continue
            node = self.point_node(path, scope)
            if node is None:
                self.unknown_point(ctx, path, item.point_span, "`output`")
                continue
            self.outputs.append(OutputPoint(item.key, path, node, item.span))

    def check_reached(self, returned: list[str]) -> None:
        """E0212 for the first op whose result reaches no output (with `from` or `output` only: without
        them every op feeds the next one). One error, with the count of the others."""
        seen = set(returned)
        stack = list(returned)
        pred = self.graph.pred
        while stack:
            for u in pred[stack.pop()]:
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
        unread = [n for n, d in self.graph.nodes.items() if n not in seen and d.kind not in ("input", FAILED)]
        if not unread:
            return
        first = self.graph.nodes[unread[0]]
        others = len(unread) - 1
        if first.trace:  # made inside a block call: point at the outermost call, in the network's body
            span, what = first.trace[0][0], f"`{first.part}`"
        else:
            span, what = first.span, f"`{first.kind}` ({unread[0]})"
        self.reporter.error(
            "E0212",
            f"{what} reaches no output: nothing reads its result",
            span,
            help="list it (or what it feeds) in the network's `output` statement, or remove it",
            notes=(f"{others} more op{'s' if others > 1 else ''} after it reach no output",) if others else (),
        )
