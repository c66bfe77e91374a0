"""Resampling (docs/language.md §22): `upsample`, the fit a `shortcut nearest` statement declares, and
`norm frozen_bn`; torchvision's ResNet-FPN backbone and DeepLabV3 and smp's U-Net at strict parity.

Each bundled spec loads its reference's state dict with strict=True, gives its outputs (in eval mode,
with perturbed norm statistics) within 1e-5, and its static parameters, MACs and output shapes are
the reference's own (FlopCounterMode on the meta device: interpolation counts no FLOPs, as here).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from family import perturb_norms
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

import resdsl
from resdsl.backend.runtime import runtime_mismatch
from resdsl.cli import main
from resdsl.errors import SpecError

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def at_parity(name: str, reference: torch.nn.Module) -> resdsl.Network:
    net = resdsl.load(name, image_size=64)
    ours = net.to_torch().eval()
    reference.eval()
    perturb_norms(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        mine, theirs = ours(X), reference(X)
    assert type(mine) is type(theirs)
    if isinstance(theirs, dict):
        assert list(mine) == list(theirs)
        mine, theirs = list(mine.values()), list(theirs.values())
    else:
        mine, theirs = [mine], [theirs]
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape
        assert float((a - b).abs().max() / b.abs().max()) < 1e-5
    # the static figures are the reference's, and the compiled module's
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        out = reference.to("meta")(torch.empty((1,) + net.input_shape))
    outs = list(out.values()) if isinstance(out, dict) else [out]
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs == counter.get_total_flops()
    shapes = [o.shape for o in net.outputs] if net.outputs else [net.output_shape]
    assert shapes == [tuple(t.shape[1:]) for t in outs]
    assert runtime_mismatch(net, batch=2) is None
    return net


def test_torchvision_resnet50_fpn_backbone():
    reference = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5)
    net = at_parity("resnet50_fpn", reference)
    assert [(o.key, o.shape, o.stride) for o in net.outputs] == [
        ("0", (256, 16, 16), (4, 4)),
        ("1", (256, 8, 8), (8, 8)),
        ("2", (256, 4, 4), (16, 16)),
        ("3", (256, 2, 2), (32, 32)),
        ("pool", (256, 1, 1), (64, 64)),
    ]
    assert (net.params, resdsl.load("resnet50_fpn").macs) == (26_799_296, 6_929_104_896)


@pytest.mark.parametrize("aux", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_torchvision_deeplabv3_resnet50(aux):
    reference = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None, aux_loss=aux)
    net = at_parity("deeplabv3_resnet50_aux" if aux else "deeplabv3_resnet50", reference)
    assert [o.key for o in net.outputs] == (["out", "aux"] if aux else ["out"])
    assert net.params == (42_004_074 if aux else 39_638_869)


@pytest.mark.slow
def test_smp_unet_resnet34():
    smp = pytest.importorskip("segmentation_models_pytorch")
    net = at_parity("unet_resnet34", smp.Unet("resnet34", encoder_weights=None))
    assert (net.params, net.output_shape) == (24_436_369, (1, 64, 64))


@pytest.mark.slow
def test_the_fits_follow_the_input_size_as_the_references_do():
    """A resize takes the other tensor's size, not a factor: at 72×72 (9×9 after stride 8, which
    no factor of 8 gives back) DeepLabV3 returns 72×72, as torchvision's."""
    net = resdsl.load("deeplabv3_resnet50", image_size=72)
    assert net.outputs[0].shape == (21, 72, 72)
    reference = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None).eval()
    ours = net.to_torch().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 72, 72)
    with torch.no_grad():
        assert torch.allclose(ours(x)["out"], reference(x)["out"], atol=1e-5)
    fpn = resdsl.load("resnet50_fpn", image_size=100)  # 25, 13, 7, 4: the top-down path is no ×2
    assert [o.shape[1] for o in fpn.outputs] == [25, 13, 7, 4, 2]
    assert runtime_mismatch(fpn) is None


UPSAMPLE = """network up(dims = 2, mode = nearest) {
    input 4 x [8] * dims
    conv 8 k3 -> upsample mode scale=2 -> upsample linear scale=(1.5 if dims == 1 else 2) align_corners
}
"""


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_upsample_on_every_rank(dims):
    net = resdsl.loads(UPSAMPLE, dims=dims)
    size = 24 if dims == 1 else 32
    assert net.output_shape == (8,) + (size,) * dims and net.params == 8 * 4 * 3**dims
    model = net.to_torch()
    names = [type(m).__name__ for m in model.modules()]
    assert names.count("Upsample") == 2
    assert model.upsample2.mode == {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]
    assert model.upsample2.align_corners is True and model.upsample.mode == "nearest"
    assert runtime_mismatch(net, batch=2) is None


def test_upsample_counts_nothing_and_a_fit_is_drawn_as_inserted():
    net = resdsl.loads(
        "network u {\n input 3x16x16\n shortcut nearest\n a: conv 8 k3\n conv 8 k3 s2\n"
        " residual { from a -> conv 8 k1 }\n upsample\n}\n"
    )
    assert net.ops.nodes["upsample"].params == net.ops.nodes["upsample"].macs == 0
    fit = net.ops.nodes["add_up"]
    assert (fit.kind, fit.inserted, fit.shape, net.ops.nodes["add"].shortcut) == (
        "resize",
        True,
        (8, 16, 16),
        "upsample",
    )
    assert net.output_shape == (8, 32, 32)
    assert [p["kind"] for p in net.projections()] == ["upsample"]
    assert runtime_mismatch(net) is None


def test_a_fit_then_a_projection_where_the_channels_differ():
    net = resdsl.loads(
        "network u {\n input 3x16x16\n shortcut nearest\n a: conv 8 k3\n conv 4 k3 s2\n"
        " residual { from a -> conv 8 k1 }\n}\n"
    )
    assert [n for n in net.ops.nodes if n.startswith(("add", "downsample"))] == [
        "add_up",
        "downsample.0",
        "downsample.1",
        "add",
    ]
    assert runtime_mismatch(net) is None


def test_frozen_bn_has_buffers_only():
    net = resdsl.loads("network f {\n input 3x8x8\n norm frozen_bn\n conv 4 k3 -> bn\n}\n")
    assert net.ops.nodes["bn1"].kind == "frozen_bn" and net.params == 4 * 3 * 9
    model = net.to_torch()
    assert sorted(model.state_dict()) == [
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.weight",
        "conv1.weight",
    ]
    frozen = torchvision.ops.misc.FrozenBatchNorm2d(4)
    perturb_norms(frozen)
    model.bn1.load_state_dict(frozen.state_dict())
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(model.bn1(x), frozen(x), atol=1e-6)


@pytest.mark.parametrize(
    "text, code",
    [
        ("input 4x8x8x8\n upsample bilinear", "E0412"),  # bilinear on a volume
        ("input 4x8\n upsample trilinear to_input", "E0412"),
        ("input 4x8x8\n upsample nearest align_corners", "E0203"),  # PyTorch refuses the corners with nearest
        ("input 4x8x8\n upsample nearest scale=2 to_input", "E0203"),
        ("input 4x8x8\n upsample cubic", "E0201"),
        ("input 4x8x8\n upsample 2", "E0302"),  # the mode is a word; the factor is `scale`
        ("input 4x8x8\n upsample scale=0.05", "E0403"),
        ("input 4x8x8\n upsample scale=(2, 2, 2)", "E0411"),
        ("input 4\n upsample", "E0406"),
        # without a fit in force, a smaller shortcut is refused as before
        ("input 4x8x8\n a: conv 4 k3\n conv 4 k3 s2\n residual { from a -> conv 4 k1 }", "E0407"),
        ("input 4x8x8\n a: conv 4 k3\n conv 4 k3 s2\n dense { from a }", "E0404"),
        ("input 4x8x8x8\n shortcut bilinear\n a: conv 4 k3\n conv 4 k3 s2\n dense { from a }", "E0412"),
    ],
)
def test_mistakes_are_located(text, code):
    with pytest.raises(SpecError) as info:
        resdsl.loads("network n {\n " + text + "\n}\n")
    assert code in {d.code for d in info.value.diagnostics}


def test_a_stage_declares_a_fit_for_the_blocks_it_calls():
    """A block whose main path upsamples: its shortcut is the smaller input, resized under the stage's fit."""
    text = """block up(width, stride = 1) {
    residual { conv width k3 -> upsample }
    relu
}
network n {
    input 4x8x8
    layer1: up(4) x2 shortcut nearest
}
"""
    net = resdsl.loads(text)
    assert [n for n in net.ops.nodes if n.endswith("_up")] == ["layer1.0.add_up", "layer1.1.add_up"]
    assert net.output_shape == (4, 32, 32) and runtime_mismatch(net) is None
    with pytest.raises(SpecError):  # without it, E0407 as before
        resdsl.loads(text.replace(" shortcut nearest", ""))


def test_the_family_page_lists_the_decoders_with_their_figures():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "family.md").read_text(encoding="utf-8")
    row = r"^\| `(\w+)` \| `[^|]*` \| ([\d×]+) \| [^|]+ \| ([\d,]+) \| ([\d.]+) G \|$"
    rows = re.findall(row, page, re.M)
    assert {r[0] for r in rows} == {"resnet50_fpn", "deeplabv3_resnet50", "deeplabv3_resnet50_aux", "unet_resnet34"}
    for name, shape, params, macs in rows:
        net = resdsl.load(name)
        assert "×".join(map(str, net.input_shape)) == shape
        assert (f"{net.params:,}", f"{net.macs / 1e9:.2f}") == (params, macs), name


@pytest.mark.parametrize("name", ["resnet50_fpn", "unet_resnet34"])
def test_torchscript_runs_the_frozen_norms_and_resizes(name, tmp_path):
    # `compile --emit torchscript`: FrozenBatchNorm's buffers and resize_as script, and give the module's outputs
    assert main(["compile", name, "--input", "3x64x64", "--emit", "torchscript", "-o", str(tmp_path / "m.ts")]) == 0
    net = resdsl.load(name, input_shape=(3, 64, 64))
    scripted = torch.jit.load(str(tmp_path / "m.ts")).eval()
    model = net.to_torch().eval()
    model.load_state_dict(scripted.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, expected = scripted(x), model(x)
    pairs = zip(got.values(), expected.values()) if isinstance(expected, dict) else [(got, expected)]
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-5)


UPSAMPLING_BLOCK = """
block ups(w, f = 2, ac = false) {
    conv w k3 -> upsample bilinear scale=f align_corners=ac
}
network up2 {
    input 3x16x16
    ups(8) -> ups(8, f = 3, ac = true) -> upsample nearest
}
"""


def test_upsample_ejects_with_its_mode_scale_and_align_corners_as_the_calls_give_them(tmp_path, capsys):
    """`--emit python` writes `upsample` as the compiled network builds it: the scale and align_corners
    as the block's parameters, the mode as its word (a flag or word the ejector once passed symbolically
    to the op's rules made a traceback)."""
    spec = tmp_path / "up2.res"
    spec.write_text(UPSAMPLING_BLOCK, encoding="utf-8")
    out = tmp_path / "up2.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    source = out.read_text(encoding="utf-8")
    assert "nn.Upsample(scale_factor=f, mode='bilinear', align_corners=ac)" in source
    assert "nn.Upsample(scale_factor=2, mode='nearest')" in source
    namespace: dict = {}
    exec(compile(source, str(out), "exec"), namespace)
    ejected, compiled = namespace["build"]().eval(), resdsl.loads(UPSAMPLING_BLOCK).to_torch().eval()
    ejected.load_state_dict(compiled.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(ejected(x), compiled(x)) and ejected(x).shape == (2, 8, 192, 192)  # 16 · 2 · 3 · 2
