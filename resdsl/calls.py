"""Elaborating calls: ops, block calls and stages (the call side of elaborate.py's walk).

A block call binds its parameters once per distinct set of values (binding.py does the binding; this
memoises it), and expands the template's body in a fresh naming scope. A stage repeats a block call:
the first repetition takes the stage's stride, and an argument that uses `repetition` is evaluated
per block. `defaults` statements add keyword arguments to later calls of a name. An op call is bound
against its definition in resdsl/ops/, memoised on (call, parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from . import syntax as ast
from .binding import FromDefaults, missing_use_hint
from .errors import EvalError, Span
from .graph import Role
from .naming import REPETITION, Naming, naming_part, with_repetition  # noqa: F401 - naming_part: elaborate.py's
from .ops import OPS, BoundArg, bind
from .ops.base import given_options, no_option
from .scope import Context, Resolved, Scope
from .values import Symbol, Value, as_int, suggest, type_name, value_key

MAX_DEPTH = 48
MAX_REPEAT = 100_000
SHORTHANDS = {"s": "stride", "g": "groups", "k": "kernel", "d": "dilation", "p": "padding"}


@dataclass(frozen=True)
class StageInfo:
    name: str
    block: str
    repeats: int
    stride: int | None
    policy: str
    span: Span


@dataclass(frozen=True)
class BlockInstance:
    """One block call as elaborated: where it sits, which template, and every parameter's value.

    The ejected source (`compile --emit python`) is written from these: one class per
    template, instantiated with `arguments`.
    """

    path: str  # module path of the instance, e.g. "layer2.0"
    called: str  # the name as written at the call (an alias such as `se_bottleneck`)
    template: ast.Template  # the block definition it expands (aliases followed)
    arguments: dict[str, Value]  # every parameter of the template, bound
    policy: str  # the shortcut policy in force at the call
    span: Span  # the call site
    parent: str | None = None  # the block instance whose body makes the call (None: the network's)
    seq: float = 0  # execution order among the ops (graph.Node.seq) and the other calls


class CallElaborator(Naming):
    """The walk's calls (scope.Walk): ops, block calls, stages and `defaults` statements."""

    stages: list[StageInfo]
    instances: list[BlockInstance]
    op_cache: dict[tuple, dict[str, Value] | None]  # (call, parameters) -> its arguments; None: it failed
    failed_calls: set[tuple]  # (call, parameters) that failed: skipped when repeated
    resolved: dict[str, Resolved]  # a block name -> (template, defaults), resolved once
    bound: dict[tuple, dict[str, Value]]  # (name, arguments) -> the parameters, bound once

    def defaults(self, stmt: ast.Defaults, ctx: Context) -> Context:
        """`defaults unit(k = v, ...)`: evaluated once, merged into each later call of `unit` in this body."""
        for block, span in stmt.blocks:
            held = ctx.env.get(block)
            if not (
                isinstance(held, Symbol) and held.name in self.symbols if block in ctx.env else block in self.symbols
            ):
                what = "an op" if block in OPS else "a parameter" if block in ctx.env else "not a block"
                raise EvalError(
                    "E0202",
                    f"`defaults` sets arguments of block calls, and `{block}` is {what}",
                    span,
                    help=suggest(block, list(self.symbols))
                    if what == "not a block"
                    else "name a block, or a parameter holding one (`defaults unit(...)`)",
                )
        positional, keywords = self.arguments(stmt.args, ctx)
        if positional:
            raise EvalError(
                "E0204",
                "`defaults` takes keyword arguments only",
                positional[0][1],
                help=f"e.g. `defaults {stmt.blocks[0][0]}(groups = 32)`",
            )
        given = dict(ctx.defaults)
        for block, _ in stmt.blocks:
            given[block] = {**given.get(block, {}), **keywords}
        return replace(ctx, defaults=tuple(given.items()))

    def call(self, call: ast.Call, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        key = (id(call), ctx.env_key)
        if key in self.failed_calls:  # reported the first time; `{ nosuch() } x100000` stays cheap
            return self.failed(current, ctx, call.span)
        attempts = self.reporter.attempts
        out = self._call(call, link, current, scope, ctx)
        if out == current and self.reporter.attempts != attempts:
            self.failed_calls.add(key)
        return out

    def _call(self, call: ast.Call, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        name = call.name
        if name in ctx.env:
            value = ctx.env[name]
            if not isinstance(value, Symbol) or value.name not in self.symbols:
                self.error(
                    ctx, "E0302", f"`{name}` is a parameter holding {type_name(value)}, not a block", call.name_span
                )
                return current
            name = value.name
        if name in OPS and name not in self.symbols:
            if call.repeat is not None:
                self.error(
                    ctx,
                    "E0208",
                    f"only blocks can be repeated, and `{name}` is an op",
                    call.repeat.span,
                    help="wrap the ops in a `block` to repeat them",
                )
            return self.op(call, link, current, scope, ctx)
        if name not in self.library.definitions:
            self.error(
                ctx,
                "E0202",
                f"no op or block named `{name}`",
                call.name_span,
                help=missing_use_hint(name) or suggest(name, list(OPS) + list(self.symbols)),
            )
            return current
        # In a stage's arguments `repetition` is the block's index in the stage (0, 1, ...): per-block
        # widths from a list (`widths[repetition]`), or an option for the first block only.
        per_repetition = call.repeat is not None and any(ast.mentions(a.value, REPETITION) for a in call.args)
        try:
            positional, keywords = self.arguments(call.args, self.with_repetition(ctx, 0) if per_repetition else ctx)
        except EvalError as exc:
            self.fail(ctx, exc)
            return current
        keywords = self.with_defaults(call.name, keywords, ctx)
        if call.repeat is None:
            path = self.name(scope, ctx, link.label, name, call.span, label_span=link.label_span)
            return self.instantiate(name, positional, keywords, call.span, path, current, ctx, scope)
        return self.stage(name, call, link, positional, keywords, current, scope, ctx)

    def arguments(
        self, args: tuple[ast.Arg, ...], ctx: Context
    ) -> tuple[list[tuple[Value, Span]], dict[str, tuple[Value, Span]]]:
        positional: list[tuple[Value, Span]] = []
        keywords: dict[str, tuple[Value, Span]] = {}
        for arg in args:
            value = self.eval(arg.value, ctx)
            if arg.name is None:
                positional.append((value, arg.span))
                continue
            key = SHORTHANDS.get(arg.name, arg.name)
            if key in keywords:
                raise EvalError(
                    "E0205", f"argument `{key}` is given twice", arg.span, notes=(f"first given at {keywords[key][1]}",)
                )
            keywords[key] = (value, arg.span)
        return positional, keywords

    def stage(
        self, name: str, call: ast.Call, link: ast.Link, positional, keywords, current: str, scope: Scope, ctx: Context
    ) -> str:
        repeat = call.repeat
        assert repeat is not None  # a stage is a block call with `x N`
        stride = None
        try:
            count = as_int(self.eval(repeat.count, ctx), repeat.count.span)
            if not 1 <= count <= MAX_REPEAT:
                raise EvalError(
                    "E0303", f"a stage repeats its block 1 to {MAX_REPEAT:,} times, not {count}", repeat.count.span
                )
            for option in repeat.options:
                if option.name not in ("s", "stride"):
                    raise EvalError(
                        "E0203",
                        f"a stage has no option `{option.name}`",
                        option.span,
                        help="stage options: `s2` / `stride=2` (the first block's stride) and `shortcut A|B|C|D`",
                    )
                if stride is not None:
                    raise EvalError("E0205", "the stage's stride is given twice", option.span)
                stride = as_int(self.eval(option.value, ctx), option.span)
                if stride < 1:
                    raise EvalError("E0303", f"stride must be at least 1, not {stride}", option.span)
                stride_span = option.span
            if len(repeat.shortcuts) > 1:
                raise EvalError("E0205", "the stage's shortcut policy is given twice", repeat.shortcuts[1].span)
            # a policy (`shortcut A`) or a fit (`shortcut nearest`) in force inside the stage
            chosen = self.shortcut(repeat.shortcuts[0], ctx) if repeat.shortcuts else ctx
            policy = chosen.policy
        except EvalError as exc:
            self.fail(ctx, exc)
            return current
        label = link.label
        naming = link.label_parts[0][0] if link.label_parts else None  # a part that names each repetition
        if isinstance(naming, ast.Interpolation) and not label:
            assert link.label_span is not None  # the parser gives every label its span
            self.error(
                ctx,
                "E0208",
                f'a stage whose label names its repetitions ("{naming.text}") needs a name for the stage itself',
                link.label_span,
                help=f'put the stage\'s name before it: `stage."{naming.text}": ...` makes stage.<each name>',
            )
            return current
        while label is None or (link.label is None and scope.used(label)):
            scope.stages += 1
            label = f"layer{scope.stages}"
        path = self.name(scope, ctx, label, label, link.span, label_span=link.label_span, what="stage")
        self.stages.append(StageInfo(path, name, count, stride, policy, link.span))
        inner = replace(ctx, stage=path, policy=policy, fit=chosen.fit)
        per_repetition = any(ast.mentions(a.value, REPETITION) for a in call.args)
        names = self.repetition_names(naming, count, path, ctx) if isinstance(naming, ast.Interpolation) else None
        if names is None and isinstance(naming, ast.Interpolation):
            return current
        for i in range(count):
            if i and per_repetition:
                try:
                    positional, keywords = self.arguments(call.args, self.with_repetition(ctx, i))
                except EvalError as exc:
                    self.fail(ctx, exc)
                    return current
                keywords = self.with_defaults(call.name, keywords, ctx)
            kw = dict(keywords)
            if stride is not None and i == 0:
                if "stride" in kw:
                    self.error(ctx, "E0205", "stride is given both to the block and to the stage", stride_span)
                kw["stride"] = (stride, stride_span)
            attempts = self.reporter.attempts
            block = f"{path}.{names[i] if names else i}"
            current = self.instantiate(name, positional, kw, call.span, block, current, inner, scope)
            if self.reporter.attempts != attempts:
                # A repetition that failed: its output is unknown, and the next ones would only repeat its
                # errors (reported once anyway), so `b(8) x 100000` with a typo in `b` stops here, at once.
                return self.failed(current, ctx, call.span)
        return current

    @staticmethod
    def with_defaults(name: str, keywords: dict, ctx: Context) -> dict:
        """A call's keyword arguments over the `defaults` statement's for its name (the name as written).
        Those of the statement are `FromDefaults`: an alias's own binding wins over them (binding.py)."""
        for block, given in ctx.defaults:
            if block == name:
                return {**{k: FromDefaults(v) for k, v in given.items()}, **keywords}
        return keywords

    @staticmethod
    def with_repetition(ctx: Context, index: int) -> Context:
        return with_repetition(ctx, index)

    def instantiate(
        self, name: str, positional, keywords, span: Span, path: str, current: str, ctx: Context, scope: Scope
    ) -> str:
        if name in ctx.calls:
            cycle = " -> ".join(ctx.calls[ctx.calls.index(name) :] + (name,))
            self.error(
                ctx,
                "E0503",
                f"block `{name}` calls itself: {cycle}",
                span,
                help="a block cannot contain itself; use a stage (`x N`) to repeat it",
            )
            return current
        if len(ctx.calls) >= MAX_DEPTH:
            self.error(ctx, "E0105", f"blocks nested more than {MAX_DEPTH} deep", span)
            return current
        resolved = self.resolved.get(name) or self.resolve(name, ctx, span)
        if resolved is None:
            return current
        self.resolved[name] = resolved
        template, defaults = resolved
        if template.kind != "block":
            self.error(ctx, "E0208", f"`{name}` is a network; only blocks can be used inside a network", span)
            return current
        env = self.bind(name, template, defaults, positional, keywords, span, ctx)
        if env is None:
            return current
        self.count_work()
        self.instances.append(BlockInstance(path, name, template, env, ctx.policy, span, ctx.block, self.seq + 0.5))
        # Context(...) rather than dataclasses.replace: this runs once per block instance.
        inner = Context(
            env,
            ctx.policy,
            ctx.trace + ((span, f"block `{name}` ({path})"),),
            ctx.calls + (name,),
            ctx.stage,
            path,
            name,
            ctx.section,
            Context.key_of(env),
            ctx.norm,
            ctx.norm_span,
            fit=ctx.fit,
        )
        return self.body(template.body, current, scope.child(path), inner, top=True)

    def bind(
        self, name: str, template: ast.Template, defaults, positional, keywords, span: Span, ctx: Context
    ) -> dict[str, Value] | None:
        """The parameters of a call, bound once per distinct set of values (only successes are kept:
        a failure is reported where it happens, and `failed_calls` skips its repetitions)."""
        try:
            key = (
                name,
                tuple(value_key(v) for v, _ in positional),
                tuple(
                    (k, value_key(v), isinstance(given, FromDefaults))
                    for k, given in keywords.items()
                    for v, _ in (given,)
                ),
            )
            hash(key)
        except TypeError:  # pragma: no cover - every value of the language is hashable
            key = None
        if key is not None and key in self.bound:
            return self.bound[key]
        env = self.bind_parameters(template, defaults, positional, keywords, span, ctx, what="block", called=name)
        if env is not None and key is not None:
            self.bound[key] = env
        return env

    def op(self, call: ast.Call, link: ast.Link, current: str, scope: Scope, ctx: Context) -> str:
        # Every repetition of a block evaluates its ops with the same parameters;
        # memoising on (op, parameters) keeps large networks linear and cheap.
        # `bn` builds the norm a `norm` statement chose (named as written: bn1, as timm's norm_layer)
        kind = ctx.norm if call.name == "bn" else call.name
        key = (id(call), ctx.env_key, kind)
        if key in self.op_cache:
            attrs = self.op_cache[key]
        else:
            attrs = self.op_cache[key] = self.op_attributes(call, ctx, kind)
        if attrs is None:  # reported when first worked out
            return self.failed(current, ctx, call.span)
        node = self.name(scope, ctx, link.label, call.name, call.span, label_span=link.label_span)
        if attrs.get("to_input"):  # `upsample to_input`: a resize to the network input's size (ops/upsample.py)
            fields = {"mode": attrs["mode"], "align_corners": attrs["align_corners"]}
            resized = self.add_node(node, ctx, "resize", call.span, current, attrs=fields)
            if current != "input":  # (on the input itself: its own size, read through its one edge)
                self.graph.add_edge("input", resized, Role.SIZE)
            return resized
        return self.add_node(node, ctx, kind, call.span, current, attrs=dict(attrs))

    def op_attributes(self, call: ast.Call, ctx: Context, kind: str) -> dict[str, Value] | None:
        spec = OPS[kind]
        try:
            bound, positional = [], 0
            for arg in call.args:
                expr = arg.value
                word = expr.id if arg.name is None and isinstance(expr, ast.Name) and expr.id not in ctx.env else None
                flag = spec.option(word) if word is not None else None
                if flag is not None and flag.flag:
                    bound.append(BoundArg(None, None, arg.span, bare=word))
                    continue
                bare = expr.id if isinstance(expr, ast.Name) and expr.id in OPS and expr.id not in ctx.env else None
                try:
                    value = None if bare else self.eval(expr, ctx)
                except EvalError as exc:
                    # An unknown bare word where no value can go (every positional slot is taken), or
                    # one close to an option's name, was meant as a flag: `conv 8 k3 gain`.
                    if (
                        exc.code == "E0201"
                        and arg.name is None
                        and isinstance(expr, ast.Name)
                        and (positional >= len(spec.positional) or suggest(expr.id, spec.option_words()))
                    ):
                        raise no_option(spec, expr.id, arg.span) from None
                    raise
                positional += arg.name is None
                bound.append(BoundArg(arg.name, value, arg.span, bare=bare))
            attrs = bind(spec, bound, call.span)  # checked, validated and completed by the op's definition
            advice = spec.advice(attrs, given_options(spec, bound))
            if advice is not None:
                code, message, help = advice
                self.reporter.warn(code, message, call.span, help=help, trace=ctx.trace)
            return attrs
        except EvalError as exc:
            if kind != call.name:  # the user wrote `bn`: say why it is checked as another norm
                exc = EvalError(
                    exc.code,
                    exc.message,
                    exc.span,
                    exc.help,
                    exc.notes + (f"`bn` is `{kind}` here, as the `norm` statement at {ctx.norm_span} says",),
                )
            self.fail(ctx, exc)
            return None
