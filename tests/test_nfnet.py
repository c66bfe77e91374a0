"""timm's normaliser-free ResNets (specs/normfree.res, nf_resnet.res, nf_regnet.res) against timm's own models.

Each bundled model loads timm's state dict with strict=True and computes timm's outputs (relative
difference under 1e-5 at 64×64, every parameter perturbed so that a misplaced gain, bias, beta or
alpha shows); its static parameter count is timm's, and its static MACs are torch's FlopCounterMode
count of timm's model (conv and fc only, as torchvision counts) at the same input.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from family import tiered
from torch.utils.flop_counter import FlopCounterMode

import resdsl

MODELS = ("nf_resnet50", "nf_regnet_b0")
FAST = ("nf_regnet_b0",)  # the fast tier's representative: SE, groups, widths rounded, a final conv
SMALL = (3, 64, 64)


def _perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random (gains around 1, the rest around 0), so that each one shows in the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(1.0 + 0.2 * noise if name.endswith("gain") else 0.5 * noise)
    return model.eval()


def _timm(name: str) -> torch.nn.Module:
    return _perturbed(timm.create_model(name, pretrained=False))


@pytest.mark.parametrize("name", tiered(MODELS, FAST))
def test_timms_state_dict_loads_strictly_and_the_outputs_are_timms(name):
    theirs = _timm(name)
    net = resdsl.load(name, input_shape=SMALL)
    ours = net.to_torch().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn((2,) + SMALL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = theirs(x), ours(x)
    assert got.shape == expected.shape == (2, 1000) and tuple(got.shape[1:]) == net.output_shape
    assert torch.isfinite(expected).all() and expected.abs().max() > 1  # a signal, not zeros
    relative = ((got - expected).abs().max() / expected.abs().max()).item()
    assert relative < 1e-5, relative


@pytest.mark.parametrize("name", tiered(MODELS, FAST))
def test_static_params_and_macs_are_timms(name):
    theirs = timm.create_model(name, pretrained=False).eval()
    net = resdsl.load(name, input_shape=SMALL)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(torch.randn((1,) + SMALL))
    assert net.params == sum(p.numel() for p in theirs.parameters())
    assert net.macs == counter.get_total_flops() // 2  # FlopCounterMode counts 2 FLOPs a multiply-accumulate


@pytest.mark.parametrize(
    "name, params, macs",
    [("nf_resnet50", 25_557_032, 4_089_184_256), ("nf_regnet_b0", 8_764_288, 476_566_528)],
)
def test_the_figures_at_224_that_docs_family_gives(name, params, macs):
    """The figures at 224×224 of docs/family.md: the static count, equal to timm's at 64×64 above; the MACs
    at 224 are checked against timm's FlopCounterMode count in the slow test below."""
    net = resdsl.load(name)
    assert (net.params, net.macs) == (params, macs)
    assert f"{params:,}" in FAMILY_DOC and f"{macs:,}" in FAMILY_DOC


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_macs_at_224_are_timms(name):
    theirs = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(torch.randn(1, 3, 224, 224))
    assert resdsl.load(name).macs == counter.get_total_flops() // 2


@pytest.mark.parametrize("name", MODELS)
def test_module_names_and_block_scalars_are_timms(name):
    """Each block's beta (1 / sqrt of the expected variance, `1.0 / var ** 0.5` in the spec, as timm's; timm sums var
    block by block and the spec multiplies, so the last bit may differ) and alpha
    are timm's, block by block; the SE widths and groups follow from the names' shapes."""
    theirs = timm.create_model(name, pretrained=False)
    net = resdsl.load(name, input_shape=SMALL)
    blocks = {n: m for n, m in theirs.named_modules() if type(m).__name__ == "NormFreeBlock"}
    for path, block in blocks.items():
        beta = net.ops.nodes[f"{path}.preact"].attrs["factor"]
        alpha = net.ops.nodes[f"{path}.alpha"].attrs["factor"]
        assert abs(beta - block.beta) <= 1e-15 and alpha == block.alpha, path
        if block.attn is not None or block.attn_last is not None:
            assert net.ops.nodes[f"{path}.attn_gain"].attrs["factor"] == block.attn_gain
    ours = {n for n, _ in net.to_torch().named_parameters()}
    assert ours == {n for n, _ in theirs.named_parameters()}


@pytest.mark.slow
def test_the_family_parameters_are_timms_config_fields():
    """The family file takes timm's NfCfg fields: a wider NF-RegNet (nf_regnet_b2's channels and depths, and
    its num_features, which timm's _nfreg_cfg works out as 1280 · channels[3] // 440), an NF-ResNet with
    SE after conv3 (timm's nf_seresnet26), and gamma_in_act (timm's GammaAct: the gamma after each
    activation, not in the convs) build timm's models."""
    cases = [
        (
            "nf_regnet",
            {"depths": [2, 4, 8, 8], "channels": [56, 112, 232, 488], "num_features": 1419},
            "nf_regnet_b2",
            {},
        ),
        ("nf_resnet", {"depths": [2, 2, 2, 2], "se_ratio": 16}, "nf_seresnet26", {}),
        ("nf_resnet", {"depths": [2, 2, 2, 2], "gamma_in_act": True}, "nf_resnet26", {"gamma_in_act": True}),
        ("nf_regnet", {"depths": [1, 3, 6, 6], "gamma_in_act": True}, "nf_regnet_b0", {"gamma_in_act": True}),
    ]
    for family, params, reference, timm_args in cases:
        net = resdsl.load(family, input_shape=SMALL, **params)
        theirs = _perturbed(timm.create_model(reference, pretrained=False, **timm_args))
        ours = net.to_torch().eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)
        x = torch.randn((1,) + SMALL)
        with torch.no_grad():
            expected = theirs(x)
            relative = ((ours(x) - expected).abs().max() / expected.abs().max()).item()
        assert relative < 1e-5 and net.params == sum(p.numel() for p in theirs.parameters()), reference


def test_drop_path_rates_grow_as_timms():
    net = resdsl.load("nf_regnet_b0", input_shape=SMALL, drop_path_rate=0.1)
    theirs = timm.create_model("nf_regnet_b0", drop_path_rate=0.1)
    rates = [net.ops.nodes[n].attrs["rate"] for n in net.ops.nodes if net.ops.nodes[n].kind == "drop_path"]
    expected = [m.drop_prob for m in theirs.modules() if type(m).__name__ == "DropPath"]
    assert len(rates) == len(expected) == 15  # the first block's rate is 0: neither builds one
    assert all(abs(a - b) < 1e-6 for a, b in zip(rates, expected))


def test_an_expected_variance_below_the_inputs_is_refused():
    source = 'use "normfree.res"\nnetwork n {\n    input 16x8x8\n    b: nf_block(16, var = 0.5)\n}\n'
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(source)
    [d] = info.value.diagnostics
    assert d.code == "E0211" and "expected variance" in d.message


FAMILY_DOC = (Path(__file__).resolve().parent.parent / "docs" / "family.md").read_text(encoding="utf-8")
