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
from .errors import EvalError, Reporter, Span
from .library import bundled_file_defining
from .ops import OPS
from .requirements import unmet
from .scope import Context
from .values import Value, evaluate, suggest


def missing_use_hint(name: str) -> str | None:
    """`bottleneck` is in the bundled blocks.res: the likely mistake is a missing `use` line."""
    where = bundled_file_defining(name)
    return f"`{name}` is defined in the bundled {where}: add `use \"{where}\"` at the top of this file" \
        if where else None


class Binder:
    def __init__(self, library, reporter: Reporter, symbols: frozenset[str]):
        self.library = library
        self.reporter = reporter
        self.symbols = symbols
        self.unmet_seen: set[tuple] = set()  # (requirement, values) already reported

    def error(self, ctx: Context, code: str, message: str, span: Span, help: str | None = None,
              notes: tuple[str, ...] = ()) -> None:
        self.reporter.error(code, message, span, help=help, notes=notes, trace=ctx.trace)

    def fail(self, ctx: Context, exc: EvalError) -> None:
        self.error(ctx, exc.code, exc.message, exc.span, exc.help, exc.notes)

    def resolve(self, name: str, ctx: Context, span: Span | None, seen: tuple[str, ...] = ()):
        """Follow aliases to a template; return (template, default expressions by name)."""
        definition = self.library.definitions.get(name)
        if definition is None:
            where = span or Span.point("<command line>", 1, 1)
            self.error(ctx, "E0207" if span is None else "E0202", f"no block or network named `{name}`", where,
                       help=missing_use_hint(name) or suggest(name, list(self.library.definitions) + list(OPS)))
            return None
        if name in seen:
            self.error(ctx, "E0503", "aliases refer to each other: " + " -> ".join(seen + (name,)),
                       definition.name_span)
            return None
        if isinstance(definition, ast.Template):
            return definition, {p.name: p.default for p in definition.params}
        target = self.resolve(definition.target, ctx, definition.target_span, seen + (name,))
        if target is None:
            return None
        template, defaults = target
        if template.kind != definition.kind:
            self.error(ctx, "E0208", f"{definition.kind} `{name}` cannot alias {template.kind} "
                       f"`{template.name}`", definition.target_span)
            return None
        defaults = dict(defaults)
        names = [p.name for p in template.params]
        for i, arg in enumerate(definition.args):
            key = arg.name if arg.name is not None else (names[i] if i < len(names) else None)
            if key not in defaults:
                self.error(ctx, "E0203" if arg.name else "E0204",
                           f"`{template.name}` has no parameter `{arg.name}`" if arg.name else
                           f"too many arguments for `{template.name}`", arg.span,
                           help=suggest(arg.name or "", names))
                return None
            defaults[key] = arg.value
        return template, defaults

    def bind(self, template: ast.Template, defaults: dict[str, ast.Expr | None], positional: list,
             keywords: dict[str, tuple[Value, Span]], span: Span, ctx: Context, what: str,
             shown: str | None = None) -> dict | None:
        """Parameters of one call: given values, then defaults evaluated in order."""
        names = [p.name for p in template.params]
        shown = shown or f"`{template.name}`"
        given: dict[str, Value] = {}
        ok = True
        if len(positional) > len(names):
            value, extra = positional[len(names)]
            self.error(ctx, "E0204", f"{what} `{template.name}` takes {len(names)} argument"
                       f"{'s' if len(names) != 1 else ''}, {len(positional)} given", extra,
                       notes=(f"`{template.name}` is defined at {template.name_span}",))
            ok = False
        for name, (value, _) in zip(names, positional):
            given[name] = value
        for key, (value, kspan) in keywords.items():
            if key not in defaults:
                self.error(ctx, "E0203", f"{what} {shown} has no parameter `{key}`", kspan,
                           help=suggest(key, names) or f"its parameters: {', '.join(names) or '(none)'}")
                ok = False
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
                self.error(ctx, "E0204", f"{what} `{template.name}` needs a value for `{param.name}`", span,
                           notes=(f"`{template.name}` is defined at {template.name_span}",))
                ok = False
                continue
            try:
                env[param.name] = evaluate(default, env, self.symbols)
            except EvalError as exc:
                failed_defaults.append(exc)
        if not ok:
            return None
        # Requirements first: `depth = 42` should be reported as the author's "depth must be one of ...",
        # not as the index or division errors it causes in the defaults and the body.
        given_spans = {name: where for name, (_, where) in zip(names, positional)}
        given_spans.update({key: where for key, (_, where) in keywords.items()})
        broken, errors = unmet(template, env, self.symbols, given_spans, defaults, span, self.reporter.sources,
                               complete=not failed_defaults)
        for req in broken:  # once per requirement and values: every stage passing `groups=32` is one mistake
            if (id(req.requirement), req.notes) not in self.unmet_seen:
                self.unmet_seen.add((id(req.requirement), req.notes))
                self.error(ctx, "E0211", req.message, req.span, notes=req.notes)
        if not broken and (errors or failed_defaults):
            inside = replace(ctx, trace=ctx.trace + ((span, f"{what} `{template.name}`"),))
            for exc in errors + failed_defaults:
                self.fail(inside, exc)
        return env if not (broken or errors or failed_defaults) else None

