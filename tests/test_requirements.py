"""`require` (E0211), and the bundled library's blocks honouring every argument (issue 8, section 4)."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

import resdsl
from resdsl.cli import main


def spec_error(name: str, **params) -> resdsl.SpecError:
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.load(name, **params)
    return info.value


def test_an_unknown_depth_is_one_error_at_the_set_naming_depth(capsys):
    assert main(["check", "resnet", "--set", "depth=42"]) == 1
    err = capsys.readouterr().err
    assert err.count("error[") == 1 and "error[E0211]: depth must be 18, 34, 50, 101 or 152" in err
    assert "--> <--set depth=42>:1:1" in err and "here depth = 42" in err
    assert "E0305" not in err  # not the four `layers[0]` index errors it used to cause


def test_every_depth_of_table_1_still_checks():
    for depth, params in (
        (18, 11_689_512),
        (34, 21_797_672),
        (50, 25_557_032),
        (101, 44_549_160),
        (152, 60_192_808),
    ):  # torchvision's figures
        assert resdsl.load("resnet", depth=depth).params == params


def test_basic_refuses_groups_and_base_width_as_torchvision_does():
    with pytest.raises(ValueError, match="BasicBlock only supports groups=1 and base_width=64"):
        torchvision.models.resnet.ResNet(
            torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], groups=32, width_per_group=4
        )
    error = spec_error("resnet18", groups=32, width_per_group=4)
    assert [d.code for d in error.diagnostics] == ["E0211"]  # once, not once per stage
    assert "groups=1 and base_width=64" in error.diagnostics[0].message


def test_fc_residual_refuses_the_stride_of_a_stage():
    text = 'use "blocks.res"\nnetwork n {\n input 16\n layer1: fc_residual(16) x2 s2\n}\n'
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text, path="n.res")
    (diag,) = info.value.diagnostics
    assert diag.code == "E0211" and (diag.line, diag.column) == (4, 29)  # the `s2`


def test_an_alias_default_that_breaks_a_requirement_is_reported_at_the_alias(tmp_path):
    (tmp_path / "bad.res").write_text('use "resnet.res"\nnetwork bad = resnet(depth = 42)\n')
    error = spec_error(str(tmp_path / "bad.res"))
    (diag,) = error.diagnostics
    assert diag.code == "E0211" and diag.span.path.endswith("bad.res") and diag.line == 2


def test_requirements_hold_before_defaults_are_evaluated():
    text = 'network n(d = 7, half = d / 2) {\n require d % 2 == 0, "d must be even"\n input 3x8x8\n relu\n}\n'
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text)
    assert [(d.code, d.message) for d in info.value.diagnostics] == [("E0211", "d must be even")]


def test_require_only_at_the_top_of_a_template_and_in_needs_a_list():
    inner = "network n {\n input 3x8x8\n residual {\n  require true\n  relu\n }\n}\n"
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(inner)
    assert [d.code for d in info.value.diagnostics] == ["E0208"]
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n(d = 1) {\n require d in 3\n input 3x8x8\n relu\n}\n")
    assert [d.code for d in info.value.diagnostics] == ["E0302"]
    assert resdsl.loads("network n(d = 2) {\n require d not in [1, 3] and true != 1\n input 3x8x8\n relu\n}\n")


def test_deep_stem_width_matches_timm_resnet50s():
    """timm's resnet50s: stem 64-64-128, so layer1 takes 128 channels."""
    reference = timm.create_model("resnet50s", pretrained=False).eval()
    net = resdsl.load("resnet", depth=50, deep_stem=True, stem_width=64, input_shape=(3, 64, 64))
    assert net.params == sum(p.numel() for p in reference.parameters())
    model = net.to_torch().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-5)


def test_preact_blocks_project_the_preactivated_input_with_a_bare_conv_as_timm_resnetv2():
    """timm's resnetv2_50 (He et al. 2016): the same tensors (mapped by name), the same outputs."""
    text = """use "blocks.res"
network v2(classes = 1000) {
    input 3x64x64
    stem { conv 64 k7 s2 -> maxpool k3 s2 }
    layer1: preact_bottleneck(64) x3
    layer2: preact_bottleneck(128) x4 s2
    layer3: preact_bottleneck(256) x6 s2
    layer4: preact_bottleneck(512) x3 s2
    head { bn -> relu -> avgpool -> fc classes }
}
"""
    reference = timm.create_model("resnetv2_50", pretrained=False).eval()
    net = resdsl.loads(text, path="v2.res")
    assert net.params == sum(p.numel() for p in reference.parameters()) == 25_549_352
    downsample = [n for n, d in net.ops.nodes.items() if d.inserted and n.startswith("layer2.0.")]
    assert downsample == ["layer2.0.downsample.0"]  # a conv alone, no bn
    assert list(net.ops.pred["layer2.0.downsample.0"]) == ["layer2.0.preact"]

    def timm_name(key: str) -> str:
        key = key.replace("conv1.weight", "stem.conv.weight") if key == "conv1.weight" else key
        if key.startswith("layer"):
            stage, block, rest = key.split(".", 2)
            rest = {"downsample.0": "downsample.conv"}.get(rest.rsplit(".", 1)[0], rest.rsplit(".", 1)[0])
            rest = rest.replace("bn", "norm") + "." + key.rsplit(".", 1)[1]
            return f"stages.{int(stage[5:]) - 1}.blocks.{block}.{rest}"
        return key.replace("bn1.", "norm.").replace("fc.", "head.fc.")

    model = net.to_torch().eval()
    theirs = reference.state_dict()
    mapped = {k: theirs[timm_name(k)].reshape(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-4)
