"""`resdsl verify`: check a spec's shape rules over a whole space of parameters and input sizes.

A space is a product of dimensions: network parameters (`--vary depth=18,34,50`, `--vary
width=16..128:8`) and the input's spatial sizes (`--input-range 32..512`: one size on every axis of
a sequence, an image or a volume; `32..64x16..32`: one range per axis). A space of at most `examples`
configurations is checked exhaustively, on every core; a larger one is sampled with hypothesis,
which shrinks every distinct failure to a minimal failing configuration (each dimension's values
are ordered, and shrinking moves towards the first). Failures are told apart by their error code
and the spec position they point at, so one mistake is reported once, with the smallest
configuration that shows it and the `resdsl check` command that reproduces it.

The spec is read and parsed once (pipeline.Checker); each configuration is elaborated, its shapes
inferred and its costs counted, as `check` does.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import Diagnostic, SpecError, UsageError, render
from .network import Network
from .pipeline import Checker

# the space, re-exported: `from resdsl.verify import Space, parse_vary, parse_input_range`
from .space import (
    MAX_SPACE,
    SMALL,
    Dimension,
    Sizes,
    Space,
    Values,  # noqa: F401
    bound,  # noqa: F401
    parse_input_range,  # noqa: F401
    parse_vary,  # noqa: F401
)

DEFAULT_EXAMPLES = 1000


# ---- checking one configuration ----------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """A failing configuration: its key (what failed, where), the rendered diagnostic, the values."""

    key: tuple
    text: str
    diagnostic: Diagnostic | None
    config: dict[str, Any]


def _input_shape(config: dict[str, Any], channels: Callable[[], int]) -> tuple[int, ...] | None:
    if "input" not in config:
        return None
    return (channels(), *config["input"])


class Runner:
    """Checks configurations of one spec: static checks, and on request the compiled module."""

    def __init__(self, spec: str, network: str | None = None):
        self.checker = Checker(spec, network)
        self._own: tuple[int, ...] | None = None

    def own_shape(self) -> tuple[int, ...]:
        """The input shape of the spec as written; (3,) where the spec does not check as written."""
        if self._own is None:
            try:
                self._own = self.checker.check({}).input_shape
            except SpecError:
                self._own = (3,)
        return self._own

    def channels(self) -> int:
        """The input channels of the spec as written (an input range varies the spatial sizes only)."""
        shape = self.own_shape()
        return shape[0] if len(shape) > 1 else 3

    def static(self, config: dict[str, Any]) -> tuple[Network | None, Outcome | None]:
        params = {k: v for k, v in config.items() if k != "input"}
        try:
            shape = _input_shape(config, self.channels)
            return self.checker.check(params, shape), None
        except SpecError as exc:
            first = exc.diagnostics[0]
            span = first.span
            path = span.path if span else None
            if path and path.startswith("<--set "):  # `<--set depth=42>`: the same mistake at every value
                path = path.partition("=")[0] + ">"
            key = (first.code, path, span.line if span else None, span.column if span else None)
            return None, Outcome(key, render(first, exc.sources), first, config)
        except ValueError as exc:  # an input size the language refuses
            return None, Outcome(("input", str(exc)), f"error: {exc}", None, config)

    def runtime(
        self, net: Network, config: dict[str, Any], batch: int = 2, max_memory: int | None = None
    ) -> Outcome | None:
        """Build the module and run it: output shape, parameters and FlopCounter's MACs must be static ones.

        First the memory estimate `compile` and `train` apply (memory.check_memory): a configuration
        whose tensors cannot fit is error E0506, never built."""
        from .memory import check_memory, physical_memory, show_bytes

        limit = max_memory or physical_memory()
        try:
            check_memory(
                net,
                batch,
                training=False,
                limit=limit,
                where=f"--max-memory {show_bytes(max_memory)}"
                if max_memory
                else f"the {show_bytes(limit or 0)} of memory of this machine",
            )
        except SpecError as exc:
            first = exc.diagnostics[0]
            return Outcome(("E0506", "memory"), render(first, exc.sources), first, config)
        from .backend.runtime import runtime_mismatch

        try:
            problem = runtime_mismatch(net, batch)
        except MemoryError:  # the estimate let through what the allocator could not serve
            problem = "out of memory: building or running the module failed (set a smaller --max-memory)"
        if problem is None:
            return None
        return Outcome(("runtime", problem.split(":")[0]), f"error[runtime]: {problem}", None, config)


def check_indices(runner: Runner, space: Space, batch: Iterable[tuple[int, ...]]) -> list[tuple[tuple, Outcome]]:
    found = []
    for indices in batch:
        _, outcome = runner.static(space.configuration(indices))
        if outcome is not None:
            found.append((indices, outcome))
    return found


# ---- the whole run -----------------------------------------------------------------------------


@dataclass
class Failure:
    key: tuple
    text: str  # the located diagnostic, rendered as `check` renders it
    config: dict[str, str]  # the minimal failing configuration, as written on a command line
    reproduce: str  # the command that shows it
    diagnostic: Diagnostic | None = None


@dataclass
class Report:
    spec: str
    network: str
    space: str
    tried: int
    exhaustive: bool
    failures: list[Failure] = field(default_factory=list)
    runtime_checked: int = 0
    input_sizes: str = ""  # with an input range: the valid sizes at the spec's own parameter values

    @property
    def ok(self) -> bool:
        return not self.failures


def _reproduce(spec: str, space: Space, config: dict[str, Any], channels: int) -> tuple[dict[str, str], str]:
    shown, args = {}, ["resdsl", "check", spec]
    for d in space.dimensions:
        value = config[d.name]
        shown[d.name] = d.show(value)
        if d.name == "input":
            args += ["--input", "x".join(map(str, (channels, *value)))]
        else:
            text = str(value)
            args += ["--set", f"{d.name}={text}" if re.fullmatch(r"[\w.\-]+", text) else f"'{d.name}={text}'"]
    return shown, " ".join(args)


def require_torch(what: str = "resdsl verify --runtime") -> None:
    """One line naming the fix, as `compile` gives, where PyTorch is missing."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs PyTorch: pip install 'resdsl[torch]'") from None


def _reproduce_runtime(spec: str, space: Space, config: dict[str, Any], max_memory: int | None) -> str:
    """`resdsl verify SPEC --vary NAME=VALUE ... --input-range LO..HI --runtime`: the one configuration."""
    args = ["resdsl", "verify", spec]
    for d in space.dimensions:
        value = config[d.name]
        if d.name == "input":  # one size on every axis, or one range of one size per axis
            shown = [f"{size}..{size}" for size in value]
            args += ["--input-range", shown[0] if len(set(value)) == 1 else "x".join(shown)]
        else:
            text = f"{d.name}={value}"
            args += ["--vary", text if re.fullmatch(r"[\w.\-=]+", text) else f"'{text}'"]
    args.append("--runtime")
    if max_memory:
        args += ["--max-memory", str(max_memory)]
    return " ".join(args)


def verify(
    spec: str,
    space: Space,
    *,
    examples: int = DEFAULT_EXAMPLES,
    runtime: bool = False,
    seed: int = 0,
    network: str | None = None,
    workers: int | None = None,
    max_memory: int | None = None,
) -> Report:
    """Check every configuration of `space` (or `examples` sampled ones); see the module docstring.

    The space is sized (a product of lengths) before anything is read or built; its values stay lazy."""
    if space.size > MAX_SPACE:
        raise UsageError(f"the space has {space.size:,} configurations; at most {MAX_SPACE:,}")
    if runtime:
        require_torch()
    runner = Runner(spec, network)
    shown_spec = str(spec)  # as the user wrote it: a path, or a bundled name (`resdsl check resnet` works too)
    inputs = next((d for d in space.dimensions if d.name == "input"), None)
    defaults = None
    if inputs is not None:
        defaults, _ = runner.static({})
        if defaults is not None:
            space, inputs = _fit_input_range(space, inputs, defaults)
    exhaustive = space.size <= examples
    if exhaustive:
        tried, minimal = space.size, _exhaustive(runner, space, spec, network, workers)
    else:
        tried, minimal = _sampled_everywhere(runner, space, examples, seed, spec, network, workers)
    failures = []
    # in the order of the spec's text, as `check` reports them
    ordered = sorted(minimal.items(), key=lambda item: tuple(str(part) for part in item[0]))
    ordered.sort(
        key=lambda item: (item[0][1] or "", item[0][2] or 0, item[0][3] or 0) if len(item[0]) == 4 else ("~", 0, 0)
    )
    for key, (_indices, outcome) in ordered:
        shown, command = _reproduce(shown_spec, space, outcome.config, runner.channels())
        failures.append(Failure(key, outcome.text, shown, command, outcome.diagnostic))
    report = Report(shown_spec, runner.checker.name, space.describe(), tried, exhaustive, failures)
    heights = _square_run(inputs)
    if heights is not None and defaults is not None:
        from .input_sizes import InputSizeLimit, input_sizes

        try:
            found = input_sizes(defaults, heights.start, heights.stop - 1)
        except InputSizeLimit:  # a network whose sizes cannot be worked out by periods over so long a range
            found = None
        if found is not None:  # the sizes valid on every axis alike, as the range gives them
            smallest = "x".join([str(found.smallest)] * len(found.axes))
            report.input_sizes = found.describe_valid() + (
                f" (the smallest input is {smallest})" if found.smallest else ""
            )
    if runtime and not failures:
        report.runtime_checked, runtime_failures = _runtime(runner, space, seed, max_memory=max_memory)
        for outcome in runtime_failures:
            shown, command = _reproduce(shown_spec, space, outcome.config, runner.channels())
            report.failures.append(
                Failure(
                    outcome.key,
                    outcome.text,
                    shown,
                    _reproduce_runtime(shown_spec, space, outcome.config, max_memory),
                    outcome.diagnostic,
                )
            )
    return report


def _fit_input_range(space: Space, inputs: Dimension, net: Network) -> tuple[Space, Dimension]:
    """The input dimension fitted to the network's spatial axes: one range serves every axis alike, and
    per-axis ranges must be one per axis (UsageError, naming the network's input, where they are not)."""
    axes = len(net.input_shape) - 1
    if axes < 1:
        raise UsageError(f"--input-range: `{net.name}` takes a vector input: it has no spatial input size")
    values = inputs.values
    if not isinstance(values, Sizes):
        return space, inputs
    if not values.alike and values.axes != axes:
        names = {1: "L", 2: "H×W", 3: "D×H×W"}[axes]
        shape = "x".join(map(str, net.input_shape))
        raise UsageError(
            f"--input-range: {values.show()} gives {values.axes} ranges, one per axis, but `{net.name}` takes "
            f"{shape}, with {axes} spatial ax{'is' if axes == 1 else 'es'} ({names}): give one range for every "
            f"axis alike, or {axes} joined by x"
        )
    fitted = Dimension("input", values.fitted(axes))
    return Space(tuple(fitted if d is inputs else d for d in space.dimensions)), fitted


def _square_run(inputs: Dimension | None) -> range | None:
    """The sizes of an input dimension of one size on every axis, every one from LO to HI; else None."""
    if inputs is None:
        return None
    values = inputs.values
    if isinstance(values, Sizes):
        ok = values.alike and values.ranges[0].step == 1
        return values.ranges[0] if ok else None
    if not values or len(values) > SMALL or any(len(set(v)) != 1 for v in values):
        return None
    heights = [v[0] for v in values]
    return range(heights[0], heights[-1] + 1) if heights == list(range(heights[0], heights[-1] + 1)) else None


def _keep_minimal(minimal: dict, found: Iterable[tuple[tuple, Outcome]]) -> None:
    for indices, outcome in found:
        if outcome.key not in minimal or indices < minimal[outcome.key][0]:
            minimal[outcome.key] = (indices, outcome)


_WORKER: Runner | None = None


def _worker_init(spec: str, network: str | None) -> None:
    global _WORKER
    _WORKER = Runner(spec, network)


def _worker_check_flat(args: tuple[Space, range]) -> list[tuple[tuple, Outcome]]:
    space, flats = args
    assert _WORKER is not None
    return check_indices(_WORKER, space, (space.indices(f) for f in flats))


def _exhaustive(runner: Runner, space: Space, spec: str, network: str | None, workers: int | None) -> dict:
    """Every configuration, in index order, on every core for spaces worth the start-up. The
    configurations are handed out as ranges of flat indices: nothing is listed in memory."""
    size = space.size
    minimal: dict = {}
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and size >= 64:
        import multiprocessing

        chunk = max(8, size // (workers * 8))
        batches = ((space, range(i, min(i + chunk, size))) for i in range(0, size, chunk))
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with context.Pool(workers, initializer=_worker_init, initargs=(spec, network)) as pool:
            for found in pool.imap_unordered(_worker_check_flat, batches):
                _keep_minimal(minimal, found)
    else:
        _keep_minimal(minimal, check_indices(runner, space, (space.indices(f) for f in range(size))))
    return minimal


def _worker_sample(args: tuple[Space, int, int]) -> tuple[int, dict]:
    space, examples, seed = args
    assert _WORKER is not None
    return _sampled(_WORKER, space, examples, seed)


def _sampled_everywhere(
    runner: Runner, space: Space, examples: int, seed: int, spec: str, network: str | None, workers: int | None
) -> tuple[int, dict]:
    """Hypothesis on every core: each worker samples its share with its own seed and shrinks what it
    finds; the smallest configuration per failure wins."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers <= 1 or examples < 64:
        return _sampled(runner, space, examples, seed)
    import multiprocessing

    shares = [examples // workers + (1 if i < examples % workers else 0) for i in range(workers)]
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    tried = 0
    minimal: dict[tuple, tuple] = {}
    with context.Pool(workers, initializer=_worker_init, initargs=(spec, network)) as pool:
        for count, found in pool.imap_unordered(
            _worker_sample, [(space, share, seed * 1000 + i) for i, share in enumerate(shares)]
        ):
            tried += count
            _keep_minimal(minimal, found.values())
    return tried, minimal


class _Failed(Exception):
    """Raised for hypothesis; one subclass per failure key, so it shrinks each failure on its own."""


def _sampled(runner: Runner, space: Space, examples: int, seed: int) -> tuple[int, dict]:
    """`examples` configurations drawn by hypothesis, every distinct failure shrunk to its minimum."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    if sys.version_info >= (3, 11):
        from builtins import BaseExceptionGroup
    else:  # hypothesis depends on the backport before 3.11
        from exceptiongroup import BaseExceptionGroup

    kinds: dict[tuple, type] = {}
    last: dict[tuple, tuple] = {}  # the last failing configuration per key: after shrinking, its minimum
    tried = 0
    strategy = st.tuples(*(st.integers(0, len(d.values) - 1) for d in space.dimensions))

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        print_blob=False,
        report_multiple_bugs=True,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.generate, Phase.shrink),
    )
    @given(strategy)
    def property_holds(indices: tuple[int, ...]) -> None:
        nonlocal tried
        tried += 1
        _, outcome = runner.static(space.configuration(indices))
        if outcome is not None:
            last[outcome.key] = (indices, outcome)
            kind = kinds.setdefault(outcome.key, type("Failed", (_Failed,), {}))
            raise kind(outcome.text)

    try:
        property_holds()
    except _Failed:
        pass
    except BaseExceptionGroup as group:  # several distinct failures
        if not all(isinstance(e, _Failed) for e in group.exceptions):
            raise
    return tried, last


def _runtime(
    runner: Runner, space: Space, seed: int, count: int = 4, max_memory: int | None = None
) -> tuple[int, list[Outcome]]:
    """Build and run a few configurations (the first, the last, and some between), each on a batch;
    each one first passes the memory estimate `compile` applies."""
    import random

    size = space.size
    picks = sorted({0, size - 1, *random.Random(seed).sample(range(size), min(count, size))})[: count + 2]
    outcomes, checked = [], 0
    for flat in picks:
        config = space.configuration(space.indices(flat))
        net, outcome = runner.static(config)
        if net is None:
            continue
        problem = runner.runtime(net, config, max_memory=max_memory)
        if problem is None or problem.key[0] != "E0506":  # refused by the estimate: not built, not counted
            checked += 1
        if problem is not None:
            outcomes.append(problem)
    return checked, outcomes
