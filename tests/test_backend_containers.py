"""The compiled module's containers (stages, blocks, named groups, shortcuts) run on their own and
compute what the whole network computes at that point, as torchvision's and timm's do."""

import copy
import dataclasses
import io

import pytest
import timm
import torch
import torch.nn as nn
import torchvision
from hypothesis import HealthCheck, given, settings
from test_backend import op_calls, randomise_batchnorm

import resdsl
from resdsl.backend.containers import ContainerError, Part
from resdsl.graph import OpGraph
from resdsl.testing import networks

SMALL = {
    "resnet18": {"input_shape": (3, 64, 64)},
    "resnet50d": {"input_shape": (3, 64, 64)},
    "seresnet50": {"input_shape": (3, 64, 64)},
    "preact_resnet18": {"input_shape": (3, 16, 16)},
    "densenet_cifar": {"layers": 4},
    "res2net50_26w_4s": {"input_shape": (3, 64, 64)},
    "skresnet18": {"input_shape": (3, 64, 64)},
    "resnest14d": {"input_shape": (3, 64, 64)},
    "resnetv2_18": {"input_shape": (3, 64, 64)},
}


def recorded(net, model: torch.fx.GraphModule, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every op's output during the whole forward, copied when it is made: later in-place ops
    (ReLU(inplace=True), `out += identity`) overwrite some of them."""
    node_ops: dict = {}  # an fx node -> the ops it computes (a sum of one branch is that branch)
    for name, node in op_calls(net, model).items():
        node_ops.setdefault(node, []).append(name)
    seen = {"input": x.clone()}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            for name in node_ops.get(node, ()):
                if name != "input":
                    seen[name] = out.clone()
            return out

    with torch.no_grad():
        Recorder(model).run(x)
    return seen


def border(net, path: str) -> tuple[str, str]:
    """(entry, exit) of the container at `path`: the one tensor its ops read from outside it, and
    the one tensor of its own that is read outside it (or returned by the network)."""
    inside = {n for n in net.ops.nodes if n.startswith(path + ".")}
    entries = {u for n in inside for u in net.ops.pred[n] if u not in inside}
    exits = {n for n in inside if n == net.output or any(v not in inside for v in net.ops.succ[n])}
    assert len(entries) == 1 and len(exits) == 1, path
    return entries.pop(), exits.pop()


def assert_every_container_is_its_slice(net, model: torch.fx.GraphModule, x: torch.Tensor) -> None:
    """Each stage, block, group and shortcut container, called on the tensor the whole forward
    gives it, returns exactly the tensor the whole forward computes there, and leaves its input
    (the caller's tensor) as it was. Top-level children are registered in execution order."""
    values = recorded(net, model, x)
    for path, part in model.named_modules():
        if not isinstance(part, Part):
            continue
        if type(part) is Part:  # not a chain (timm's ModuleLists: `convs`, `paths`): calling it says why
            with pytest.raises(ContainerError, match="cannot be called on its own"):
                part(values["input"])
            continue
        entry, exit_ = border(net, path)
        given = values[entry].clone()
        with torch.no_grad():
            got = part(given)
        assert torch.equal(got, values[exit_]), path
        assert torch.equal(given, values[entry]), f"{path} wrote into its input"
    # So a prefix of them is a feature extractor: everything before the global pool (after
    # which the fc needs a flatten that nn.Sequential lacks, as with torchvision's models).
    order = list(net.ops.nodes)
    children = [(m, border(net, child)[1] if isinstance(m, Part) else child) for child, m in model.named_children()]
    assert [last for _, last in children] == sorted((last for _, last in children), key=order.index)
    pool = next(
        i
        for i, (_, last) in enumerate(children)
        if net.ops.nodes[last].kind in ("avgpool", "flatten") or i == len(children) - 1
    )
    if pool:
        with torch.no_grad():
            features = nn.Sequential(*[m for m, _ in children[:pool]])(x.clone())
        assert torch.equal(features, values[children[pool - 1][1]])


@pytest.mark.parametrize(
    "name",
    [
        "resnet18",
        "resnet50d",
        "seresnet50",
        "preact_resnet18",
        "resnet20",
        "densenet_cifar",
        "mlp_resnet",
        "plain20",
        "res2net50_26w_4s",
        "skresnet18",
        "resnest14d",
        "resnetv2_18",
    ],
)
def test_every_container_computes_its_slice_of_the_forward(name):
    net = resdsl.load(name, **SMALL.get(name, {}))
    model = net.to_torch().eval()
    randomise_batchnorm(model)
    assert sum(isinstance(m, Part) for m in model.modules()) >= 4
    assert_every_container_is_its_slice(
        net, model, torch.randn((1,) + net.input_shape, generator=torch.Generator().manual_seed(0))
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(max_stages=3))
@pytest.mark.slow  # a hypothesis sweep of compiled random networks
def test_every_container_of_random_networks_computes_its_slice(spec):
    net = resdsl.loads(spec.source)
    model = net.to_torch().eval()
    randomise_batchnorm(model)
    assert_every_container_is_its_slice(net, model, torch.randn((1,) + net.input_shape))


def assert_containers_match(ours: nn.Module, reference: nn.Module, x: torch.Tensor) -> int:
    """Every container of ours equals the reference's module at the same path, each given the input
    that module got in the reference's whole forward (caught with forward hooks). Returns how many."""
    randomise_batchnorm(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval()
    reference.eval()
    paths = [path for path, m in ours.named_modules() if isinstance(m, Part)]
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def catch(path: str):
        def hook(module, args, out) -> None:  # returns None: a hook's result would replace the output
            seen.setdefault(path, (args[0].clone(), out.clone()))

        return hook

    hooks = [reference.get_submodule(p).register_forward_hook(catch(p)) for p in paths]
    with torch.no_grad():
        reference(x)
        for hook in hooks:
            hook.remove()
        for path in paths:
            given, expected = seen[path]
            got = ours.get_submodule(path)(given)
            assert got.shape == expected.shape, path
            assert ((got - expected).abs().max() / expected.abs().max()).item() <= 1e-5, path
        features = nn.Sequential(*list(ours.children())[:-2])(x)
        expected = nn.Sequential(*list(reference.children())[:-2])(x)
        assert ((features - expected).abs().max() / expected.abs().max()).item() <= 1e-5
    return len(paths)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_containers_match_torchvisions(name):
    reference = getattr(torchvision.models, name)()
    ours = resdsl.load(name).to_torch()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    counted = assert_containers_match(ours, reference, x)
    assert counted == 4 + sum(len(getattr(reference, f"layer{i}")) for i in range(1, 5)) + (
        3 if name == "resnet18" else 4
    )
    assert len(ours.layer2) == len(reference.layer2) and ours.layer4[-1] is ours.layer4[len(ours.layer4) - 1]


def test_containers_match_timms_resnet50d():
    """ResNet-D: the deep stem `conv1` is a container, and a stride-2 `downsample` is avgpool, conv, BN."""
    reference = timm.create_model("resnet50d", pretrained=False)
    ours = resdsl.load("resnet50d").to_torch()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    assert assert_containers_match(ours, reference, x) == 1 + 4 + 16 + 4
    assert isinstance(ours.layer2[0].downsample[0], nn.AvgPool2d)


def renamed(net, names: dict[str, str]):
    """`net` with some nodes renamed: a way to make containers the language itself never makes."""
    ops = OpGraph()
    for node, data in net.ops.nodes.items():
        ops.add_node(names.get(node, node), dataclasses.replace(data))
    for u, v, edge in net.ops.edges():
        ops.add_edge(names.get(u, u), names.get(v, v), edge["role"])
    return dataclasses.replace(net, ops=ops, output=names.get(net.output, net.output))


def test_a_container_that_is_not_a_chain_says_why_it_cannot_be_called():
    net = resdsl.loads("network n { input 4x8x8\n conv 4 k3 -> relu\n residual { conv 4 k3 -> bn } }")
    assert list(net.ops.nodes) == ["input", "conv1", "relu", "conv2", "bn1", "add"]
    # `g` holds the residual's input and the end of its main path: two tensors in, two out.
    odd = renamed(net, {"relu": "g.0", "bn1": "g.1"})
    model, plain = odd.to_torch().eval(), net.to_torch().eval()
    model.load_state_dict({k.replace("bn1.", "g.1."): v for k, v in plain.state_dict().items()}, strict=True)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))  # the network itself is unaffected
        with pytest.raises(ContainerError) as caught:
            model.g(x)
    message = str(caught.value)
    assert "`g` cannot be called on its own" in message
    assert "2 tensors from outside it (conv1, conv2)" in message and "2 of its tensors are used outside it" in message
    assert "Part(\n    group" in str(model)
    torch.jit.script(model)  # TorchScript skips the forward that can only raise


def test_a_container_never_writes_into_its_callers_tensor():
    """The group's ReLU reads a tensor from outside the group, so it is not in place: `model.g(h)`
    must leave `h` alone, though in the whole forward nothing else reads conv1's output."""
    net = resdsl.loads("network n { input 4x8x8\n conv 4 k3\n g { relu -> conv 4 k3 } }")
    model = net.to_torch().eval()
    h = torch.randn(2, 4, 8, 8)
    before = h.clone()
    with torch.no_grad():
        got = model.g(h)
        assert torch.equal(h, before)
        assert torch.equal(got, model.g[1](torch.relu(before)))
        assert torch.equal(model(h), model.g(model.conv1(h)))


@pytest.mark.parametrize(
    "spec",
    [
        "network n { input 4x8x8\n identity -> relu }",
        "network n { input 4x8x8\n dropout 0.5 -> relu }",
        "network n { input 32\n identity -> relu -> fc 4 }",
    ],
)
def test_inplace_activation_never_writes_through_an_alias_of_the_input(spec):
    model = resdsl.loads(spec).to_torch().eval()
    x = torch.randn((2,) + resdsl.loads(spec).input_shape)
    before = x.clone()
    with torch.no_grad():
        model(x)
    assert torch.equal(x, before)


def test_inplace_activation_never_writes_through_an_alias_of_a_shortcut():
    """Identity hands back its input tensor; a ReLU in place after it would change the shortcut too."""
    net = resdsl.loads("network n { input 4x8x8\n conv 4 k3\n residual { identity -> relu -> conv 4 k3 } }")
    model = net.to_torch().eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        h = model.conv1(x)
        expected = h + model.conv2(torch.relu(h))
        assert torch.allclose(model(x), expected)


def test_containers_survive_copying_pickling_torchscript_export_and_compile():
    model = resdsl.load("resnet20").to_torch().eval()
    h = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        expected, block = model.layer2(h), model.layer2[0](h)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        for other in (copy.deepcopy(model), torch.load(buffer, weights_only=False), torch.jit.script(model)):
            assert torch.equal(other.layer2(h), expected) and torch.equal(getattr(other.layer2, "0")(h), block)
            assert isinstance(other, torch.jit.ScriptModule) or "stage: basic ×3" in str(other)
        program = torch.export.export(model.layer2, (h,))
        assert torch.allclose(program.module()(h), expected)
        assert torch.allclose(torch.compile(model.layer2, fullgraph=True, backend="eager")(h), expected)
