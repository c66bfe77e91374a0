"""Every ResNet of timm's `resnet`, `res2net`, `sknet`, `resnest` and `resnetv2` modules, each a bundled
spec, checked against timm itself.

For all of them, on PyTorch's meta device (no memory, no arithmetic): the state dict has
timm's names and shapes (so `load_state_dict(strict=True)` works), and the static
parameter and MAC counts equal timm's model's, counted by torch's FlopCounterMode at
224×224. For every one of them the outputs also equal timm's in eval mode with non-trivial
norm statistics, at 64×64.
"""

from __future__ import annotations

import pytest
import timm
import torch
from family import NOT_YET, REPRESENTATIVES, TIMM_ALL, TIMM_FAMILIES, tiered
from torch.utils.flop_counter import FlopCounterMode

import resdsl

# Outputs compared in full, for every model: construction dominates (resnetv2_152x4_bit, 936 M parameters,
# takes 45 s), the whole sweep about 4 minutes on the 2-core machine. The fast tier (-m "not slow") keeps one
# model of each of timm's five modules, each with more than one of its constructs.
NUMERIC = TIMM_ALL
NUMERIC_FAST = {
    "seresnext26t_32x4d",  # resnet: tiered deep stem, average-pool shortcut, SE, groups
    "res2net50_26w_4s",
    "skresnet18",
    "resnest14d",
    "resnetv2_50d_evos",
}  # resnetv2: pre-activation, deep stem, EvoNorm


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine weights, so that a misplaced BN shows in the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            if (
                isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))
                or hasattr(module, "v")
                or hasattr(module, "tau")
            ):  # timm's EvoNorm2dS0 and FilterResponseNormTlu2d too
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
                for extra in ("v", "tau"):
                    if isinstance(getattr(module, extra, None), torch.nn.Parameter):
                        getattr(module, extra).copy_(
                            torch.randn(module.weight.shape, generator=generator) * 0.3 + (1.0 if extra == "v" else 0.0)
                        )


@pytest.mark.parametrize("module", TIMM_FAMILIES)
def test_the_family_is_every_model_of_timms_module(module):
    listed = set(timm.list_models(module=module))
    models = set(TIMM_FAMILIES[module])
    assert models.isdisjoint(NOT_YET)
    assert models | (set(NOT_YET) & listed) == listed, "timm's list changed: add a spec or say why not"
    assert models <= set(resdsl.library.bundled_names())


@pytest.mark.parametrize("name", tiered(TIMM_ALL, REPRESENTATIVES))
def test_names_shapes_params_and_macs_equal_timm(name):
    net = resdsl.load(name)  # 3x224x224, as timm's default
    with torch.device("meta"):
        reference = timm.create_model(name, pretrained=False).eval()
        ours = net.to_torch().eval()
        theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
        mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        assert mine == theirs
        x = torch.empty((1,) + net.input_shape)
        with FlopCounterMode(display=False) as counter:
            out = reference(x)
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs == counter.get_total_flops()
    assert net.output_shape == tuple(out.shape[1:])


def _without_init(net) -> torch.nn.Module:
    """The compiled module with its storage allocated but not initialised (the test loads every tensor
    next): half the construction time of the big models. Only for modules whose every buffer is saved
    in the state dict (not BlurPool's filter)."""
    with torch.device("meta"):
        model = net.to_torch()
    assert all(not m._non_persistent_buffers_set for m in model.modules())
    return model.to_empty(device="cpu").eval()


@pytest.mark.parametrize("name", tiered(NUMERIC, NUMERIC_FAST))
def test_outputs_equal_timm(name):
    net = resdsl.load(name, input_shape=(3, 64, 64))
    torch.manual_seed(0)
    reference = timm.create_model(name, pretrained=False).eval()
    randomise_norms(reference)
    ours = (
        net.to_torch().eval()
        if any(kind == "blurpool" for kind in (d.kind for d in net.ops.nodes.values()))
        else _without_init(net)
    )
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_the_family_page_lists_every_model_with_its_figures():
    """docs/family.md: one row per model, with the figures the specs give (checked against timm above)."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "family.md").read_text(encoding="utf-8")
    rows = dict(
        (m[0], (int(m[1].replace(",", "")), m[2]))
        for m in re.findall(r"^\| `(\w+)` \| `[^`]*` \| ([\d,]+) \| ([\d.]+) G \|$", page, re.M)
    )
    assert list(rows) == list(TIMM_ALL)
    for name, (params, macs) in rows.items():
        net = resdsl.load(name)
        assert (params, macs) == (net.params, f"{net.macs / 1e9:.2f}"), name
    for name in NOT_YET:
        assert f"`{name}`" in page


TORCHVISION = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)


def test_these_are_all_of_torchvisions_resnets():
    import torchvision

    names = {n for n in torchvision.models.list_models(module=torchvision.models) if "resne" in n}
    assert names == set(TORCHVISION)


@pytest.mark.parametrize("name", tiered(TORCHVISION, REPRESENTATIVES))
def test_names_shapes_params_and_macs_equal_torchvision(name):
    """torchvision's ResNets are the same specs: its state dicts load, and the counts are its models'."""
    import torchvision

    net = resdsl.load(name)
    with torch.device("meta"):
        reference = getattr(torchvision.models, name)().eval()
        ours = net.to_torch().eval()
        assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == {
            k: tuple(v.shape) for k, v in reference.state_dict().items()
        }
        with FlopCounterMode(display=False) as counter:
            reference(torch.empty((1,) + net.input_shape))
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs == counter.get_total_flops()
