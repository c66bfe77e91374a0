"""AST -> op graph: evaluate parameters, expand blocks and stages, name every op.

The graph has one node per op (plus `input` and one node per residual merge);
edges carry tensors in program order. Shapes are not known here: shapes.py
infers them afterwards and inserts the projection shortcuts.

Node names follow torchvision's module paths, so weights line up by name:
`conv1`, `bn1`, `layer1.0.conv2`, `layer2.0.downsample.0`, `fc`. Within a
scope conv and bn are numbered from 1 (`conv1`, `bn1`); other kinds take
their bare name the first time and a number after (`relu`, `relu2`).
Children of a named group `g { ... }` are numbered 0, 1, ... as in an
nn.Sequential. Stages without a label are `layer1`, `layer2`, ...
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import syntax as ast
from .binding import Binding
from .branches import BranchElaborator

# SHORTHANDS, BlockInstance and StageInfo are imported from here by the ejector and network.py
from .calls import MAX_REPEAT, SHORTHANDS, BlockInstance, CallElaborator, StageInfo, naming_part  # noqa: F401
from .errors import EvalError, Reporter, Span
from .graph import Node, OpGraph, Role
from .near_keywords import BODY_KEYWORDS, keyword_like
from .outputs import OutputPoint
from .points import PointElaborator
from .scope import MAX_NODES, MAX_WORK, Context, Scope, TooLarge
from .values import NORMS, POLICIES, RESAMPLE_MODES, Symbol, Value, as_bool, as_int, show


@dataclass(frozen=True)
class Elaboration:
    """The output of this stage: the graph before shape inference."""

    name: str
    graph: OpGraph
    output: str
    parameters: dict[str, Value]
    stages: tuple[StageInfo, ...]
    span: Span
    template: ast.Template
    instances: tuple[BlockInstance, ...]
    definitions: dict[str, ast.Definition]  # every block and network in scope, by name (aliases too)
    outputs: tuple[OutputPoint, ...] = ()  # the `output` statement's points (none: `output` is the one)


def elaborate(
    library,
    network_name: str,
    overrides: dict[str, Value],
    override_spans: dict[str, Span],
    reporter: Reporter,
    input_shape: tuple[int, ...] | None = None,
) -> Elaboration | None:
    return _Elaborator(library, reporter).network(network_name, overrides, override_spans, input_shape)


# The options of `residual(...)`: how the shortcut the policy inserts is made (merge_options)
RESIDUAL_OPTIONS = ("project_from", "project_norm", "project_kernel", "project_bias", "zeros_at_end")


class _Elaborator(CallElaborator, BranchElaborator, PointElaborator, Binding):
    """The walk: the network's body, its statements and elements (this class), calls (calls.py),
    branches (branches.py) and binding (binding.py), over the state scope.Walk declares."""

    def __init__(self, library, reporter: Reporter):
        self.library = library
        self.reporter = reporter
        self.graph = OpGraph()
        self.symbols = frozenset(name for name, d in library.definitions.items() if d.kind == "block")
        self.stages: list[StageInfo] = []
        self.instances: list[BlockInstance] = []
        self.seq = 0
        self.work = 0
        self.op_cache: dict[tuple, dict[str, Value] | None] = {}  # None: this op failed with these parameters
        # (call, parameters) that failed without creating anything: a repetition of the same call fails
        # the same way, and was reported already, so it is skipped rather than worked out again.
        self.failed_calls: set[tuple] = set()
        self.unmet_seen: set[tuple] = set()  # (requirement, values) already reported (binding.py)
        # Every repetition of a stage calls the same template with the same values: the name is
        # resolved and the parameters bound once, so a block's cost is its ops, not its binding.
        self.resolved: dict[str, tuple] = {}
        self.bound: dict[tuple, dict[str, Value]] = {}
        self.outputs: list[OutputPoint] = []  # `output` and `from` (points.py)
        self.output_span: Span | None = None
        self.tapped = False

    # ---- network ---------------------------------------------------------------
    def network(
        self,
        name: str,
        overrides: dict[str, Value],
        override_spans: dict[str, Span],
        input_shape: tuple[int, ...] | None,
    ) -> Elaboration | None:
        root = Context({})
        resolved = self.resolve(name, root, None)
        if resolved is None:
            return None
        template, defaults = resolved
        keywords = {k: (v, override_spans.get(k, template.name_span)) for k, v in overrides.items()}
        shown = f"`{name}`" if name == template.name else f"`{name}` (an alias of `{template.name}`)"
        env = self.bind_parameters(
            template, defaults, [], keywords, template.name_span, root, what="network", shown=shown
        )
        if env is None:
            return None
        ctx = Context(env, env_key=Context.key_of(env))
        statements = list(template.body.statements)
        inputs = [s for s in statements if isinstance(s, ast.Input)]
        for extra in inputs[1:]:
            self.error(
                ctx,
                "E0209",
                "a network has one `input` statement",
                extra.span,
                notes=(f"the first is at {inputs[0].span}",),
            )
        if input_shape is None:
            if not inputs:
                self.error(
                    ctx,
                    "E0209",
                    f"network `{name}` has no `input` statement",
                    template.name_span,
                    help="add e.g. `input 3x224x224` (C×H×W) or `input 64` (a vector) as its first line",
                )
                return None
            input_shape = self.input_shape(inputs[0], ctx)
            if input_shape is None:
                return None
        first_op = next((s for s in statements if isinstance(s, ast.Chain)), None)
        if inputs and first_op is not None and statements.index(first_op) < statements.index(inputs[0]):
            self.error(ctx, "E0209", "`input` must come before the first op", inputs[0].span)
        self.graph.add_node(
            "input", Node("input", inputs[0].span if inputs else template.span, part="input", shape=tuple(input_shape))
        )
        scope = Scope("")
        scope.reserve("input")
        try:
            output = self.body(template.body, "input", scope, ctx, top=True)
        except TooLarge:
            what = (
                f"more than {MAX_NODES:,} ops"
                if len(self.graph) >= MAX_NODES
                else f"more than {MAX_WORK:,} ops and block instances to expand"
            )
            self.error(ctx, "E0504", f"network `{name}` has {what}", template.name_span, help="lower the repeat counts")
            return None
        if self.outputs:
            output = self.outputs[0].node
        if (self.outputs or self.tapped) and not self.reporter.failed:
            self.check_reached([o.node for o in self.outputs] or [output])
        return Elaboration(
            name,
            self.graph,
            output,
            env,
            tuple(self.stages),
            template.span,
            template,
            tuple(self.instances),
            dict(self.library.definitions),
            tuple(self.outputs),
        )

    def input_shape(self, stmt: ast.Input, ctx: Context) -> tuple[int, ...] | None:
        """`input 3x224x224`; a factor that is a list gives several sizes (`input chans x [size] * dims`), so
        one spec serves sequences, images and volumes, as MONAI's `spatial_dims`."""
        dims = []
        try:
            for expr in stmt.dims:
                value = self.eval(expr, ctx)
                for item in value if isinstance(value, tuple) else (value,):
                    dim = as_int(item, expr.span)
                    if not 1 <= dim <= 2**31 - 1:
                        raise EvalError("E0303", f"input size {dim} must be between 1 and {2**31 - 1:,}", expr.span)
                    dims.append(dim)
        except EvalError as exc:
            self.fail(ctx, exc)
            return None
        if not 1 <= len(dims) <= 4:
            self.error(
                ctx,
                "E0209",
                f"`input` takes a vector width, C×L, C×H×W or C×D×H×W, not {len(dims)} sizes",
                stmt.span,
                help="for example `input 64`, `input 12x1000`, `input 3x224x224` or `input 1x32x64x64`",
            )
            return None
        return tuple(dims)

    # ---- bodies -------------------------------------------------------------------
    def body(self, body: ast.Body, current: str, scope: Scope, ctx: Context, top: bool = False) -> str:
        """Elaborate statements in order; `top` for a template's own body, where `require` belongs."""
        for stmt in body.statements:
            if isinstance(stmt, ast.Require):
                if not top:  # checked when the template is called (bind), before the body is expanded
                    self.error(
                        ctx,
                        "E0208",
                        "`require` belongs at the top of a block or network body",
                        stmt.span,
                        help="conditions on parameters hold for the whole template",
                    )
            elif isinstance(stmt, ast.Shortcut):
                try:
                    ctx = self.shortcut(stmt.policy, ctx)
                except EvalError as exc:
                    self.fail(ctx, exc)
            elif isinstance(stmt, ast.Norm):
                try:
                    ctx = replace(ctx, norm=self.norm_kind(stmt.kind, ctx), norm_span=stmt.span)
                except EvalError as exc:
                    self.fail(ctx, exc)
            elif isinstance(stmt, ast.Defaults):
                try:
                    ctx = self.defaults(stmt, ctx)
                except EvalError as exc:
                    self.fail(ctx, exc)
            elif isinstance(stmt, ast.Output):
                self.output_statement(stmt, scope, ctx)
            elif isinstance(stmt, ast.Input):
                if scope.prefix or ctx.block is not None:
                    self.error(ctx, "E0208", "`input` belongs at the top of a network", stmt.span)
            else:
                for link in stmt.links:
                    current = self.element(link, current, scope, ctx)
        return current

    def shortcut(self, expr: ast.Expr, ctx: Context) -> Context:
        """`shortcut B` sets the policy for a shortcut that is larger than its main path or has other
        channels (§13); `shortcut nearest` (a resampling mode) sets the fit, its mirror, for an input of a
        merge that is smaller than the others (shapes.plan_fit, §22). Each keeps the other in force."""
        value = self.eval(expr, ctx)
        if isinstance(value, Symbol) and value.name in RESAMPLE_MODES:
            return replace(ctx, fit=value.name)
        return replace(ctx, policy=self.policy(expr, ctx))

    def policy(self, expr: ast.Expr, ctx: Context) -> str:
        value = self.eval(expr, ctx)
        if not isinstance(value, Symbol) or value.name not in POLICIES:
            raise EvalError(
                "E0302",
                f"`{show(value)}` is not a shortcut policy",
                expr.span,
                help="policies: A (zero-pad), B (project when needed), C (always project), "
                "D (avg-pool + project), identity, none; or a fit for a smaller input: nearest, linear, "
                "bilinear, trilinear",
            )
        return value.name

    def norm_kind(self, expr: ast.Expr, ctx: Context) -> str:
        value = self.eval(expr, ctx)
        if not isinstance(value, Symbol) or value.name not in NORMS:
            raise EvalError(
                "E0302",
                f"`{show(value)}` is not a norm",
                expr.span,
                help=f"norms: {', '.join(NORMS)} (e.g. `norm gn`: every `bn` here becomes a GroupNorm)",
            )
        return value.name

    def element(self, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        """One link of a chain. An element that failed (reported) without creating anything is a
        `failed` node: what follows it has an unknown input and is skipped by shape inference, so a
        mistake is not followed by errors about shapes it made up (docs/errors.md)."""
        attempts = self.reporter.attempts
        out = self._element(link, current, scope, ctx)
        if out == current and self.reporter.attempts != attempts:
            return self.failed(current, ctx, link.element.span)
        return out

    def _element(self, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        element = link.element
        if link.bad is not None:  # `"a.b": conv ...`: reported, and the op named automatically
            self.bad_name(link.bad, ctx)
            link = replace(link, label=None, label_span=None, label_parts=(), bad=None)
        if link.indexed:  # `convs[branch]: conv ...` is the op `convs.<branch>`
            # `s1."b{repetition + 1}": unit x4`: the last part names each repetition, the rest is the stage
            # (calls.py makes the names, and finds the part in the link's label_parts)
            naming = naming_part(link)
            label = self.label_path(link.label_parts[:-1] if naming else link.label_parts, ctx)
            if label is None:
                return current
            link = replace(link, label=label, label_parts=naming)
        if link.label is not None and isinstance(element, (ast.Group, ast.Section, ast.Cond, ast.Tap)):
            what = {
                ast.Group: "a group is named by its own name",
                ast.Section: "a section adds no name",
                ast.Cond: "an `if` adds no name",
                ast.Tap: "`from` makes no tensor, it names one",
            }[type(element)]
            assert link.label_span is not None  # the parser gives every label its span
            self.error(
                ctx,
                "E0208",
                f"the label `{link.label}` names nothing here: {what}",
                link.label_span,
                help="labels name ops, block calls, stages and residual merges",
            )
        if isinstance(element, ast.Call):
            return self.call(element, link, current, scope, ctx)
        if isinstance(element, ast.Residual):
            return self.residual(element, link, current, scope, ctx)
        if isinstance(element, ast.Cond):
            return self.cond(element, current, scope, ctx)
        if isinstance(element, ast.Tap):
            return self.tap(element, current, scope, ctx)
        if isinstance(element, ast.Branches):
            return self.branches(element, link, current, scope, ctx)
        if isinstance(element, ast.Section):
            if scope.prefix or ctx.block is not None:
                self.error(ctx, "E0208", f"`{element.kind}` sections belong at the top of a network", element.span)
            out = self.body(element.body, current, scope, replace(ctx, section=element.kind))
            return out
        assert isinstance(element, ast.Group)
        if element.word:  # a plain name, not a quoted or dotted one: perhaps a misspelt keyword
            self.keyword_like(element, ctx)
        return self.group(element, current, scope, ctx)  # naming.py

    def keyword_like(self, group: ast.Group, ctx: Context) -> None:
        """W0201: `Residual { ... }` or `residul { ... }` is a named group, and adds nothing (near_keywords.py)."""
        word = keyword_like(group.name)
        if word is not None:
            start = group.span
            where = Span(start.path, start.line, start.column, start.line, start.column + len(group.name))
            self.reporter.warn(
                "W0201",
                f"`{group.name} {{ ... }}` is a group named `{group.name}`, not `{word}`",
                where,
                help=f"did you mean `{word}`?",
                notes=(
                    f"a group runs its body in sequence, below the name `{group.name}`; `{word}` {BODY_KEYWORDS[word]}",
                    "rename the group if the name is meant",
                ),
                trace=ctx.trace,
            )

    def cond(self, cond: ast.Cond, current: str, scope: Scope, ctx: Context) -> str:
        try:
            test = as_bool(self.eval(cond.test, ctx), cond.test.span)
        except EvalError as exc:
            self.fail(ctx, exc)
            return current
        if test:
            return self.body(cond.then, current, scope, ctx)
        if isinstance(cond.orelse, ast.Cond):
            return self.cond(cond.orelse, current, scope, ctx)
        if cond.orelse is not None:
            return self.body(cond.orelse, current, scope, ctx)
        return current

    def residual(self, element: ast.Residual, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        options = self.merge_options(element, ctx)
        first = self.seq  # nodes after this one are on the main path
        main = self.body(element.body, current, scope, ctx)
        if main == current:  # nothing on the main path (or only ops that failed)
            if not self.reporter.failed:
                self.error(
                    ctx,
                    "E0208",
                    f"`{'residual' if element.merge == 'add' else 'dense'}` needs a main path",
                    element.span,
                    help="put at least one op between the braces",
                )
            return current
        if element.merge == "add" and ctx.policy == "none":
            return main  # a plain network: the block keeps its main path only
        tap = None
        if options is not None and "project_from" in options:
            label, where = options["project_from"]
            tap = scope.prefix + label
            if tap not in self.graph or self.graph.nodes[tap].seq <= first:
                self.error(
                    ctx,
                    "E0201",
                    f"no op labelled `{label}` on this residual's main path",
                    where,
                    help="label the op to project from, e.g. `bn -> preact: relu`",
                )
                tap = None
        written = None
        if element.shortcut is not None:
            # the shortcut path the block writes: from the tap (`project_from`) or the input; with no ops
            # it is the input itself, as an identity shortcut
            start = tap or current
            out = self.body(element.shortcut, start, scope, ctx)
            written = out if out != start else current
        merge = self.name(scope, ctx, link.label, element.merge, element.span, module=False, label_span=link.label_span)
        shortcut = scope.claim(None, "downsample", element.span, module=False)
        node = self.add_node(
            merge,
            ctx,
            element.merge,
            element.span,
            main,
            policy=ctx.policy,
            fit=ctx.fit,
            norm=ctx.norm,
            shortcut_name=shortcut,
            project_from=tap,
            written=written is not None,
            shortcut=None if written is None else "identity" if written == current else "written",
            project_norm=options.get("project_norm", True) if options else True,
            project_kernel=options.get("project_kernel", 1) if options else 1,
            project_bias=options.get("project_bias", False) if options else False,
            zeros_at_end=options.get("zeros_at_end", False) if options else False,
        )
        self.graph.add_edge(written or current, node, Role.SHORTCUT)
        return node

    def merge_options(self, element: ast.Residual, ctx: Context) -> dict | None:
        """`residual(project_from = LABEL, project_norm = false, project_kernel = 3, project_bias = true,
        zeros_at_end = true)`: where an inserted projection starts (a labelled op of the main path, e.g. the
        pre-activation of ResNet v2), whether it has a BN, the kernel of a strided one (SENet-154's 3×3),
        whether its conv has a bias (MONAI's bias_downsample), and whether option A's zero channels all
        follow the input's (MONAI, fb.resnet.torch) instead of being split before and after."""
        options: dict = {}
        for arg in element.args:
            try:
                if element.merge != "add" or arg.name not in RESIDUAL_OPTIONS:
                    raise EvalError(
                        "E0203",
                        f"`{'residual' if element.merge == 'add' else 'dense'}` has no "
                        + (f"option `{arg.name}`" if arg.name else "positional options"),
                        arg.span,
                        help="`residual` takes `project_from = LABEL`, `project_norm = true|false`, "
                        "`project_kernel = K`, `project_bias = true|false` and `zeros_at_end = true|false`"
                        if element.merge == "add"
                        else "`dense` takes no options",
                    )
                if arg.name in options:
                    raise EvalError("E0205", f"option `{arg.name}` is given twice", arg.span)
                if arg.name == "project_from":
                    if not isinstance(arg.value, ast.Name):
                        raise EvalError(
                            "E0302",
                            "`project_from` names a labelled op of the main path",
                            arg.span,
                            help="e.g. `residual(project_from = preact) { bn -> preact: relu ... }`",
                        )
                    options[arg.name] = (arg.value.id, arg.value.span)
                elif arg.name == "project_kernel":
                    kernel = as_int(self.eval(arg.value, ctx), arg.value.span)
                    if kernel < 1 or kernel % 2 == 0:
                        raise EvalError(
                            "E0303",
                            f"`project_kernel` must be odd and at least 1, not {kernel}",
                            arg.value.span,
                            help="an odd kernel keeps the strided shortcut centred",
                        )
                    options[arg.name] = kernel
                else:
                    options[arg.name] = as_bool(self.eval(arg.value, ctx), arg.value.span)
            except EvalError as exc:
                self.fail(ctx, exc)
                return None
        return options
