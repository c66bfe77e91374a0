"""The pipeline: spec text or file -> a checked `Network`.

    text -> parse -> library (imports) -> elaborate -> shapes -> analysis -> Network

`load` and `loads` are resdsl's Python API (re-exported by the package).
"""

from __future__ import annotations

import gc
import math
import numbers
import os
from pathlib import Path
from typing import Any

from .analysis import annotate, parts
from .elaborate import elaborate
from .errors import EvalError, Reporter, Span, SpecError, UsageError, sorted_by_position
from .evaluation import evaluate
from .library import find_spec, read_library
from .network import Network
from .outputs import OutputPoint, make_outputs
from .parse import decode, parse_expression, read_source
from .shapes import check_input_shape, infer_graph
from .values import LIMIT, Symbol, Value


def load(
    path_or_name: str | os.PathLike,
    *,
    network: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    **params: Any,
) -> Network:
    """Check a spec file (or a bundled spec by name) and return its `Network`.

    Keyword arguments override network parameters: `load("resnet50", classes=10)`.
    Raises `SpecError` with located diagnostics, `UsageError` if no such spec.
    """
    path = find_spec(path_or_name)
    display = _display_path(path)
    try:
        data = read_source(str(path), display)
    except OSError as exc:
        raise UsageError(f"cannot read {display}: {exc.strerror}") from None
    return compile_text(decode(data, display), display, network=network, input_shape=input_shape, params=params)


def loads(
    text: str,
    name: str | None = None,
    *,
    path: str = "<string>",
    input_shape: tuple[int, ...] | None = None,
    **params: Any,
) -> Network:
    """Check spec text; `name` picks the network when the text defines several."""
    return compile_text(text, path, network=name, input_shape=input_shape, params=params)


def compile_text(
    text: str,
    path: str,
    *,
    network: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    params: dict[str, Any] | None = None,
) -> Network:
    if not isinstance(text, str):
        raise TypeError(f"a spec is text (str), not {type(text).__name__}")
    if input_shape is not None:
        input_shape = check_input_shape(input_shape)  # ValueError with the reason, before any work
    reporter = Reporter()
    reporter.sources[path] = text
    # The pipeline allocates many small dicts and frees none of them until it
    # returns; pausing the cyclic collector meanwhile saves a third of the time
    # on large networks (benchmarks/check_speed.py).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _pipeline(text, path, network, input_shape, params or {}, reporter)
    except RecursionError:
        reporter.error("E0105", "spec too deeply nested to check", Span.point(path, 1, 1))
        raise SpecError(reporter.diagnostics, reporter.sources) from None
    finally:
        if collecting:
            gc.enable()


def _pipeline(text, path, network, input_shape, params, reporter: Reporter) -> Network:
    library = read_library(text, path, reporter)
    if any(d.code.startswith("E01") for d in reporter.diagnostics):
        reporter.raise_if_failed()
    name = _choose_network(library, network, path, reporter)
    overrides, spans = _overrides(params, library, reporter)
    reporter.raise_if_failed()
    elaboration = elaborate(library, name, overrides, spans, reporter, input_shape)
    if elaboration is None:
        reporter.raise_if_failed()
    return finish_network(elaboration, name, path, reporter)


def finish_network(elaboration, name: str, path: str, reporter: Reporter) -> Network:
    """Shapes and counts of an elaborated network, as a `Network` (SpecError at the first failure)."""
    graph = elaboration.graph
    infer_graph(graph, reporter)
    reporter.raise_if_failed()
    total_params, total_macs = annotate(graph)
    output = graph.nodes[elaboration.output]
    input_shape = graph.nodes["input"].shape
    points = elaboration.outputs or (OutputPoint(None, elaboration.output, elaboration.output, elaboration.span),)
    outputs = make_outputs(points, {p.node: graph.nodes[p.node].shape for p in points}, input_shape)
    return Network(
        name=name,
        ops=graph,
        output=elaboration.output,
        span=elaboration.span,
        input_shape=input_shape,
        output_shape=output.shape,
        params=total_params,
        macs=total_macs,
        parameters=elaboration.parameters,
        stages=elaboration.stages,
        parts=tuple(parts(graph)),
        path=path,
        sources=dict(reporter.sources),
        template=elaboration.template,
        instances=elaboration.instances,
        definitions=elaboration.definitions,
        warnings=tuple(sorted_by_position(reporter.warnings)),
        outputs=outputs,
    )


class Checker:
    """One spec read and parsed once, checked at many parameter values and input shapes (`verify`).

    `check(params, input_shape)` does what `load` does after parsing: elaborate, infer shapes, count;
    it returns the `Network` or raises `SpecError`, as `load` would for the same values.
    """

    def __init__(self, path_or_name: str | os.PathLike, network: str | None = None):
        path = find_spec(path_or_name)
        self.path = _display_path(path)
        try:
            data = read_source(str(path), self.path)
        except OSError as exc:
            raise UsageError(f"cannot read {self.path}: {exc.strerror}") from None
        self.text = decode(data, self.path)
        reporter = Reporter()
        reporter.sources[self.path] = self.text
        self.library = read_library(self.text, self.path, reporter)
        reporter.raise_if_failed()
        self.name = _choose_network(self.library, network, self.path, reporter)
        reporter.raise_if_failed()
        self.sources = dict(reporter.sources)

    def check(self, params: dict[str, Any], input_shape: tuple[int, ...] | None = None) -> Network:
        if input_shape is not None:
            input_shape = check_input_shape(input_shape)
        reporter = Reporter()
        reporter.sources.update(self.sources)
        collecting = gc.isenabled()
        gc.disable()
        try:
            overrides, spans = _overrides(params, self.library, reporter)
            reporter.raise_if_failed()
            elaboration = elaborate(self.library, self.name, overrides, spans, reporter, input_shape)
            if elaboration is None:
                reporter.raise_if_failed()
            return finish_network(elaboration, self.name, self.path, reporter)
        except RecursionError:
            reporter.error("E0105", "spec too deeply nested to check", Span.point(self.path, 1, 1))
            raise SpecError(reporter.diagnostics, reporter.sources) from None
        finally:
            if collecting:
                gc.enable()


def _choose_network(library, wanted: str | None, path: str, reporter: Reporter) -> str:
    own = [d for d in library.root.definitions if d.kind == "network"]
    if wanted is not None:
        found = library.definitions.get(wanted)
        if found is None or found.kind != "network":
            names = ", ".join(d.name for d in own) or "none"
            reporter.error(
                "E0207",
                f"no network named `{wanted}`",
                Span.point(path, 1, 1),
                notes=(f"networks in this file: {names}",),
            )
        return wanted
    if len(own) == 1:
        return own[0].name
    stem = Path(path).stem
    for d in own:
        if d.name == stem:
            return d.name
    if not own:
        reporter.error(
            "E0207",
            "this file defines no network",
            Span.point(path, 1, 1),
            help="a file of blocks is meant to be `use`d by a file with a `network`",
        )
    else:
        reporter.error(
            "E0207",
            f"this file defines {len(own)} networks; say which one to check",
            own[1].name_span,
            notes=("networks: " + ", ".join(d.name for d in own),),
            help="pass `--network NAME` (or `name=` to resdsl.loads)",
        )
    return ""


def _overrides(params: dict[str, Any], library, reporter: Reporter):
    """Python values and `--set` strings -> language values. Strings are parsed as expressions."""
    symbols = frozenset(n for n, d in library.definitions.items() if d.kind == "block")
    values: dict[str, Value] = {}
    spans: dict[str, Span] = {}
    for key, raw in params.items():
        where = f"<--set {key}>"
        if isinstance(raw, str):
            reporter.sources[where] = raw
            try:
                expr = parse_expression(raw, where)
                values[key] = evaluate(expr, {}, symbols)
            except SpecError as exc:
                reporter.diagnostics.extend(exc.diagnostics)
            except EvalError as exc:
                reporter.error(exc.code, exc.message, exc.span, help=exc.help)
            # An unknown key is reported against the whole assignment, as typed.
            typed = f"<--set {key}={raw}>"
            reporter.sources[typed] = f"{key}={raw}"
            spans[key] = Span(typed, 1, 1, 1, len(key) + 1)
        else:
            try:
                values[key] = _from_python(raw)
            except ValueError as exc:
                where = f"<parameter {key}>"
                reporter.sources[where] = f"{key}={_short_repr(raw)}"
                reporter.error(
                    "E0302",
                    f"parameter `{key}`: {exc}",
                    Span(where, 1, 1, 1, len(key) + 1),
                    help="give a number, true/false, a list, or a string holding an expression "
                    'such as "bottleneck" or "[2, 2, 2, 2]"',
                )
    return values, spans


def _from_python(value: Any, depth: int = 0) -> Value:
    """A Python value as a value of the language; ValueError for anything the language has no value for."""
    if isinstance(value, (list, tuple)) and depth < 16:
        return tuple(_from_python(v, depth + 1) for v in value)
    if isinstance(value, (bool, Symbol)):
        return value
    if isinstance(value, numbers.Integral):
        number = int(value)
        if abs(number) > LIMIT:
            raise ValueError(f"{number} is too large (numbers are limited to {LIMIT:,})")
        return number
    if isinstance(value, numbers.Real):
        real = float(value)
        if not math.isfinite(real):
            raise ValueError(f"{real} is not a finite number")
        return real
    raise ValueError(f"cannot use {type(value).__name__} {_short_repr(value)} as a network parameter")


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _display_path(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative
