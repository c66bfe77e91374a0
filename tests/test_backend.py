"""The torch backend: weight-for-weight parity with torchvision and timm, and
runtime figures that equal the static ones."""

import operator

import pytest
import timm
import torch
import torchvision
from family import LEFT_TO_TEST_FAMILY, SEVERAL_OUTPUTS, SPATIAL, TIMM_ALL, tiered
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.backend.containers import Part
from resdsl.backend.runtime import output_mismatch
from resdsl.ops import PARAMETERS

# the specs bundled before the family, whose runtime figures this file has always checked
ORIGINAL = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet50d",
    "seresnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
}

TORCHVISION = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2"]
TIMM = ["resnet50d", "seresnet50"]


def randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so parity is not 'all BNs are identities'."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)


def assert_same_outputs(ours: torch.nn.Module, reference: torch.nn.Module, size: int = 96) -> None:
    randomise_batchnorm(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    reference.eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == expected.shape
    assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-5


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_weights_load_and_outputs_match(name):
    reference = getattr(torchvision.models, name)()
    ours = resdsl.load(name).to_torch()
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert_same_outputs(ours, reference)


@pytest.mark.parametrize("name", TIMM)
def test_timm_weights_load_and_outputs_match(name):
    reference = timm.create_model(name, pretrained=False)
    ours = resdsl.load(name).to_torch()
    assert sorted(ours.state_dict()) == sorted(reference.state_dict())
    assert_same_outputs(ours, reference)


# timm's family is checked against timm in test_family.py: static figures against timm's FlopCounter
# count and outputs equal to timm's, so its runtime figures are ours. The sweep here takes the rest.
SPECS = sorted(
    n
    for n in resdsl.library.bundled_names()
    if n not in ("blocks", "resnet1202")
    and n not in LEFT_TO_TEST_FAMILY
    and n not in SPATIAL
    and n not in SEVERAL_OUTPUTS  # test_outputs.py and test_resample.py check their runtime figures, at 64×64
    and (n not in TIMM_ALL or n in ORIGINAL)
)


def assert_runtime_figures(net, model, batch: int) -> torch.Tensor:
    """Parameters, FlopCounterMode's FLOPs / 2 and the output shape equal the static figures."""
    assert sum(p.numel() for p in model.parameters()) == net.params
    x = torch.randn((batch,) + net.input_shape)
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    assert counter.get_total_flops() == 2 * net.macs * batch  # FLOPs = 2 x MACs, per example
    assert output_mismatch(net, out) is None  # one tensor, or every output of a list or OrderedDict
    return x


@pytest.mark.parametrize("name", SPECS)
def test_runtime_figures_equal_static_figures(name):
    net = resdsl.load(name)
    assert_runtime_figures(net, net.to_torch(), batch=1)


@pytest.mark.parametrize(
    "name",
    tiered(  # the fast tier: option A, pre-activation, vectors and a plain network; the full run: all seven
        ["resnet20", "resnet50d", "seresnet50", "preact_resnet18", "mlp_resnet", "densenet_cifar", "plain20"],
        {"resnet20", "preact_resnet18", "mlp_resnet", "plain20"},
    ),
)
def test_backward_reaches_every_parameter(name):
    small = {"resnet50d": (3, 64, 64), "seresnet50": (3, 64, 64)}
    net = resdsl.load(name, input_shape=small.get(name))
    model = net.to_torch().train()
    out = model(torch.randn((2,) + net.input_shape))
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_init_follows_torchvision_and_zero_init_last():
    model = resdsl.load("resnet50", zero_init_last=True).to_torch()
    assert torch.count_nonzero(model.layer1[0].bn3.weight) == 0
    assert torch.all(model.layer1[0].bn1.weight == 1) and torch.all(model.layer1[0].bn1.bias == 0)
    std = model.conv1.weight.std().item()
    expected = (2.0 / (64 * 7 * 7)) ** 0.5  # kaiming normal, fan_out, relu
    assert abs(std - expected) / expected < 0.05


def test_option_a_shortcut_is_parameter_free_zero_padding():
    net = resdsl.load("resnet20")
    model = net.to_torch().eval()
    shortcut = model.get_submodule("layer2.0.downsample")
    x = torch.randn(1, 16, 32, 32)
    y = shortcut(x)
    assert y.shape == (1, 32, 16, 16)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2]) and not y[:, :8].any() and not y[:, 24:].any()


MERGES = {"add": (operator.add, operator.iadd), "concat": (torch.cat,)}
FOLDS = {"add": operator.add, "product": operator.mul, "max": torch.maximum}  # branch merges, left to right


def op_calls(net, model: torch.fx.GraphModule) -> dict[str, torch.fx.Node]:
    """The node of the top-level forward that computes each op, checked to be exactly one call
    per op, in the op graph's execution order: a call of the module at the op's own name (a
    leaf, never a container) on the node of its main input, or the merge's function on the
    nodes of its inputs (a sum of n branches is n - 1 additions, the last one named after it)."""
    from resdsl.backend.layers import select_branches

    nodes = list(model.graph.nodes)
    assert [n.op for n in nodes[:1] + nodes[-1:]] == ["placeholder", "output"]
    found = {"input": nodes[0]}
    # flatten belongs to the fc after it; the inner additions of a sum to the sum
    body = iter(n for n in nodes[1:-1] if n.target is not torch.flatten)
    for name, data in net.ops.nodes.items():
        if name == "input":
            continue
        kind = data.kind
        inputs = net.ops.inputs(name)
        if kind in FOLDS and len(inputs.branches) == 1:  # the one branch itself: no call
            found[name] = found[inputs.branches[0]]
            continue
        node = next(body)
        if inputs.branches:  # a merge of `branches`
            args = [found[b] for b in inputs.branches]
            if kind in FOLDS:  # `merge = sum` is the op `add`
                for _ in args[2:]:  # (((b0 + b1) + b2) + ...): the last one is the merge's
                    node = next(body)
                fn = FOLDS[kind]
                assert node.target is fn and node.args[1] is args[-1], name
            elif kind == "concat":
                assert node.target is torch.cat and node.args == (args, 1), name
            else:
                assert node.target is select_branches and node.args == (found[inputs.weights], args), name
        elif kind == "chunk":
            size = data.shape[0]
            assert node.target is torch.narrow and node.args == (
                found[inputs.main],
                1,
                data.attrs["index"] * size,
                size,
            ), name
        elif kind in PARAMETERS:  # a bare parameter of its container (layer_scale): fetched, then its function
            assert node.op == "get_attr" and node.target == name, (name, node.op, node.target)
            parameter, node = node, next(body)
            assert node.op == "call_function" and node.args == (found[inputs.main], parameter), name
        elif kind in MERGES:
            main, shortcut = found[inputs.main], found[inputs.shortcut]
            assert node.op == "call_function" and node.target in MERGES[kind], name
            assert node.args == ((main, shortcut) if kind == "add" else ([shortcut, main], 1)), name
        else:
            assert node.op == "call_module" and node.target == name, (name, node.op, node.target)
            assert not isinstance(model.get_submodule(name), Part), f"{name} is a container"
            arg = node.args[0]
            if arg.target is torch.flatten:
                assert kind == "fc" and arg.args == (found[inputs.main], 1)
                arg = arg.args[0]
            assert arg is found[inputs.main] and len(node.args) == 1 and not node.kwargs, name
        found[name] = node
    assert next(body, None) is None, "calls that belong to no op"
    assert nodes[-1].args == (found[net.output],)
    return found


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "resnet50d",
        "densenet_cifar",
        "mlp_resnet",
        "preact_resnet18",
        "res2net50_26w_4s",
        "skresnet18",
        "resnest50d_4s2x40d",
        "resnetv2_50d",
    ],
)
def test_forward_is_generated_straight_line_code(name):
    """One call per op, in execution order, no loops, and no container called (they have forwards of
    their own, for model.layer1(x), but the network's forward stays flat)."""
    net = resdsl.load(name)
    model = net.to_torch()
    op_calls(net, model)
    assert {n.op for n in model.graph.nodes} <= {"placeholder", "call_module", "call_function", "output"}
    assert "for " not in model.code and "while " not in model.code
    if name == "resnet18":
        assert "stage: basic ×2" in str(model) and "block: basic" in str(model)


def test_inplace_activation_never_clobbers_a_shortcut():
    net = resdsl.loads("network n { input 4x8x8\n conv 4 k3\n residual { relu -> conv 4 k3 } }")
    model = net.to_torch().eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        h = model.conv1(x)
        expected = h + model.conv2(torch.relu(h))
        assert torch.allclose(model(x), expected)


def test_torch_compile_fullgraph_has_no_graph_breaks():
    model = resdsl.load("resnet20").to_torch().eval()
    x = torch.randn(2, 3, 32, 32)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x))


from hypothesis import HealthCheck, given, settings  # noqa: E402

from resdsl.testing import networks  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
@pytest.mark.slow  # a hypothesis sweep of compiled random networks
def test_random_networks_compile_with_the_static_figures(spec):
    """For random networks from the shared strategies: params, MACs and output shape agree at run
    time, and the backward pass reaches every parameter."""
    net = resdsl.loads(spec.source)
    model = net.to_torch()
    x = assert_runtime_figures(net, model, batch=2)
    model.train()
    model(x).square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
