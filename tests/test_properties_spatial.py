"""Property-based tests on sequences (C×L) and volumes (C×D×H×W) with per-axis arguments: random valid
networks from `resdsl.testing.networks(ranks=..., per_axis=True)` check, their shapes follow the floor
formula axis by axis, their params and MACs follow from shapes, and the compiled module has the
static shapes (every module's output), parameters and MACs (torch's FlopCounterMode) at run time.

tests/test_properties.py holds the 2-D properties; the formulas here are written out again, per axis.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings

import resdsl
from resdsl.testing import NetworkSpec, networks
from resdsl.testing.generate import along

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def load(spec: NetworkSpec) -> resdsl.Network:
    try:
        return resdsl.loads(spec.source)
    except resdsl.SpecError as exc:  # make the failing example readable
        pytest.fail(f"a valid network was rejected:\n{spec.source}\n{exc.render()}")


def window(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil: bool = False) -> int:
    """PyTorch's output size on one axis, ceil_mode included."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def expected_shape(kind: str, attrs: dict, x: tuple[int, ...]) -> tuple[int, ...]:
    """A conv's or a pool's output shape, axis by axis with each axis's own kernel, stride and padding."""
    c, *sizes = x
    rank = len(sizes)
    if kind == "avgpool" and attrs["kernel"] is None:
        return (c,) + (1,) * rank
    kernel, stride, padding = (along(attrs[k], rank) for k in ("kernel", "stride", "padding"))
    dilation = along(attrs.get("dilation", 1), rank)
    ceil = bool(attrs.get("ceil"))
    out = tuple(window(*args, ceil=ceil) for args in zip(sizes, kernel, stride, padding, dilation))
    return (attrs["out"] if kind == "conv" else c, *out)


def expected_cost(kind: str, attrs: dict, x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, int] | None:
    """(params, MACs) of a conv (its kernel's every axis, over every output position), an fc or a bn."""
    if kind in ("conv", "stdconv", "scaled_stdconv"):
        weights = attrs["out"] * (x[0] // attrs["groups"]) * math.prod(along(attrs["kernel"], len(x) - 1))
        gain = attrs["out"] if kind == "scaled_stdconv" and attrs["gain"] else 0  # timm's gain, out×1×1×1
        return weights + (attrs["out"] if attrs["bias"] else 0) + gain, weights * math.prod(y[1:])
    if kind == "fc":
        n = math.prod(x)
        return n * attrs["out"] + (attrs["out"] if attrs["bias"] else 0), n * attrs["out"]
    if kind == "bn":
        return 2 * x[0], 0
    return None  # the other kinds: tests/test_properties.py, rank-free


@settings(max_examples=60, **SETTINGS)
@given(networks(ranks=(1, 3), per_axis=True))
def test_sequences_and_volumes_check_with_the_generators_shapes(spec):
    net = load(spec)
    assert net.input_shape == spec.input_shape and len(net.input_shape) == spec.rank + 1
    assert net.output_shape == (spec.classes,)
    parts = {p.name: p.output_shape for p in net.parts}
    if "no_sections" not in spec.style:
        assert parts["stem"] == spec.stem_shape
    for stage in spec.stages:
        assert parts[stage.name] == stage.out_shape, stage


@settings(max_examples=60, **SETTINGS)
@given(networks(ranks=(1, 2, 3), per_axis=True))
def test_shapes_and_costs_follow_the_formulas_axis_by_axis(spec):
    net = load(spec)
    rank = spec.rank
    for node, data in net.ops.nodes.items():
        if data.kind == "input":
            continue
        x, y = data.in_shape, data.shape
        assert x is not None and y is not None and all(d >= 1 for d in y), node
        if len(x) == rank + 1 and data.kind in ("conv", "maxpool", "avgpool"):
            assert y == expected_shape(data.kind, data.attrs, x), (node, data.attrs, x, y)
        cost = expected_cost(data.kind, data.attrs, x, y)
        if cost is not None:
            assert (data.params, data.macs) == cost, (node, data.kind, data.attrs)
        if len(y) > 1:  # a feature map keeps the input's rank until the head makes it a vector
            assert len(y) == rank + 1, node
    assert net.params == sum(d.params for d in net.ops.nodes.values())
    assert net.macs == sum(d.macs for d in net.ops.nodes.values())


@settings(max_examples=8, **SETTINGS)
@given(networks(ranks=(1, 2, 3), per_axis=True, max_stages=3))
def test_the_compiled_module_has_the_static_shapes_params_and_macs(spec):
    """Every module's output shape (forward hooks), the parameter count and FlopCounterMode's MACs of
    the compiled module are the static figures, on 1-, 2- and 3-d inputs with per-axis arguments."""
    torch = pytest.importorskip("torch")
    from resdsl.backend.runtime import runtime_mismatch

    net = load(spec)
    model = net.to_torch().eval()
    modules = dict(model.named_modules())
    seen: dict[str, tuple[int, ...]] = {}

    def record(name):
        return lambda module, args, out: seen.__setitem__(name, tuple(out.shape[1:]))

    handles = [modules[n].register_forward_hook(record(n)) for n in net.ops.nodes if n in modules]
    with torch.no_grad():
        model(torch.randn((2,) + net.input_shape))
    for handle in handles:
        handle.remove()
    assert seen and all(shape == net.ops.nodes[n].shape for n, shape in seen.items()), [
        (n, shape, net.ops.nodes[n].shape) for n, shape in seen.items() if shape != net.ops.nodes[n].shape
    ]
    assert runtime_mismatch(net, batch=2) is None  # parameters, FlopCounterMode's MACs, the output
