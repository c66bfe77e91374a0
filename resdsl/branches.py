"""Elaborating `branches`: a block's multi-branch part (Res2Net, Selective Kernel, ResNeSt).

    branches(n, split = false, merge = sum, carry = false, groups = 1) { body } [attend { body }]

The body is elaborated once per branch, with `branch` bound to 0 .. n-1, so its
ops can depend on the branch (`conv c k3 d=(branch + 1)`) and be named after it
(`convs[branch]: conv ...`, Res2Net's nn.ModuleList). What each branch reads:

    split = false   the whole input (Selective Kernel without split_input)
    split = true    its 1/n share of the input's channels (`chunk` nodes; torch.split)
    split = [s0, s1, ...]   its own share: branch i reads the s_i channels after those of the
                    branches before it (torch.split(x, [s0, s1, ...], 1)); the sizes add up to C
    carry = true    that share plus the previous branch's output (Res2Net's hierarchy;
                    evaluated per branch, so `carry = branch > 0 and branch < n - 1` works)

and how they become one tensor (`merge`):

    sum, product,   element-wise over the n branches (all of one shape); `sum` is the op kind
    max             `add`, as a residual block's merge (the merges: resdsl/ops/merge.py)
    concat          along channels, branch 0 first
    select          attention across the branches (SKNet, ResNeSt's split attention): the
                    `attend` body turns the branches' sum into n·C logits laid out as
                    [groups][n][C/groups]; a softmax over the n branches (a sigmoid when n = 1)
                    weighs them, and the weighted branches are summed

The merges cost no parameters or MACs (torchvision's convention counts conv and fc only).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import syntax as ast
from .errors import EvalError, Span
from .graph import BRANCH_MERGES, Role
from .scope import Context, Scope, Walk
from .values import Symbol, Value, as_bool, as_int, show

MAX_BRANCHES = 64
OPTIONS = ("split", "merge", "carry", "groups")


@dataclass(frozen=True)
class BranchOptions:
    count: int
    split: bool | tuple[int, ...]  # equal shares (true), or each branch's number of channels
    merge: str
    carry: ast.Expr | None  # evaluated per branch
    groups: int


class BranchElaborator(Walk):
    """The walk's `branches` construct (scope.Walk)."""

    def branch_options(self, el: ast.Branches, ctx: Context) -> BranchOptions:
        """The construct's options, checked (raises EvalError at the faulty argument)."""
        count = None
        given: dict[str, tuple[ast.Expr, Span]] = {}
        for arg in el.args:
            if arg.name is None:
                if count is not None or given:
                    raise EvalError(
                        "E0204",
                        "`branches` takes one positional argument, the number of branches",
                        arg.span,
                        help="e.g. `branches(2, merge = sum) { ... }`",
                    )
                count = as_int(self.eval(arg.value, ctx), arg.value.span)
                if not 1 <= count <= MAX_BRANCHES:
                    raise EvalError(
                        "E0303", f"`branches` takes 1 to {MAX_BRANCHES} branches, not {count}", arg.value.span
                    )
                continue
            if arg.name not in OPTIONS:
                raise EvalError(
                    "E0203", f"`branches` has no option `{arg.name}`", arg.span, help="options: " + ", ".join(OPTIONS)
                )
            if arg.name in given:
                raise EvalError(
                    "E0205",
                    f"option `{arg.name}` is given twice",
                    arg.span,
                    notes=(f"first given at {given[arg.name][1]}",),
                )
            given[arg.name] = (arg.value, arg.span)
        if count is None:
            raise EvalError(
                "E0204",
                "`branches` needs the number of branches",
                el.span,
                help="e.g. `branches(2, merge = sum) { ... }`",
            )

        def value(name: str) -> Value | None:
            return self.eval(given[name][0], ctx) if name in given else None

        split: bool | tuple[int, ...] = False
        if "split" in given:
            chosen, where = value("split"), given["split"][0].span
            split = split_sizes(chosen, count, where) if isinstance(chosen, tuple) else as_bool(chosen, where)
        merge: Value | None = Symbol("sum")
        if "merge" in given:
            expr = given["merge"][0]
            # a bare name that is not a parameter is read as a merge's name, so `merge = add` says what exists
            merge = Symbol(expr.id) if isinstance(expr, ast.Name) and expr.id not in ctx.env else value("merge")
        if not isinstance(merge, Symbol) or merge.name not in BRANCH_MERGES:
            raise EvalError(
                "E0302",
                f"`{show(merge)}` is not a branch merge",
                given["merge"][0].span,
                help="merges: " + ", ".join(BRANCH_MERGES),
            )
        groups = 1
        if "groups" in given:
            groups = as_int(value("groups"), given["groups"][0].span)
            if groups < 1:
                raise EvalError("E0303", f"`groups` must be at least 1, not {groups}", given["groups"][0].span)
            if merge.name != "select":
                raise EvalError(
                    "E0203", "`groups` lays out the attention logits of `merge = select` only", given["groups"][1]
                )
        if merge.name == "select" and el.attend is None:
            raise EvalError(
                "E0208",
                "`merge = select` needs an `attend { ... }` body after the branches",
                el.span,
                help="the attend body turns the branches' sum into n×C attention logits, e.g. "
                "`attend { avgpool -> conv 32 k1 -> bn -> relu -> conv 2 * c k1 }`",
            )
        if merge.name != "select" and el.attend is not None:
            raise EvalError(
                "E0208", f"an `attend` body belongs to `merge = select`, not `merge = {merge.name}`", el.attend.span
            )
        carry = given["carry"][0] if "carry" in given else None
        if carry is not None and not split:
            raise EvalError(
                "E0208",
                "`carry` adds the previous branch's output to this branch's share of the "
                "channels: it needs `split = true`",
                given["carry"][1],
            )
        return BranchOptions(count, split, merge.name, carry, groups)

    def branches(self, el: ast.Branches, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        """Add the branches' nodes and their merge; return the merge (or `current` after an error)."""
        try:
            opts = self.branch_options(el, ctx)
        except EvalError as exc:
            self.fail(ctx, exc)
            return current
        outputs: list[str] = []
        for index in range(opts.count):
            env = {**ctx.env, "branch": index}
            inner = replace(ctx, env=env, env_key=Context.key_of(env))
            source = current
            if opts.split:
                name = self.name(scope, ctx, None, "chunk", el.span, module=False)
                share: dict[str, int | tuple[int, ...]] = {"parts": opts.count, "index": index}
                if isinstance(opts.split, tuple):  # uneven shares: each branch's number of channels
                    share["sizes"] = opts.split
                source = self.add_node(name, inner, "chunk", el.span, current, attrs=share)
            if opts.carry is not None:
                try:
                    carry = as_bool(self.eval(opts.carry, inner), opts.carry.span)
                except EvalError as exc:
                    self.fail(inner, exc)
                    return current
                if carry and not outputs:
                    self.error(
                        inner,
                        "E0208",
                        "branch 0 has no previous branch to carry from",
                        opts.carry.span,
                        help="e.g. `carry = branch > 0`",
                    )
                    return current
                if carry:  # Res2Net: sp = sp + spx[i]
                    name = self.name(scope, ctx, None, "sum", el.span, module=False)
                    node = self.add_node(name, inner, BRANCH_MERGES["sum"].name, el.span, None, attrs={"carry": True})
                    self.graph.add_edge(source, node, Role.MAIN, index=0)
                    self.graph.add_edge(outputs[-1], node, Role.BRANCH, index=1)
                    source = node
            outputs.append(self.body(el.body, source, scope, inner))
        if len(set(outputs)) != len(outputs):
            if not self.reporter.failed:
                self.error(
                    ctx,
                    "E0208",
                    "two branches give the same tensor: without `split`, a branch with no ops is the input itself",
                    el.body.span,
                    help="give each branch its own ops, or split the input",
                )
            return current
        if opts.merge == "select":
            assert el.attend is not None  # branch_options refuses `merge = select` without an attend body
            total = outputs[0]
            if opts.count > 1:
                total = self.merge_branches(scope, ctx, None, "sum", el.span, outputs)
            logits = self.body(el.attend, total, scope, ctx)
            if logits == total:
                if not self.reporter.failed:
                    self.error(ctx, "E0208", "`attend` needs the ops that make the attention logits", el.attend.span)
                return current
            node = self.merge_branches(
                scope, ctx, link.label, "select", el.span, outputs, attrs={"groups": opts.groups}
            )
            self.graph.add_edge(logits, node, Role.WEIGHTS)
            return node
        return self.merge_branches(scope, ctx, link.label, opts.merge, el.span, outputs)

    def merge_branches(
        self,
        scope: Scope,
        ctx: Context,
        label: str | None,
        word: str,
        span: Span,
        branches: list[str],
        attrs: dict | None = None,
    ) -> str:
        """The merge `merge = word` asks for (its op kind: `sum` is `add`), named after the word."""
        name = self.name(scope, ctx, label, word, span, module=False)
        node = self.add_node(name, ctx, BRANCH_MERGES[word].name, span, None, attrs=attrs or {}, fit=ctx.fit)
        for index, branch in enumerate(branches):
            self.graph.add_edge(branch, node, Role.MAIN if index == 0 else Role.BRANCH, index=index)
        return node


def split_sizes(value: tuple, count: int, span: Span) -> tuple[int, ...]:
    """`split = [s0, s1, ...]`: one whole number of channels, at least 1, per branch (E0302, E0303)."""
    sizes = tuple(as_int(item, span) for item in value)
    if len(sizes) != count:
        raise EvalError(
            "E0303",
            f"`split` gives {len(sizes)} sizes {show(value)} to {count} branches",
            span,
            help=f"give one number of channels per branch: {count} of them",
        )
    if min(sizes) < 1:
        raise EvalError("E0303", f"`split` gives a branch {min(sizes)} channels; each needs at least 1", span)
    return sizes
