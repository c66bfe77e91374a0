"""ConvNeXt's ops (issue 20), each defined once in resdsl/ops/ and followed by every stage:

- `ln` (ops/layer_norm.py): LayerNorm over the channels of a feature map of any rank (timm's and
  torchvision's LayerNorm2d), nn.LayerNorm on a vector; a norm a `norm` statement may choose;
- `layer_scale` (ops/layer_scale.py): a bare parameter of its container, named by the op's label, (C,) or
  with `broadcast` (C, 1, 1); compiled as `get_attr` and a product, in the network's forward and the
  containers' own, in the ejected classes (and flat classes), pt2 and TorchScript;
- `channel_fc` (ops/channel_linear.py): nn.Linear over the channels at every position, weights (out, in).

Shapes, parameters and MACs (FlopCounterMode), labels and summaries, and the errors for misuse, located.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.backend.eject import eject
from resdsl.cli import main
from resdsl.draw import essentials


def net_of(body: str, shape: str = "8x6x6", blocks: str = "") -> resdsl.Network:
    return resdsl.loads(f"{blocks}\nnetwork n {{\n    input {shape}\n{body}\n}}\n", path="n.res")


def errors(body: str, shape: str = "8x6x6") -> list[tuple[str, int, int]]:
    """(code, line within `body`, column) of each error."""
    with pytest.raises(resdsl.SpecError) as info:
        net_of(body, shape)
    return [(d.code, d.line - 3, d.column) for d in info.value.diagnostics]


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter drawn at random (LayerNorm's 1 and 0, a layer scale's 1e-6 would hide mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + 1.0)
    return model.eval()


def runtime_matches_static(net: resdsl.Network, batch: int = 2) -> tuple[torch.nn.Module, torch.Tensor]:
    model = randomise(net.to_torch())
    x = torch.randn((batch,) + net.input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    assert tuple(out.shape) == (batch,) + net.output_shape
    assert sum(p.numel() for p in model.parameters()) == net.params
    assert counter.get_total_flops() == 2 * net.macs * batch
    return model, x


# ---- ln ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["8", "8x5", "8x5x6", "8x3x4x5"])
def test_ln_normalises_the_channels_at_each_position_on_every_rank(shape):
    net = net_of("    ln eps=1e-3", shape)
    [node] = [n for n in net.ops.nodes.values() if n.kind == "ln"]
    assert node.params == 16 and node.macs == 0 and node.shape == net.input_shape
    model, x = runtime_matches_static(net)
    module = model.ln1
    expected_class = "LayerNorm" if shape == "8" else "ChannelLayerNorm"
    assert type(module).__name__ == expected_class and module.eps == 1e-3
    assert sorted(dict(module.named_parameters())) == ["bias", "weight"] and module.weight.shape == (8,)
    with torch.no_grad():
        expected = F.layer_norm(x.movedim(1, -1), (8,), module.weight, module.bias, 1e-3).movedim(-1, 1)
        assert torch.allclose(model(x), expected, atol=1e-6)


def test_ln_defaults_to_the_convnext_eps_and_is_drawn_as_a_layer_norm():
    net = net_of("    conv 8 k3 -> ln -> ln zero_init")
    assert net.ops.nodes["ln1"].attrs["eps"] == 1e-6
    assert essentials("ln", net.ops.nodes["ln1"].attrs, (8, 6, 6)) == "layer norm"
    assert essentials("ln", net.ops.nodes["ln2"].attrs, (8, 6, 6)) == "layer norm (zero-init)"
    model = net.to_torch()
    assert torch.count_nonzero(model.ln2.weight) == 0 and torch.all(model.ln1.weight == 1)


def test_norm_ln_makes_every_bn_a_layer_norm_under_bns_names():
    net = resdsl.loads(
        'use "blocks.res"\nnetwork n {\n input 3x32x32\n norm ln\n conv 16 k3 -> bn -> relu\n'
        " layer1: basic(16) x1\n layer2: basic(32) x1 s2\n avgpool -> fc 10\n}\n",
        path="n.res",
    )
    model = net.to_torch()
    for name in ("bn1", "layer1.0.bn2", "layer2.0.downsample.1"):
        assert type(model.get_submodule(name)).__name__ == "ChannelLayerNorm"
    runtime_matches_static(net)


@pytest.mark.parametrize(
    "body, found",
    [
        ("    ln eps=0", [("E0303", 1, 8)]),  # torch divides by sqrt(var + eps)
        ("    ln eps=2", [("E0303", 1, 8)]),
        ("    ln momentum=0.1", [("E0203", 1, 8)]),  # no running statistics
        ("    norm ln\n    bn momentum=0.2", [("E0203", 2, 8)]),
        ("    ln 4", [("E0204", 1, 8)]),
    ],
)
def test_ln_arguments_are_checked_where_they_are_written(body, found):
    assert errors(body) == found


# ---- layer_scale --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, broadcast, stored",
    [
        ("8x5x6", "", (8,)),
        ("8x5x6", " broadcast", (8, 1, 1)),
        ("8x3x4x5", " broadcast", (8, 1, 1, 1)),
        ("8x5", " broadcast", (8, 1)),
        ("8", " broadcast", (8,)),
        ("8", "", (8,)),
    ],
)
def test_layer_scale_is_a_parameter_named_by_its_label(shape, broadcast, stored):
    net = net_of(f"    gamma: layer_scale 0.5{broadcast}", shape)
    node = net.ops.nodes["gamma"]
    assert node.params == 8 and node.macs == 0 and node.shape == net.input_shape
    model = net.to_torch()
    assert dict(model.named_parameters()).keys() == {"gamma"} and model.gamma.shape == stored
    assert torch.all(model.gamma == 0.5)
    model, x = runtime_matches_static(net)
    with torch.no_grad():
        assert torch.equal(model(x), x * model.gamma.reshape([8] + [1] * (x.dim() - 2)))


def test_layer_scale_sits_on_its_container_as_torchvisions_and_timms():
    net = net_of(
        "    features[0] { conv 8 k3 -> layer_scale: layer_scale }\n    ls.gamma: layer_scale init=2\n"
        '    "stage" { layer_scale }'
    )
    model = net.to_torch()
    # a container's own parameters come before its children's, as torchvision's CNBlock's layer_scale
    assert [(n, tuple(p.shape)) for n, p in model.named_parameters()] == [
        ("features.0.layer_scale", (8,)),
        ("features.0.0.weight", (8, 8, 3, 3)),
        ("ls.gamma", (8,)),
        ("stage.0", (8,)),  # a group numbers its ops: a parameter is no exception
    ]
    assert net.ops.nodes["features.0.layer_scale"].attrs == {"init": 1e-6, "broadcast": False}
    assert torch.all(model.ls.gamma == 2.0)
    assert essentials("layer_scale", net.ops.nodes["ls.gamma"].attrs, (8, 6, 6)) == "layer scale 2"
    model, x = runtime_matches_static(net)
    with torch.no_grad():  # the containers run alone: `model.features[0](x)` uses its own layer_scale
        assert torch.allclose(model.stage(model.ls(model.features[0](x))), model(x))
        assert torch.allclose(model.ls(x), x * model.ls.gamma.reshape(8, 1, 1))


def test_layer_scale_trains_and_a_state_dict_loads_by_its_name():
    net = net_of("    conv 8 k3 -> gamma: layer_scale")
    model = net.to_torch().train()
    model(torch.randn(2, 8, 6, 6)).square().mean().backward()
    assert model.gamma.grad is not None and model.gamma.grad.abs().sum() > 0
    other = net.to_torch()
    state = {k: torch.randn(v.shape) for k, v in model.state_dict().items()}
    other.load_state_dict(state, strict=True)
    assert torch.equal(other.gamma, state["gamma"])


def test_layer_scale_in_a_residual_block_is_counted_in_the_summary(capsys):
    blocks = "block b(w) {\n residual { conv w k3 -> gamma: layer_scale }\n}"
    net = net_of("    layer1: b(8) x2", blocks=blocks)
    assert net.params == 2 * (8 * 8 * 9 + 8)
    assert [n for n in net.ops.nodes if n.endswith("gamma")] == ["layer1.0.gamma", "layer1.1.gamma"]
    runtime_matches_static(net)


@pytest.mark.parametrize(
    "body, found",
    [
        ("    layer_scale init=true", [("E0302", 1, 17)]),
        ("    layer_scale 1e9", [("E0303", 1, 17)]),
        ("    layer_scale -1e9", [("E0303", 1, 17)]),
        ("    layer_scale 0.1 0.2", [("E0204", 1, 21)]),
        ("    layer_scale g=2", [("E0203", 1, 17)]),
        ("    a.b: conv 8 k1\n    a: layer_scale", [("E0206", 2, 8)]),  # `a` is a container
    ],
)
def test_layer_scale_arguments_and_names_are_checked_where_they_are_written(body, found):
    assert errors(body) == found


# ---- channel_fc -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["8", "8x5", "8x5x6", "8x3x4x5"])
def test_channel_fc_is_a_linear_over_the_channels_at_every_position(shape):
    net = net_of("    channel_fc 12", shape)
    node = net.ops.nodes["channel_fc"]
    positions = node.macs // (8 * 12)
    assert node.shape == (12,) + net.input_shape[1:] and node.params == 8 * 12 + 12
    assert positions == max(1, torch.Size(net.input_shape[1:]).numel())
    model, x = runtime_matches_static(net)
    module = model.channel_fc
    assert module.weight.shape == (12, 8) and module.bias.shape == (12,)  # nn.Linear's, so state dicts load
    assert type(module).__name__ == ("Linear" if shape == "8" else "ChannelLinear")
    with torch.no_grad():  # a 1×1 conv with the same weights
        kernel = module.weight.reshape(12, 8, *[1] * (x.dim() - 2))
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3] if x.dim() > 2 else None
        expected = conv(x, kernel, module.bias) if conv else F.linear(x, module.weight, module.bias)
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_channel_fc_without_bias_and_fc_still_refuses_an_unpooled_map():
    net = net_of("    channel_fc 12 bias=false")
    assert net.params == 8 * 12 and net.to_torch().channel_fc.bias is None
    assert essentials("channel_fc", net.ops.nodes["channel_fc"].attrs, (12, 6, 6)) == "fc over channels, 12"
    assert errors("    fc 12") == [("E0405", 1, 5)]


@pytest.mark.parametrize(
    "body, found", [("    channel_fc 0", [("E0303", 1, 16)]), ("    channel_fc", [("E0204", 1, 5)])]
)
def test_channel_fc_arguments_are_checked_where_they_are_written(body, found):
    assert errors(body) == found


# ---- everywhere ops go: the ejector, pt2, TorchScript, drawings -----------------------------------------

CONVNEXT_LIKE = """
block cn(width, scale = 1e-6, wide = false) {
    residual {
        conv width k7 g=width bias
        norm: ln
        mlp.fc1: channel_fc 4 * width -> gelu -> mlp.fc2: channel_fc width
        ls { gamma: layer_scale scale broadcast=wide }
    }
}
network cn_net {
    input 3x32x32
    stem { conv 16 k4 s4 p0 bias -> ln }
    stages[0]: cn(16, wide = WIDE) x2
    stages[1]: cn(16, scale = 0.5, wide = WIDE) x2
    head { avgpool -> ln -> flatten -> fc 10 }
}
"""


def _ejected(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
    return namespace


@pytest.mark.parametrize(
    "wide, written",
    [
        (  # one class for the template: the parameter's shape and start value are its arguments
            "true",
            [
                'self.ls.register_parameter("gamma", nn.Parameter(torch.full((16, 1, 1), scale)))',
                "out = scale_channels(out, self.ls.gamma)",
            ],
        ),
        (  # `broadcast` varies between the calls: the shapes would differ, so each call is a flat class
            "repetition == 1",
            [
                "install_module(self, 'ls.gamma', nn.Parameter(torch.full((16,), 1e-06)))",
                "install_module(self, 'ls.gamma', nn.Parameter(torch.full((16, 1, 1), 1e-06)))",
                "scale_channels(mlp_fc2, ls_gamma)",
            ],
        ),
    ],
)
def test_the_ops_eject_to_the_same_computation_in_classes_and_flat_classes(wide, written):
    net = resdsl.loads(CONVNEXT_LIKE.replace("WIDE", wide), path="cn.res")
    source = eject(net)
    assert all(line in source for line in written)
    assert "ChannelLinear(" in source and "ChannelLayerNorm(16)" in source
    ours, theirs = _ejected(source)["build"]().eval(), randomise(net.to_torch())
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert ours.stages[1][0].ls.gamma.shape == ((16, 1, 1) if wide == "true" else (16,))


def test_the_ops_export_to_pt2_and_torchscript(tmp_path):
    spec = tmp_path / "cn.res"
    text = CONVNEXT_LIKE.replace("WIDE", "repetition == 1")
    spec.write_text(text)
    reference = randomise(resdsl.loads(text, path="cn.res").to_torch())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(x)
    assert main(["compile", str(spec), "--emit", "pt2", "-o", str(tmp_path / "cn.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "cn.pt2"))
    assert "stages.1.0.ls.gamma" in program.state_dict
    exported = program.module()
    exported.load_state_dict(reference.state_dict(), strict=True)
    assert torch.allclose(exported(x), expected, atol=1e-5)
    assert main(["compile", str(spec), "--emit", "torchscript", "-o", str(tmp_path / "cn.ts.pt")]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in recent torch
        scripted = torch.jit.load(str(tmp_path / "cn.ts.pt"))
        scripted.load_state_dict(reference.state_dict(), strict=True)
        with torch.no_grad():
            assert torch.allclose(scripted(x), expected, atol=1e-5)
        block = torch.jit.script(reference.stages[0][1])  # a container's own forward scripts too
    with torch.no_grad():
        h = torch.randn(2, 16, 8, 8)
        assert torch.allclose(block(h), reference.stages[0][1](h), atol=1e-6)


def test_the_ops_are_drawn_and_summarised_with_their_parameters(capsys):
    net = resdsl.loads(CONVNEXT_LIKE.replace("WIDE", "true"), path="cn.res")
    from resdsl import draw

    source = draw.build(net, "op").source
    assert "layer scale 1e-06" in source and "fc over channels, 64" in source and "layer norm" in source
    assert main(["summary", "convnext_tiny"]) == 0
    out = capsys.readouterr().out
    assert "28,589,128" in out


def test_a_checkpoints_layer_scale_of_another_shape_is_reported_at_its_op(tmp_path, capsys):
    """torchvision's (C, 1, 1) layer_scale given to a spec of timm's (C,) gamma: located at the op, whose
    node name is the parameter's key itself."""
    spec = tmp_path / "cn.res"
    spec.write_text("network cn {\n    input 8x6x6\n    conv 8 k3\n    g.gamma: layer_scale\n}\n")
    state = resdsl.load(str(spec)).to_torch().state_dict()
    state["g.gamma"] = torch.ones(8, 1, 1)
    torch.save(state, tmp_path / "w.pt")
    assert main(["compile", str(spec), "--weights", str(tmp_path / "w.pt"), "-o", str(tmp_path / "x.pt2")]) == 1
    err = capsys.readouterr().err
    assert "error[E0601]: `g.gamma`" in err and "8x1x1" in err and "cn.res:4:" in err


def test_freezing_a_part_freezes_its_layer_scales():
    from resdsl.train.checkpoint import freeze

    net = resdsl.loads(CONVNEXT_LIKE.replace("WIDE", "true"), path="cn.res")
    model = net.to_torch()
    count = freeze(model, net, ("stages",))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "stages.0.0.ls.gamma" in frozen and "stages.1.1.ls.gamma" in frozen
    assert count == sum(p.numel() for n, p in model.named_parameters() if n.startswith("stages."))
