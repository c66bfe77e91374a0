"""Binding a call to its template: aliases followed, arguments matched, defaults and requirements.

`resolve` turns a name into (template, default expressions), following aliases
(`network resnet50 = resnet(depth = 50)`); `bind` evaluates one call's
parameters: given values first, then defaults in order, then the template's
`require` statements (requirements.py). Diagnostics carry the call chain of
the context they are raised in.
"""

from __future__ import annotations

from dataclasses import replace

from . import syntax as ast
from .errors import EvalError, Span
from .evaluation import evaluate
from .library import bundled_file_defining
from .ops import OPS
from .requirements import unmet
from .scope import Context, Resolved, Walk
from .values import Value, same_value, show, suggest


class FromDefaults(tuple):
    """A keyword argument (value, span) a `defaults` statement gives a call, not the call itself.

    Precedence, strongest first: the call's own arguments, the arguments an alias binds
    (`block se_bottleneck = bottleneck(se_ratio = 16)`), the `defaults` statement's, the template's
    defaults. An alias's binding is what the alias is, so `defaults unit(se_ratio = se_ratio)` in
    resnet.res leaves `unit = se_bottleneck` an SE block; a `defaults` value that asks for something
    else than both the alias and the template's own default is a conflict, E0205."""


def missing_use_hint(name: str) -> str | None:
    """`bottleneck` is in the bundled blocks.res: the likely mistake is a missing `use` line."""
    where = bundled_file_defining(name)
    return f'`{name}` is defined in the bundled {where}: add `use "{where}"` at the top of this file' if where else None


class Binding(Walk):
    """The walk's binding (scope.Walk): a name resolved to its template, a call's parameters bound."""

    unmet_seen: set[tuple]  # (requirement, values) already reported

    def resolve(self, name: str, ctx: Context, span: Span | None, seen: tuple[str, ...] = ()) -> Resolved | None:
        """Follow aliases to a template; return (template, default expressions by name)."""
        definition = self.library.definitions.get(name)
        if definition is None:
            where = span or Span.point("<command line>", 1, 1)
            self.error(
                ctx,
                "E0207" if span is None else "E0202",
                f"no block or network named `{name}`",
                where,
                help=missing_use_hint(name) or suggest(name, list(self.library.definitions) + list(OPS)),
            )
            return None
        if name in seen:
            self.error(
                ctx, "E0503", "aliases refer to each other: " + " -> ".join(seen + (name,)), definition.name_span
            )
            return None
        if isinstance(definition, ast.Template):
            return definition, {p.name: p.default for p in definition.params}
        target = self.resolve(definition.target, ctx, definition.target_span, seen + (name,))
        if target is None:
            return None
        template, defaults = target
        if template.kind != definition.kind:
            self.error(
                ctx,
                "E0208",
                f"{definition.kind} `{name}` cannot alias {template.kind} `{template.name}`",
                definition.target_span,
            )
            return None
        defaults = dict(defaults)
        names = [p.name for p in template.params]
        for i, arg in enumerate(definition.args):
            key = arg.name if arg.name is not None else (names[i] if i < len(names) else None)
            if key is None or key not in defaults:
                self.error(
                    ctx,
                    "E0203" if arg.name else "E0204",
                    f"`{template.name}` has no parameter `{arg.name}`"
                    if arg.name
                    else f"too many arguments for `{template.name}`",
                    arg.span,
                    help=suggest(arg.name or "", names),
                )
                return None
            defaults[key] = arg.value
        return template, defaults

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
        """Parameters of one call: given values, then defaults evaluated in order. `called` is the
        name the call used (an alias's), for the arguments a `defaults` statement gives (FromDefaults)."""
        names = [p.name for p in template.params]
        bound = {p.name for p in template.params if defaults.get(p.name) is not p.default}  # by an alias
        yielded: dict[str, tuple[Value, Span]] = {}  # `defaults` arguments the alias's binding overrides
        shown = shown or f"`{template.name}`"
        given: dict[str, Value] = {}
        ok = True
        if len(positional) > len(names):
            value, extra = positional[len(names)]
            self.error(
                ctx,
                "E0204",
                f"{what} `{template.name}` takes {len(names)} argument"
                f"{'s' if len(names) != 1 else ''}, {len(positional)} given",
                extra,
                notes=(f"`{template.name}` is defined at {template.name_span}",),
            )
            ok = False
        for name, (value, _) in zip(names, positional):
            given[name] = value
        shared = [k for k in keywords if isinstance(keywords[k], FromDefaults)]
        lacking = [k for k in shared if k not in defaults]
        if lacking:  # one error for all: a block made to serve as resnet.res's `unit` lacks them together
            self.error(
                ctx,
                "E0203",
                f"{what} {shown} has no parameter{'s' if len(lacking) > 1 else ''} "
                + ", ".join(f"`{k}`" for k in lacking)
                + ", which a `defaults` statement gives every call "
                "of it here",
                keywords[lacking[0]][1],
                notes=(
                    f"the statement gives: {', '.join(shared)}",
                    f"{shown}'s parameters: {', '.join(names) or '(none)'}",
                ),
                help="a block used here takes these as keyword parameters with defaults that leave them off "
                f"(`{lacking[0]} = ...`), as blocks.res's `basic` and `bottleneck` do "
                "(docs/language.md, §7)",
            )
            ok = False
        for key, (value, kspan) in keywords.items():
            if key not in defaults:
                if key not in lacking:
                    self.error(
                        ctx,
                        "E0203",
                        f"{what} {shown} has no parameter `{key}`",
                        kspan,
                        help=suggest(key, names) or f"its parameters: {', '.join(names) or '(none)'}",
                    )
                ok = False
            elif isinstance(keywords[key], FromDefaults) and (key in bound or key in given):
                if key not in given:  # the call's own argument wins silently; the alias's, unless in conflict
                    yielded[key] = (value, kspan)
            elif key in given:
                self.error(ctx, "E0205", f"parameter `{key}` of `{template.name}` is given twice", kspan)
                ok = False
            else:
                given[key] = value
        env = dict(given)
        failed_defaults: list[EvalError] = []
        for param in template.params:
            if param.name in env:
                continue
            default = defaults[param.name]
            if default is not None and not ok:
                continue  # a default may use the parameter that is missing: one error is enough
            if default is None:
                self.error(
                    ctx,
                    "E0204",
                    f"{what} `{template.name}` needs a value for `{param.name}`",
                    span,
                    notes=(f"`{template.name}` is defined at {template.name_span}",),
                )
                ok = False
                continue
            try:
                env[param.name] = evaluate(default, env, self.symbols)
            except EvalError as exc:
                failed_defaults.append(exc)
        if not ok:
            return None
        if called is not None and called != template.name:
            self.alias_conflicts(template, defaults, env, positional, keywords, yielded, called, ctx)
        # Requirements first: `depth = 42` should be reported as the author's "depth must be one of ...",
        # not as the index or division errors it causes in the defaults and the body.
        given_spans = {name: where for name, (_, where) in zip(names, positional)}
        given_spans.update({key: where for key, (_, where) in keywords.items()})
        broken, errors = unmet(
            template,
            env,
            self.symbols,
            given_spans,
            defaults,
            span,
            self.reporter.sources,
            complete=not failed_defaults,
        )
        for req in broken:  # once per requirement and values: every stage passing `groups=32` is one mistake
            if (id(req.requirement), req.notes) not in self.unmet_seen:
                self.unmet_seen.add((id(req.requirement), req.notes))
                self.error(ctx, "E0211", req.message, req.span, notes=req.notes)
        if not broken and (errors or failed_defaults):
            inside = replace(ctx, trace=ctx.trace + ((span, f"{what} `{template.name}`"),))
            for problem in errors + failed_defaults:
                self.fail(inside, problem)
        return env if not (broken or errors or failed_defaults) else None

    def alias_conflicts(
        self,
        template: ast.Template,
        defaults: dict,
        env: dict,
        positional: list,
        keywords: dict,
        yielded: dict,
        called: str,
        ctx: Context,
    ) -> None:
        """An alias's binding against the call's own argument (W0202: the argument wins, as documented)
        and against a `defaults` statement's (E0205 when that asks for a third value: neither wins)."""
        names = [p.name for p in template.params]
        explicit = {name: where for name, (_, where) in zip(names, positional)}
        explicit.update({k: where for k, (_, where) in keywords.items() if not isinstance(keywords[k], FromDefaults)})
        for param in template.params:
            key = param.name
            if defaults.get(key) is param.default or not (key in explicit or key in yielded):
                continue
            try:
                aliased = evaluate(defaults[key], env, self.symbols)
                own = evaluate(param.default, env, self.symbols) if param.default is not None else None
            except EvalError:
                continue
            alias, where = self.binding_of(called, key, names)
            if key in explicit:
                if not same_value(env[key], aliased):
                    self.reporter.warn(
                        "W0202",
                        f"`{key} = {show(env[key])}` replaces the `{key} = {show(aliased)}` that `{alias}` binds",
                        explicit[key],
                        trace=ctx.trace,
                        notes=(f"`{alias}` binds it at {where}",),
                        help=f"call `{template.name}` itself to choose `{key}`, or drop the argument to keep "
                        f"what `{alias}` is",
                    )
                continue
            value, vspan = yielded[key]
            if not same_value(value, aliased) and (own is None or not same_value(value, own)):
                self.error(
                    ctx,
                    "E0205",
                    f"`{key}` has two values: `{show(value)}` from a `defaults` statement and "
                    f"`{show(aliased)}` that `{alias}` binds",
                    vspan,
                    notes=(
                        f"`{alias}` binds it at {where}; an alias's binding wins over `defaults`, "
                        f"which only replaces `{template.name}`'s own default ({show(own)})",
                    ),
                    help=f"to have `{key} = {show(value)}`, use `{template.name}` itself (e.g. "
                    f"`unit = {template.name}`) rather than `{alias}`",
                )

    def binding_of(self, called: str, key: str, names: list[str]) -> tuple[str, Span | None]:
        """The alias (`called` or one it targets) whose argument binds `key`, and where."""
        name = called
        while True:
            definition = self.library.definitions.get(name)
            if not isinstance(definition, ast.Alias):
                return called, None
            for i, arg in enumerate(definition.args):
                if (arg.name if arg.name is not None else names[i] if i < len(names) else None) == key:
                    return name, arg.span
            name = definition.target
