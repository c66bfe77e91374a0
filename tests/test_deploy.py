"""`resdsl compile --deploy`: the fold and fuse arithmetic, the graph pass, every bundled spec, the CLI,
every emitted format, and RepVGG's fused convs against timm's own `reparameterize`."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torch.nn as nn
from family import perturb_norms, tiered

import resdsl
from resdsl.backend import to_torch
from resdsl.backend.deploy import (
    centred,
    deploy,
    deployed_state,
    fold_after,
    fold_before,
    identity_kernel,
    prove,
    standardise,
)
from resdsl.backend.layers import StdConv2d
from resdsl.cli import main
from resdsl.deploy_plan import Drop, Fold, Fuse, Materialise, plan_deploy

torch.manual_seed(0)


def random_bn(channels: int, dims: int = 2) -> nn.Module:
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims](channels).eval()
    perturb_norms(bn)
    return bn


def assert_close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> None:
    diff = (a - b).abs().max().item()
    assert diff <= rel * max(a.abs().max().item(), 1e-12), f"differ by {diff:.3g}"


# ---- the arithmetic -------------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [1, 4])
def test_a_norm_after_a_conv_folds_into_its_weight_and_bias(groups):
    conv, bn = nn.Conv2d(8, 16, 3, padding=1, groups=groups, bias=groups == 4), random_bn(16)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    w, b = fold_after(conv.weight, conv.bias, scale.detach(), (bn.bias - bn.running_mean * scale).detach())
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert_close(bn(conv(x)), nn.functional.conv2d(x, w.float(), b.float(), padding=1, groups=groups))


@pytest.mark.parametrize("groups", [1, 2])
def test_a_norm_before_a_conv_without_padding_or_an_fc_folds_into_it(groups):
    bn, conv = random_bn(8), nn.Conv2d(8, 6, 1, groups=groups)
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    shift = (bn.bias - bn.running_mean * scale).detach()
    w, b = fold_before(conv.weight, conv.bias, scale, shift, groups)
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert_close(conv(bn(x)), nn.functional.conv2d(x, w.float(), b.float(), groups=groups))
    bn1, fc = random_bn(8, 1), nn.Linear(8, 3)
    scale = (bn1.weight / torch.sqrt(bn1.running_var + bn1.eps)).detach()
    w, b = fold_before(fc.weight, fc.bias, scale, (bn1.bias - bn1.running_mean * scale).detach(), 1)
    v = torch.randn(4, 8)
    with torch.no_grad():
        assert_close(fc(bn1(v)), nn.functional.linear(v, w.float(), b.float()))


def test_kernels_are_centred_and_the_identity_is_a_centred_kernel_per_group():
    one = torch.randn(4, 2, 1, 1)
    padded = centred(one, (3, 3))
    assert padded.shape == (4, 2, 3, 3) and torch.equal(padded[:, :, 1, 1], one[:, :, 0, 0])
    assert torch.count_nonzero(padded) == torch.count_nonzero(one)  # zeros around it, nothing else
    x = torch.randn(1, 8, 6, 6, dtype=torch.float64)
    for groups in (1, 2, 8):
        w = identity_kernel(8, groups, (3, 3))
        assert torch.equal(nn.functional.conv2d(x, w, padding=1, groups=groups), x)
    volume = x[:, :, None]  # 8 channels, 1x6x6
    same = nn.functional.conv3d(volume, identity_kernel(8, 4, (1, 3, 3)), padding=(0, 1, 1), groups=4)
    assert torch.equal(same, volume)


def test_standardise_is_stdconvs_own_weight():
    conv = StdConv2d(4, 6, 3, padding=1)
    x = torch.randn(1, 4, 7, 7)
    with torch.no_grad():
        assert_close(conv(x), nn.functional.conv2d(x, standardise(conv.weight, conv.eps), padding=1))


# ---- the graph pass -------------------------------------------------------------------------------

REPVGG_LIKE = """
network rep {
    input 3x32x32
    conv 16 k3 -> bn -> relu
    residual { branches(2, merge = sum) { conv 16 k=3 if branch == 0 else 1 -> bn } } shortcut { bn }
    relu
    residual { conv 16 k3 d2 -> bn } shortcut { bn }
    gn 4 -> relu -> dropout 0.1
    conv 32 k1 -> relu -> bn -> conv 32 k1
    avgpool -> fc 10 -> bn
}
"""


def test_the_plan_folds_fuses_and_keeps_with_reasons():
    net = resdsl.loads(REPVGG_LIKE)
    plan = plan_deploy(net)
    folds = [s for s in plan.steps if isinstance(s, Fold)]
    fuses = [s for s in plan.steps if isinstance(s, Fuse)]
    assert [(f.norm, f.into, f.after) for f in folds if not f.after] == [("bn7", "conv6", False)]
    assert ("bn8", "fc", True) in [(f.norm, f.into, f.after) for f in folds]
    assert len(fuses) == 1 and fuses[0].kernel == (3, 3)
    assert sorted(t.kind for t in fuses[0].terms) == ["conv", "conv", "norm"]
    assert [s.kind for s in plan.steps if isinstance(s, Drop)] == ["dropout"]
    kept = {k.node: k.reason for k in plan.kept}
    assert "own input's statistics" in kept["gn1"]
    # the dilated conv is no centred kernel: its sum with the identity BN stays, that BN with it
    assert any("batch norm" in reason for reason in kept.values())
    kinds = [n.kind for n in plan.deployed.ops.nodes.values()]
    assert "dropout" not in kinds and kinds.count("add") == 1
    assert plan.deployed.params < net.params and plan.deployed.macs < net.macs
    model = net.to_torch().eval()
    perturb_norms(model)
    deployed, proof = deploy(plan, model)
    assert proof.holds and proof.max_relative < 1e-5


def test_stdconv_is_materialised_and_the_result_is_a_network_summary_and_ejector_take():
    net = resdsl.load("resnetv2_50x1_bit", input_shape=(3, 64, 64))
    plan = plan_deploy(net)
    assert plan.count(Materialise) == 53
    assert "stdconv" not in {n.kind for n in plan.deployed.ops.nodes.values()}
    assert plan.deployed.record.parts  # the summary's rows come from the record


def test_a_scaled_stdconv_is_materialised_with_its_gain_and_fixed_scale():
    """timm's ScaledStdConv2d (NF-ResNets): the plain conv's weight is the standardised filter times the
    learned gain and γ/√fan_in, with the gain gone from the state; grouped and per-axis kernels too."""
    net = resdsl.loads(
        "network nf {\n    input 8x12x12\n"
        "    scaled_stdconv 16 k3 gamma=1.7 bias -> relu -> scaled_stdconv 16 k=(1, 3) g=4 gain_init=0.5\n"
        "    scaled_stdconv 8 k1 gain=false eps=1e-4\n}"
    )
    model = net.to_torch().eval()
    with torch.no_grad():  # gains and biases of their own, so that a gain left out or misplaced shows
        for name, tensor in model.named_parameters():
            if name.endswith(("gain", "bias")):
                tensor.copy_(torch.rand(tensor.shape) + 0.5)
    plan = plan_deploy(net)
    assert plan.count(Materialise) == 3 and {n.kind for n in plan.deployed.ops.nodes.values()} == {
        "input",
        "conv",
        "relu",
    }
    deployed, proof = deploy(plan, model)
    assert proof.holds and proof.max_relative < 1e-5, proof.line()
    assert not any(name.endswith("gain") for name, _ in deployed.named_parameters())
    assert plan.original.params - plan.deployed.params == 16 + 16  # the two learned gains
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        assert (deployed(x) - model(x)).abs().max() <= 1e-5 * model(x).abs().max()


def sweep_input(name: str) -> tuple[int, ...] | None:
    """A small input for the sweep: 64x64 images, 32x32 frames of 4, 256-long sequences; the spec's own if smaller."""
    shape = resdsl.load(name).input_shape
    if len(shape) == 3:
        return (shape[0], min(shape[1], 64), min(shape[2], 64))
    if len(shape) == 4:
        return (shape[0], min(shape[1], 4), min(shape[2], 32), min(shape[3], 32))
    if len(shape) == 2:
        return (shape[0], min(shape[1], 256))
    return None


def calm_norms(model: nn.Module, seed: int = 0) -> None:
    """Norm statistics near the identity map's and scales near 0.1, all different: each residual block adds
    a little to its input, so 600 blocks stay finite in fp32."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "running_var", None) is not None:
                for tensor, centre in ((module.running_mean, 0.0), (module.running_var, 1.0), (module.bias, 0.0)):
                    tensor.copy_(centre + (torch.rand(tensor.shape, generator=generator) - 0.5) * 0.1)
                module.weight.copy_(0.1 + (torch.rand(module.weight.shape, generator=generator) - 0.5) * 0.1)


FAST = {"resnet18", "preact_resnet18", "resnetv2_50d_gn", "mlp_resnet", "r2plus1d_18", "resnet50_fpn"}


# One spec of each construct the pass meets: the torchvision ResNets (basic and bottleneck), the CIFAR ones
# (option A's zero pad), pre-activation, the deep stems and avg-pool shortcuts (D), SE, ECA, ResNeXt, the
# multi-branch families (Res2Net, SKNet, ResNeSt), BiT's stdconv, EvoNorm, blur pools, the ResNet-RS stem,
# DenseNet's concat, 1-D and 3-D networks, several outputs and resampling, RegNet (both names), GENet,
# ConvNeXt (layer norms: kept), the NF-ResNets (scaled_stdconv), RepVGG (sums fused). Every bundled spec but
# the 8 widest deployed and proved equal when the pass was written; sweeping them all cost the suite over
# ten minutes on two cores.
SWEPT = sorted(
    FAST
    | {
        "resnet50",
        "resnet20",
        "resnet50d",
        "seresnet50",
        "ecaresnet26t",
        "resnext50_32x4d",
        "res2net50_26w_4s",
        "skresnet18",
        "resnest14d",
        "resnetv2_50x1_bit",
        "resnetv2_50d_evos",
        "resnetblur18",
        "resnetrs50",
        "densenet_cifar",
        "monai_resnet18",
        "mc3_18",
        "unet_resnet34",
        "regnet_x_400mf",
        "regnety_002",
        "gernet_s",
        "timm_convnext_atto",
        "nf_regnet_b0",
        "repvgg_a0",
    }
)


@pytest.mark.parametrize("name", tiered(SWEPT, FAST))
def test_every_bundled_spec_deploys_equal_to_itself(name):
    try:
        net = resdsl.load(name, input_shape=sweep_input(name))
    except resdsl.SpecError:  # a spec whose strides need its own input size
        net = resdsl.load(name)
    model = net.to_torch().eval()
    perturb_norms(model)
    with torch.no_grad():
        out = model(torch.randn(1, *net.input_shape))
    tensors = out.values() if isinstance(out, dict) else out if isinstance(out, list) else [out]
    if not all(t.abs().max() < 1e10 for t in tensors):  # resnet1202: 600 blocks of norms of gain up to 2
        calm_norms(model)  # overflow fp32 (NaN is not below 1e10 either)
    plan = plan_deploy(net)
    deployed, proof = deploy(plan, model)
    assert proof.holds, proof.line()
    assert plan.deployed.params == sum(p.numel() for p in deployed.parameters())
    folded = plan.count(Fold)
    norms = sum(n.kind in ("bn", "frozen_bn") for n in net.ops.nodes.values())
    assert (
        folded
        + sum(k.kind in ("bn", "frozen_bn") for k in plan.kept)
        + sum(t.kind == "norm" for s in plan.steps if isinstance(s, Fuse) for t in s.terms)
        == norms
    )


# ---- RepVGG against timm ---------------------------------------------------------------------------


def test_repvgg_fused_convs_equal_timms_reparameterize():
    import timm
    from timm.utils.model import reparameterize_model

    reference = timm.create_model("repvgg_a0").eval()
    perturb_norms(reference)
    net = resdsl.load("repvgg_a0", input_shape=(3, 64, 64))
    model = net.to_torch().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    plan = plan_deploy(net)
    deployed, proof = deploy(plan, model)
    assert proof.holds
    fused = reparameterize_model(reference)
    ours = deployed.state_dict()
    theirs = fused.state_dict()
    convs = [k for k in theirs if "reparam_conv" in k]
    assert len(convs) == 2 * plan.count(Fuse) == 2 * 22  # weight and bias of the stem's and every block's conv
    assert all(k in ours for k in convs)
    for key in convs:
        assert_close(theirs[key], ours[key], rel=1e-5)


# ---- the command ----------------------------------------------------------------------------------


def test_compile_deploy_writes_a_state_that_loads_back_into_the_deployed_form(tmp_path, capsys):
    out = tmp_path / "r18.state.pt"
    assert main(["compile", "resnet18", "--deploy", "--emit", "state", "-o", str(out), "--input", "3x64x64"]) == 0
    printed = capsys.readouterr().out
    assert "folded 20 batch norms" in printed and "equal within the tolerance" in printed
    assert "params 11,689,512 -> 11,684,712" in printed
    payload = torch.load(str(out), weights_only=True)
    assert payload["deployed"] is True
    deployed = to_torch(plan_deploy(resdsl.load("resnet18", input_shape=(3, 64, 64))).deployed)
    deployed.load_state_dict(payload["state_dict"], strict=True)


def test_compile_deploy_takes_trained_weights_and_refuses_what_it_cannot_prove(tmp_path, capsys):
    net = resdsl.load("resnet20")
    model = net.to_torch().eval()
    perturb_norms(model)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "d.state.pt"
    args = ["compile", "resnet20", "--weights", str(tmp_path / "w.pt"), "--deploy", "--emit", "state", "-o", str(out)]
    assert main(args) == 0
    plan = plan_deploy(net)
    deployed = to_torch(plan.deployed)
    deployed.load_state_dict(torch.load(str(out), weights_only=True)["state_dict"], strict=True)
    assert prove(plan, model, deployed).max_relative < 1e-5  # the trained weights, folded
    out.unlink()
    broken = model.state_dict()
    broken["layer2.0.bn1.running_var"] -= 10.0  # negative: the trained network itself gives NaN
    torch.save(broken, tmp_path / "nan.pt")
    assert main(args[:3] + [str(tmp_path / "nan.pt")] + args[4:]) == 1
    err = capsys.readouterr().err
    assert "error[E0603]" in err and "not finite" in err
    assert not out.exists()
    assert main(["compile", "resnet20", "--deploy-tolerance", "1e-3", "-o", str(out)]) == 2


def test_a_deployed_network_that_differs_is_not_proven():
    torch.manual_seed(0)
    net = resdsl.load("resnet20")
    model = net.to_torch().eval()
    perturb_norms(model)
    plan = plan_deploy(net)
    deployed, proof = deploy(plan, model)
    assert proof.holds and proof.exact is None  # within 1e-4 in fp32: no float64 run needed
    with torch.no_grad():
        deployed.get_submodule("layer3.2.conv2").bias[5] += 1.0  # one wrong bias, deep in the network
    wrong = prove(plan, model, deployed)
    # the float64 rebuild from the original is exact; the deployed fp32 module is far further from it than rounding
    assert not wrong.holds and wrong.exact is not None and wrong.exact < 1e-9
    assert wrong.deployed_rounding > 100 * wrong.own_rounding
    assert "NOT equal" in wrong.line()
    with pytest.raises(resdsl.SpecError, match="E0603"):
        from resdsl.backend.deploy import refusal

        raise resdsl.SpecError([refusal(net, wrong)], net.sources)


@pytest.mark.slow  # two float64 runs of a 101-layer network: 20 s
def test_rounding_a_network_amplifies_is_told_from_an_error():
    """ecaresnet101d at random initialisation with perturbed norms amplifies fp32 rounding beyond 1e-4: the
    float64 run shows the rewrite exact and the deployed network no further from it than the trained one."""
    net = resdsl.load("ecaresnet101d", input_shape=(3, 64, 64))
    model = net.to_torch().eval()
    perturb_norms(model)
    deployed, proof = deploy(plan_deploy(net), model)
    assert proof.holds
    if proof.exact is not None:  # on this machine's rounding the fp32 difference is above 1e-4
        assert proof.exact < 1e-9 and proof.within_rounding and "fp32 rounding" in proof.line()


EMITS = ["pt2", "torchscript", "state", "python"] + (
    ["onnx"] if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxscript") else []
)


@pytest.mark.parametrize("kind", EMITS)
def test_every_format_of_the_deployed_form_computes_the_trained_network(kind, tmp_path):
    net = resdsl.load("resnet20")
    model = net.to_torch().eval()
    perturb_norms(model)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / ("m.py" if kind == "python" else f"m.{kind}")
    args = ["compile", "resnet20", "--weights", str(tmp_path / "w.pt"), "--deploy", "--emit", kind, "-o", str(out)]
    assert main(args) == 0
    deployed = to_torch(plan_deploy(net).deployed)
    if kind == "pt2":
        program = torch.export.load(str(out))
        deployed.load_state_dict(program.state_dict, strict=True)
        run = program.module()
    elif kind == "torchscript":
        run = torch.jit.load(str(out))
        deployed.load_state_dict(run.state_dict(), strict=True)
    elif kind == "state":
        deployed.load_state_dict(torch.load(str(out), weights_only=True)["state_dict"], strict=True)
        run = deployed
    elif kind == "python":
        spec = importlib.util.spec_from_file_location("deployed_resnet20", out)
        module = importlib.util.module_from_spec(spec)
        sys.modules["deployed_resnet20"] = module
        spec.loader.exec_module(module)
        run = module.build().eval()
        assert sum(p.numel() for p in run.parameters()) == plan_deploy(net).deployed.params
        state = deployed_state(plan_deploy(net), model.state_dict())
        run.load_state_dict(state, strict=True)
    else:  # onnx: no runtime to run it here; its graph must be the deployed one, weights included
        import onnx

        proto = onnx.load(str(out))
        onnx.checker.check_model(proto)
        ops = [node.op_type for node in proto.graph.node]
        convs = sum(node.kind == "conv" for node in plan_deploy(net).deployed.ops.nodes.values())
        assert "BatchNormalization" not in ops and ops.count("Conv") == convs
        stored = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}
        weights = deployed_state(plan_deploy(net), model.state_dict())
        found = [k for k in weights if k in stored]
        assert found and all(torch.equal(weights[k], torch.from_numpy(stored[k].copy())) for k in found)
        return
    x = torch.randn(2, *net.input_shape)
    with torch.no_grad():
        assert_close(model(x), run(x))


def test_a_norm_after_a_fused_sum_folds_into_the_fused_conv():
    net = resdsl.loads(
        "network n {\n    input 3x32x32\n    conv 16 k3 -> relu\n"
        "    branches(2, merge = sum) { conv 16 k=3 if branch == 0 else 1 -> bn }\n"
        "    bn -> relu\n    avgpool -> fc 10\n}\n"
    )
    plan = plan_deploy(net)
    assert [(s.norm, s.into) for s in plan.steps if isinstance(s, Fold)][-1] == ("bn3", "reparam_conv")
    assert list(plan.deployed.ops.nodes) == ["input", "conv1", "relu", "reparam_conv", "relu2", "avgpool", "fc"]
    assert "folded 3 batch norms (3 into convs, 0 into fc), fused 1 sum" in plan.lines()[0]
    model = net.to_torch().eval()
    perturb_norms(model)
    assert deploy(plan, model)[1].max_relative < 1e-5
