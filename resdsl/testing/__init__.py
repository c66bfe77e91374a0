"""Hypothesis strategies and assertions for testing .res specs in your own pytest suite.

    from hypothesis import given
    import resdsl
    from resdsl.testing import bindings, input_shapes, assert_runtime_matches

    @given(bindings("specs/my_resnet.res", depth=[18, 34, 50], width=range(16, 129, 8)),
           input_shapes("specs/my_resnet.res", low=32, high=512))
    def test_my_resnet_checks_everywhere(params, shape):
        resdsl.load("specs/my_resnet.res", input_shape=shape, **params)   # SpecError if a rule fails

- `bindings(spec, **ranges)`: parameter assignments of a spec (each range a list, a `range`, or
  a hypothesis strategy; parameters left out keep their defaults), as keyword arguments for
  `resdsl.load`;
- `input_shapes(spec, low, high, square=True)`: input shapes with the spec's channels and number of
  spatial axes (C×L, C×H×W or C×D×H×W), one size on every axis unless `square=False`;
- `assert_runtime_matches(spec, input_shape=None, **params)`: the compiled module's output shape,
  parameter count and FlopCounterMode MACs are the spec's static ones (needs torch);
- `networks()`: random valid networks as .res text with the shapes the generator computed itself
  (`NetworkSpec.source`, `.stages[i].out_shape`), the generator resdsl's own tests use; images by
  default, sequences and volumes with `ranks=(1, 2, 3)`, per-axis kernels and strides with
  `per_axis=True`;
- `invalid_networks()` and `mutated_sources()`: broken specs, for robustness tests.

docs/testing.md shows them in use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st

from ..errors import SpecError, UsageError
from ..pipeline import Checker
from .broken import invalid_networks, mutate, mutated_sources
from .generate import NetworkSpec, Stage, networks, render

__all__ = [
    "assert_runtime_matches",
    "bindings",
    "input_shapes",
    "invalid_networks",
    "mutate",
    "mutated_sources",
    "networks",
    "NetworkSpec",
    "render",
    "Stage",
]


def _defaults(spec: str | os.PathLike, network: str | None = None):
    checker = Checker(spec, network)
    try:
        return checker, checker.check({})
    except SpecError:
        return checker, None


def _as_strategy(name: str, values: Any) -> st.SearchStrategy:
    if isinstance(values, st.SearchStrategy):
        return values
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise UsageError(f"bindings: `{name}` takes a list, a range or a hypothesis strategy, not {values!r}")
    values = list(values)
    if not values:
        raise UsageError(f"bindings: `{name}` has no values")
    return st.sampled_from(values)


def bindings(spec: str | os.PathLike, *, network: str | None = None, **ranges: Any) -> st.SearchStrategy[dict]:
    """A strategy of parameter assignments for `spec`: {name: value} for each name in `ranges`.

    Values are Python values (numbers, booleans, lists) or expression strings (`"bottleneck"`, `"B"`),
    as `resdsl.load(spec, **params)` takes them. A name the spec's network does not have is a
    UsageError at once, not a failure in every example.
    """
    _, net = _defaults(spec, network)
    if net is not None:
        unknown = sorted(set(ranges) - set(net.parameters))
        if unknown:
            raise UsageError(
                f"bindings: {net.name} has no parameter {', '.join(unknown)}; "
                f"its parameters: {', '.join(net.parameters)}"
            )
    return st.fixed_dictionaries({name: _as_strategy(name, values) for name, values in ranges.items()})


def input_shapes(
    spec: str | os.PathLike,
    low: int = 32,
    high: int = 512,
    *,
    square: bool = True,
    channels: int | None = None,
    network: str | None = None,
    axes: int | None = None,
) -> st.SearchStrategy[tuple[int, ...]]:
    """Input shapes with every spatial size from `low` to `high`: C×L, C×H×W or C×D×H×W as the spec's
    input (2 axes where the spec does not check as written), `axes` to choose; one size on every axis
    (`square`) or each its own. C is the spec's own input channels unless given."""
    if not 1 <= low <= high:
        raise UsageError(f"input_shapes: need 1 <= low <= high, not {low}..{high}")
    if channels is None or axes is None:
        _, net = _defaults(spec, network)
        own = net.input_shape if net is not None and len(net.input_shape) > 1 else (3, 1, 1)
        channels = own[0] if channels is None else channels
        axes = len(own) - 1 if axes is None else axes
    if not 1 <= axes <= 3:
        raise UsageError(f"input_shapes: a network has 1 to 3 spatial axes, not {axes}")
    sizes = st.integers(low, high)
    c, n = channels, axes
    if square:
        return sizes.map(lambda h: (c,) + (h,) * n)
    return st.tuples(st.just(c), *([sizes] * n))


def assert_runtime_matches(
    spec: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    *,
    network: str | None = None,
    batch: int = 1,
    **params: Any,
) -> None:
    """Compile `spec` with these values and run it: AssertionError unless the output shape, the
    parameter count and FlopCounterMode's MACs equal the static figures (`check`'s)."""
    from ..backend.runtime import runtime_mismatch
    from ..pipeline import load

    net = load(spec, network=network, input_shape=input_shape, **params)
    problem = runtime_mismatch(net, batch)
    if problem is not None:
        raise AssertionError(f"{net.name}: {problem}")
