"""Naming in the elaboration walk: labels and group names evaluated, claimed in their scope, and checked.

A label or a group name is a path (labels.py reads it): its indices are evaluated here
(`convs[branch]` is `convs.0`, `convs.1`, ...), then scope.py claims it, against every name of the
network so far (`scope.Names`). A dotted path makes containers on its way (`trunk_output` of
`trunk_output.block1`), which later labels and groups may add to; a group named again reopens the
group. What would clash in the compiled module is refused where it is written: a name used twice,
a path through an op, a block call or a stage (E0206), and a part that would replace an attribute of
torch.nn.Module or cannot be written in Python (E0210). A quoted part with `{expr}` in it is made here
from the values in scope, and a stage whose label ends in such a part reading `repetition` names each
of its blocks with it (`s1."b{repetition + 1}"`: s1.b1, s1.b2, ...; docs/language.md §24).
"""

from __future__ import annotations

from dataclasses import replace

from . import syntax as ast
from .errors import EvalError, Span
from .reserved import quoted_name_problem, reserved_reason
from .scope import Context, Scope, Walk
from .values import as_int, show

MAX_INDEX = 100_000  # as many as a stage's repetitions (calls.MAX_REPEAT), which an index often names
REPETITION = "repetition"  # bound in a stage's arguments: the index of the block being made


def naming_part(link: ast.Link) -> ast.LabelParts:
    """The last part of a stage's label when it names the stage's repetitions (it reads `repetition`:
    `trunk_output.block1."block1-{repetition}": regnet_bottleneck(w) x7` makes `trunk_output.block1.block1-0`
    ... `block1-6`, as torchvision names them), as a one-part LabelParts; () for any other label."""
    element = link.element
    if not link.label_parts or not isinstance(element, ast.Call) or element.repeat is None:
        return ()
    name, index = link.label_parts[-1]
    return (link.label_parts[-1],) if index is None and ast.part_mentions(name, REPETITION) else ()


def with_repetition(ctx: Context, index: int) -> Context:
    """`ctx` with `repetition` bound to a stage's block index."""
    env = {**ctx.env, REPETITION: index}
    return replace(ctx, env=env, env_key=Context.key_of(env))


class Naming(Walk):
    """The walk's names (scope.Walk): `name` for ops, merges, block calls and stages, `group` for groups."""

    def index(self, expr: ast.Expr, ctx: Context) -> int | None:
        """The index of `name[index]` (a whole number from 0), or None after reporting why not."""
        try:
            index = as_int(self.eval(expr, ctx), expr.span)
            if not 0 <= index <= MAX_INDEX:
                raise EvalError("E0303", f"a name's index must be between 0 and {MAX_INDEX:,}, not {index}", expr.span)
            return index
        except EvalError as exc:
            self.fail(ctx, exc)
            return None

    def label_path(self, parts: ast.LabelParts, ctx: Context) -> str | None:
        """`stages[0].blocks` -> "stages.0.blocks", `inner_blocks[3][0]` -> "inner_blocks.3.0" (None after
        reporting an index that is not a whole number from 0)."""
        names = []
        for name, expr in parts:
            if isinstance(name, ast.Interpolation):
                made = self.interpolate(name, ctx)
                if made is None:
                    return None
                names.append(made)
            elif name:
                names.append(name)
            if expr is not None:
                index = self.index(expr, ctx)
                if index is None:
                    return None
                names.append(str(index))
        return ".".join(names)

    def interpolate(self, part: ast.Interpolation, ctx: Context) -> str | None:
        """`"block1-{repetition}"` -> "block1-0": each value written as the language shows it; None after
        reporting an expression that fails or a name no module can have (E0210, as a quoted name's)."""
        try:
            made = "".join(piece if isinstance(piece, str) else show(self.eval(piece, ctx)) for piece in part.pieces)
        except EvalError as exc:
            if exc.code == "E0201" and "`repetition`" in exc.message:
                exc = EvalError(
                    exc.code,
                    exc.message,
                    exc.span,
                    help="`repetition` names a stage's blocks in the last part of the stage's label: "
                    '`"s1"."b{repetition + 1}": unit(64) x4`',
                    notes=exc.notes,
                )
            self.fail(ctx, exc)
            return None
        problem = quoted_name_problem(made)
        if problem is not None:
            self.error(ctx, "E0210", f'"{part.text}" makes "{made}", which cannot name a module: {problem}', part.span)
            return None
        return made

    def repetition_names(self, part: ast.Interpolation, count: int, path: str, ctx: Context) -> list[str] | None:
        """The name of each of a stage's `count` blocks, from the part of its label that reads `repetition`;
        None after reporting one that fails, cannot name a module, or repeats another (E0206)."""
        names: list[str] = []
        first: dict[str, int] = {}
        for i in range(count):
            made = self.interpolate(part, with_repetition(ctx, i))
            if made is None:
                return None
            if made in first:
                self.error(
                    ctx,
                    "E0206",
                    f'"{part.text}" names repetitions {first[made]} and {i} of the stage both `{made}`',
                    part.span,
                    help="each block of a stage needs a name of its own: use `repetition` so that they differ",
                )
                return None
            first[made] = i
            if not made.isdigit() and reserved_reason(made) is not None:  # reported once, for the first
                becomes = f"the block becomes the attribute `{path}.{made}` of the compiled torch module"
                self.check_reserved(f"{path}.{made}", [made], becomes, part.span, ctx)
                return None
            names.append(made)
        return names

    def group(self, group: ast.Group, current: str, scope: Scope, ctx: Context) -> str:
        """`name { ... }`: the body, named below the group's path (reopened if the scope has it already)."""
        if group.bad is not None:  # reported; the body is named in the enclosing scope instead
            self.bad_name(group.bad, ctx)
            return self.body(group.body, current, scope, ctx)
        label = self.label_path(group.parts, ctx)
        if label is None:
            return current
        where = group.name_span or group.span
        path, inner = scope.group(label, where)
        self.report_duplicates(scope, ctx)
        self.check_reserved(path, path[len(scope.prefix) :].split("."), "group", where, ctx)
        return self.body(group.body, current, inner, ctx)

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
        """Claim the next name in `scope` (a label if given); report duplicates and reserved names."""
        name = scope.claim(label, kind, span, module)
        self.report_duplicates(scope, ctx)
        # Every part of a label is an attribute of a module (`a.forward:` is `forward` of the container `a`)
        # or, for a merge, a variable of the compiled forward (`self:` would shadow its `self`); an
        # automatic name is a kind's or a block's, checked once as the first part.
        local = name[len(scope.prefix) :]
        if not module and label is None:
            return name
        segments = local.split(".") if label is not None and local == label else [local.partition(".")[0]]
        becomes = (
            f"the {what if label is not None else 'block'} becomes the attribute `{name}` of the compiled torch module"
            if module
            else f"the `{kind}` merge is named `{name}` in the compiled module's forward"
        )
        self.check_reserved(name, segments, becomes, label_span or span, ctx)
        return name

    def bad_name(self, bad: ast.BadName, ctx: Context) -> None:
        """E0210 for a quoted name that no module can have (labels.py found it)."""
        self.error(
            ctx,
            "E0210",
            f"{bad.written} cannot name a module: {bad.reason}",
            bad.span,
            help='a dot separates the parts of a path: `trunk_output."block1-0"`'
            if "." in bad.written
            else "a quoted name holds one module name: letters, digits and signs such as `-`",
        )

    def report_duplicates(self, scope: Scope, ctx: Context) -> None:
        while scope.duplicates:
            label, where, first = scope.duplicates.pop()
            self.error(
                ctx,
                "E0206",
                f"the name `{label}` is already used in this scope",
                where,
                notes=(f"first used at {first}",) if first else (),
            )

    def check_reserved(self, name: str, segments: list[str], becomes: str, where: Span, ctx: Context) -> None:
        """E0210 for the first of `segments` (the parts of `name` the spec wrote) that cannot name a module;
        `becomes` says what the name is in the compiled module ("group": the group's attribute)."""
        if becomes == "group":
            becomes = f"the group becomes the attribute `{name}` of the compiled torch module"
        for segment in segments:
            reason = None if segment.isdigit() else reserved_reason(segment)
            if reason is not None:
                self.error(
                    ctx,
                    "E0210",
                    f"`{segment}` cannot name a module: {reason}",
                    where,
                    notes=(becomes,),
                    help=f"rename it, e.g. `{segment.strip('_') or 'part'}1`",
                )
                return
