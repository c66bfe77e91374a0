"""resdsl.testing: the strategies and assertions users test their own specs with."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import resdsl
from resdsl.errors import UsageError
from resdsl.testing import assert_runtime_matches, bindings, input_shapes, networks

SETTINGS = dict(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@settings(**SETTINGS)
@given(
    bindings("resnet", depth=[18, 34, 50], width=range(16, 65, 16), policy=["B", "D"]),
    input_shapes("resnet", low=32, high=96),
)
def test_bindings_and_input_shapes_drive_load(params, shape):
    assert set(params) == {"depth", "width", "policy"} and shape[0] == 3 and shape[1] == shape[2]
    net = resdsl.load("resnet", input_shape=shape, **params)
    assert net.parameters["depth"] == params["depth"] and net.input_shape == shape


@settings(**SETTINGS)
@given(bindings("resnet20", n=st.integers(1, 3)), input_shapes("resnet20", 8, 40, square=False))
def test_strategies_may_be_given_and_shapes_need_not_be_square(params, shape):
    assert 1 <= params["n"] <= 3 and shape[0] == 3
    resdsl.load("resnet20", input_shape=shape, **params)


def test_bindings_refuse_an_unknown_parameter_at_once():
    with pytest.raises(UsageError, match="has no parameter nosuch"):
        bindings("resnet", nosuch=[1, 2])
    with pytest.raises(UsageError, match="takes a list"):
        bindings("resnet", depth=50)
    with pytest.raises(UsageError, match="low <= high"):
        input_shapes("resnet", 64, 32)


def test_assert_runtime_matches_passes_and_fails():
    assert_runtime_matches("resnet20", n=1)
    assert_runtime_matches("skresnet18", input_shape=(3, 64, 64))
    import resdsl.backend.runtime as runtime

    original = runtime.runtime_mismatch
    runtime.runtime_mismatch = lambda net, batch=1: "parameters: the module has 1, the spec says 2"
    try:
        with pytest.raises(AssertionError, match="resnet20: parameters"):
            assert_runtime_matches("resnet20", n=1)
    finally:
        runtime.runtime_mismatch = original


@settings(max_examples=10, **{k: v for k, v in SETTINGS.items() if k != "max_examples"})
@given(networks())
def test_networks_are_valid_specs_with_their_own_shape_bookkeeping(spec):
    net = resdsl.loads(spec.source)
    assert net.input_shape == spec.input_shape and net.output_shape == (spec.classes,)


@settings(**SETTINGS)
@given(input_shapes("r3d_18", 4, 16, square=False), input_shapes("monai_resnet18", 8, 64, axes=1))
def test_input_shapes_take_the_specs_axes(volume, sequence):
    assert len(volume) == 4 and volume[0] == 3 and all(4 <= n <= 16 for n in volume[1:])
    assert resdsl.load("r3d_18", input_shape=volume).input_shape == volume
    assert len(sequence) == 2 and sequence[0] == 3
    assert resdsl.load("monai_resnet18", spatial_dims=1, input_shape=sequence).input_shape == sequence


@settings(max_examples=10, **{k: v for k, v in SETTINGS.items() if k != "max_examples"})
@given(networks(ranks=(1, 3), per_axis=True))
def test_networks_draw_sequences_and_volumes(spec):
    net = resdsl.loads(spec.source)
    assert spec.rank in (1, 3) and net.input_shape == spec.input_shape and net.output_shape == (spec.classes,)
