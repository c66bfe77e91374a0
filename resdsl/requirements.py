"""`require` statements: what a block's or network's parameters must satisfy.

    block basic(width, stride = 1, groups = 1, base_width = 64) {
        require groups == 1 and base_width == 64, "basic blocks support only groups=1 and base_width=64"
        ...
    }

A requirement is checked when the template is called, right after its
parameters are bound and before its body is expanded, so a bad value is
reported once, at the place that gave it (the argument, the `--set`, the
alias), in the template author's words, instead of as the errors it would
cause further in (an index out of range, a channel count of zero).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from . import syntax as ast
from .errors import EvalError, Span
from .evaluation import evaluate
from .values import Value, as_bool, show


@dataclass(frozen=True)
class Unmet:
    """A requirement that does not hold, and where to point."""

    requirement: ast.Require
    span: Span  # the argument (or default, or call) that gave the offending value
    message: str
    notes: tuple[str, ...]


def requirements(template: ast.Template) -> list[ast.Require]:
    return [s for s in template.body.statements if isinstance(s, ast.Require)]


def names_in(expr: ast.Expr) -> Iterator[str]:
    """Every name an expression reads, in order of appearance."""
    if isinstance(expr, ast.Name):
        yield expr.id
    elif isinstance(expr, ast.Ternary):  # the test first, as it is read
        for part in (expr.test, expr.then, expr.orelse):
            yield from names_in(part)
    else:
        for child in ast.children(expr):
            yield from names_in(child)


def unmet(
    template: ast.Template,
    env: Mapping[str, Value],
    symbols,
    given: Mapping[str, Span],
    defaults: Mapping[str, ast.Expr | None],
    call_span: Span,
    sources: Mapping[str, str],
    complete: bool = True,
) -> tuple[list[Unmet], list[EvalError]]:
    """The requirements of `template` that `env` breaks, and errors evaluating them.

    `given` holds the span of each argument passed at the call; a value that came from an
    alias's default (`network resnet18 = resnet(depth = 18)`) is located at that default.
    With `complete=False` (some default failed to evaluate), a requirement that reads an
    unbound parameter is skipped rather than reported as an unknown name.
    """
    broken: list[Unmet] = []
    errors: list[EvalError] = []
    for req in requirements(template):
        read = list(dict.fromkeys(n for n in names_in(req.test) if n in {p.name for p in template.params}))
        if not complete and any(n not in env for n in read):
            continue
        try:
            holds = as_bool(evaluate(req.test, env, symbols), req.test.span)
        except EvalError as exc:
            errors.append(exc)
            continue
        if holds:
            continue
        span = next((given[n] for n in read if n in given), None)
        if span is None:  # a default written at an alias (`resnet(depth = 42)`) is where the value came from
            span = next(
                (
                    default.span
                    for n in read
                    if (default := defaults.get(n)) is not None and default.span.path != template.span.path
                ),
                call_span,
            )
        condition = _text(req.test.span, sources) or "the condition"
        values = ", ".join(f"{n} = {show(env[n])}" for n in read if n in env)
        notes = (f"`{template.name}` requires `{condition}` ({req.span})",) + ((f"here {values}",) if values else ())
        message = req.message or f"`{template.name}` requires `{condition}`, which does not hold"
        broken.append(Unmet(req, span, message, notes))
    return broken, errors


def _text(span: Span, sources: Mapping[str, str]) -> str | None:
    """The source text of a one-line span (a multi-line condition is shown by its location only)."""
    text = sources.get(span.path)
    if text is None or span.line != span.end_line:
        return None
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return None
    return lines[span.line - 1][span.column - 1 : span.end_column - 1] or None
