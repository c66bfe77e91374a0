"""ConvNeXt (issue 20) at strict parity with its references: torchvision's convnext_tiny ... large
(specs/convnext.res, torchvision's module names) and timm's convnext_atto ... base (specs/timm_convnext.res,
bundled as `timm_convnext_*`, timm's module names).

For every model, at 64×64: the reference's state dict loads with strict=True, the outputs in eval mode agree
within 1e-5 of their scale (after every LayerNorm, layer scale and bias is made non-trivial, so that a
misplaced one shows), the static parameter count is the reference's sum of numel, the static MACs are
FlopCounterMode's count on the reference, and the output shape is the reference's. At 224×224 the figures
docs/family.md gives are checked against the reference built on the meta device (no memory, no arithmetic).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from family import CONVNEXT_META_ONLY, CONVNEXT_TIMM, CONVNEXT_TORCHVISION, tiered
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMALL = (3, 64, 64)


def reference(name: str) -> torch.nn.Module:
    """The reference model of a bundled spec: torchvision's for `convnext_*`, timm's for `timm_convnext_*`."""
    if name.startswith("timm_"):
        return timm.create_model(name.removeprefix("timm_"), pretrained=False)
    return getattr(torchvision.models, name)(weights=None)


def perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Every 1-d parameter (LayerNorm weights and biases, conv and Linear biases, timm's gamma) and
    torchvision's (C, 1, 1) layer_scale made non-trivial: the layer scales start at 1e-6, which would
    leave every block's main path out of the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name.endswith("layer_scale"):
                p.copy_(torch.rand(p.shape, generator=generator) * 0.5 + (0.75 if "bias" not in name else -0.25))


def random_reference(name: str, seed: int = 0) -> torch.nn.Module:
    """The reference in eval mode with random weights: built on the meta device and filled here (weights
    N(0, 0.02²) as timm's trunc_normal_, the rest by `perturb`), which takes a fraction of the time its
    own initialisation takes for the large models (200 M to 350 M parameters)."""
    with torch.device("meta"):
        model = reference(name)
    model = model.to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02, generator=generator)
    perturb(model, seed)
    return model


# Linear MLPs, 1×1-conv MLPs, both names, the overlapping stem, the norm before the pool
FAST = {"convnext_tiny", "timm_convnext_atto", "timm_convnext_tiny", "timm_convnext_atto_ols", "timm_convnext_tiny_hnf"}


# The base, large and xlarge models are the small ones' blocks at other widths and depths: their figures,
# names and shapes are checked at 224 below; their outputs would cost the suite a minute on two cores.
WIDE = {"convnext_base", "convnext_large", "timm_convnext_base", "timm_convnext_large", "timm_convnext_xlarge"}


@pytest.mark.parametrize("name", tiered([n for n in CONVNEXT_TORCHVISION + CONVNEXT_TIMM if n not in WIDE], FAST))
def test_the_reference_loads_strictly_and_computes_what_the_spec_does(name):
    net = resdsl.load(name, input_shape=SMALL)
    ref = random_reference(name)
    with torch.device("meta"):
        model = net.to_torch().eval()
    model.load_state_dict(ref.state_dict(), strict=True, assign=True)  # the spec's module takes its tensors
    x = torch.randn((2,) + SMALL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = ref(x)
    with torch.no_grad():
        got = model(x)
    assert tuple(got.shape) == tuple(expected.shape) == (2,) + net.output_shape
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert net.params == sum(p.numel() for p in ref.parameters()) == sum(p.numel() for p in model.parameters())
    assert 2 * net.macs * 2 == counter.get_total_flops()  # FLOPs = 2 × MACs, per example of the batch of 2


@pytest.mark.parametrize("name", tiered(CONVNEXT_TORCHVISION + CONVNEXT_TIMM + CONVNEXT_META_ONLY, FAST))
def test_the_figures_at_224_are_the_references_and_docs_family_gives_them(name, capsys):
    """At 3×224×224 (the default input), on the meta device: the reference's parameters and FlopCounterMode
    MACs, the state dict's keys and shapes; `resdsl check NAME` and docs/family.md's row give the same."""
    net = resdsl.load(name)
    with torch.device("meta"):
        ref = reference(name)
        ours = net.to_torch()
        with FlopCounterMode(display=False) as counter:
            ref(torch.empty(1, 3, 224, 224))
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    norms = dict(ref.named_modules())  # every LayerNorm's eps is the reference's (xxlarge's are 1e-5)
    eps = {n: m.eps for n, m in ours.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    assert len(eps) > 4 and eps == {n: norms[n].eps for n in eps}
    assert net.params == sum(p.numel() for p in ref.parameters())
    assert 2 * net.macs == counter.get_total_flops()
    assert main(["check", name]) == 0
    assert f"ok {name}: 3x224x224 -> 1000, {net.params:,} params, {net.macs:,} MACs" in capsys.readouterr().out
    page = (ROOT / "docs" / "family.md").read_text(encoding="utf-8")
    row = re.search(rf"^\| `{name}` \| [^|]+ \| ([\d,]+) \| ([\d,]+) \|$", page, re.M)
    assert row is not None and (row[1], row[2]) == (f"{net.params:,}", f"{net.macs:,}")


# timm's ConvNeXts no bundled spec builds, and why (docs/family.md says the same)
TIMM_NOT_YET = {
    "convnext_zepto_rms": "RmsNorm2d",
    "convnext_zepto_rms_ols": "RmsNorm2d",
    "convnext_atto_rms": "RmsNorm2d",
    "test_convnext": "GELU's tanh approximation (gelu_tanh)",
    "test_convnext2": "GELU's tanh approximation (gelu_tanh)",
    "test_convnext3": "a kernel per stage (7, 5, 5, 3) and SiLU: the family file has neither parameter yet",
}


def test_every_convnext_of_timms_module_is_bundled_or_said_not_to_be():
    """Fails when timm adds a ConvNeXt (ConvNeXt-V2's `convnextv2_*` need GlobalResponseNorm: not yet)."""
    models = {m for m in timm.list_models(module="convnext") if not m.startswith("convnextv2")}
    assert models - set(TIMM_NOT_YET) == {name.removeprefix("timm_") for name in CONVNEXT_TIMM + CONVNEXT_META_ONLY}
    assert set(TIMM_NOT_YET) <= models
    page = (ROOT / "docs" / "family.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in page for name in TIMM_NOT_YET) and "`convnextv2_*`" in page


def test_the_family_files_defaults_are_the_tiny_models():
    for family, tiny in (("convnext", "convnext_tiny"), ("timm_convnext", "timm_convnext_tiny")):
        a, b = resdsl.load(family), resdsl.load(tiny)
        assert (a.params, a.macs) == (b.params, b.macs)


def test_torchvisions_stochastic_depth_grows_linearly_and_is_the_identity_in_eval_mode():
    """torchvision's rate for block i of n (over all stages) is p · i / (n - 1): the spec's `drop_path`
    carries the same rate (`stochastic_depth`, torchvision's name), and in eval mode both are the identity."""
    net = resdsl.load("convnext_small", input_shape=SMALL)
    model = net.to_torch()
    ref = torchvision.models.convnext_small(weights=None)
    ours = [m.rate for n, m in model.named_modules() if n.endswith("stochastic_depth")]
    theirs = [m.p for n, m in ref.named_modules() if n.endswith("stochastic_depth")]
    assert len(ours) == len(theirs) == 36
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert theirs[-1] == pytest.approx(0.4)


def test_timms_drop_path_rate_makes_drop_path_modules_where_timm_has_them():
    """timm makes a DropPath only where the rate is above 0 (an Identity otherwise): so does the spec."""
    net = resdsl.load("timm_convnext_atto", drop_path_rate=0.1, input_shape=SMALL)
    ref = timm.create_model("convnext_atto", drop_path_rate=0.1)
    ours = {n: m.rate for n, m in net.to_torch().named_modules() if n.endswith("drop_path")}
    theirs = {n: m.drop_prob for n, m in ref.named_modules() if type(m).__name__ == "DropPath"}
    assert ours.keys() == theirs.keys() and len(ours) == 11  # the first block's rate is 0
    assert [ours[n] for n in theirs] == pytest.approx(list(theirs.values()))


def test_a_block_container_computes_what_torchvisions_cnblock_does():
    """`model.features[1][0]` is callable on its own (a chain container), its layer scale included."""
    net = resdsl.load("convnext_tiny", input_shape=SMALL)
    ref = torchvision.models.convnext_tiny(weights=None).eval()
    perturb(ref)
    model = net.to_torch().eval()
    model.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 96, 16, 16)
    with torch.no_grad():
        assert torch.allclose(model.features[1][0](x), ref.features[1][0](x), atol=1e-5)
        assert torch.allclose(model.features[2](x), ref.features[2](x), atol=1e-5)


@pytest.mark.parametrize(
    "name", tiered(["convnext_tiny", "timm_convnext_atto", "timm_convnext_tiny"], {"timm_convnext_atto"})
)
def test_the_ejected_file_loads_the_references_weights_and_computes_its_outputs(name):
    """`compile --emit python`: block classes with the layer scale an nn.Parameter of the class (`gamma`,
    `layer_scale`), ChannelLayerNorm and ChannelLinear copied in; the reference's state dict loads strictly."""
    from resdsl.backend.eject import eject

    source = eject(resdsl.load(name, input_shape=SMALL))
    assert "Flat(nn.Module)" not in source  # one class per block template
    assert re.search(r"self\.(gamma|layer_scale) = nn\.Parameter\(torch\.full\(", source)
    namespace: dict = {}
    exec(compile(source, f"<ejected {name}>", "exec", dont_inherit=True), namespace)
    ours = namespace["build"]().eval()
    ref = reference(name).eval()
    perturb(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn((2,) + SMALL, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
