"""timm's RepVGG models (byobnet's `repvgg_*`) in their training form, each a bundled spec on specs/repvgg.res,
checked against timm itself.

For every model: the state dict has timm's names and shapes (strict load), the static parameters and MACs
at timm's input size (3×224×224, repvgg_d2se's 3×320×320) are timm's (its parameters, torch's
FlopCounterMode on its forward, on the meta device), and at 64×64 the outputs equal timm's in eval mode
after `perturb_norms`, with the MACs and output shape of that run. The family file's defaults are
repvgg_b0; the `g4` construct (groups on every odd block) is also checked fast on a narrow RepVGG timm
builds from the same block configuration. The elaborated block is three branches summed (conv_kxk,
conv_1x1, identity), the structure a deploy pass fuses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timm
import torch
from family import REPVGG, perturb_norms, tiered
from timm.models.byobnet import ByobNet, ByoModelCfg, _rep_vgg_bcfg
from torch.utils.flop_counter import FlopCounterMode

import resdsl

ROOT = Path(__file__).resolve().parent.parent

# the fast tier's outputs (-m "not slow"): the smallest, and one with groups; each of the others takes 1 to 3 s
FAST = {"repvgg_a0", "repvgg_b1g4"}


def test_these_are_all_of_timms_repvggs():
    assert set(timm.list_models("repvgg*")) == set(REPVGG)
    assert set(REPVGG) <= set(resdsl.library.bundled_names())


def _state_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", REPVGG)
def test_names_shapes_params_and_macs_at_timms_input_size_equal_timm(name):
    net = resdsl.load(name)
    with torch.device("meta"):
        reference = timm.create_model(name, pretrained=False).eval()
        ours = net.to_torch().eval()
        assert _state_shapes(ours) == _state_shapes(reference)  # the names and shapes; timm registers `identity` first
        with FlopCounterMode(display=False) as counter:
            out = reference(torch.empty((1,) + net.input_shape))
    assert net.input_shape == timm.get_pretrained_cfg(name).input_size  # 3×224×224; repvgg_d2se's 3×320×320
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs == counter.get_total_flops()
    assert net.output_shape == tuple(out.shape[1:]) == (1000,)


def _assert_same_as(net: resdsl.Network, reference: torch.nn.Module, batch: int = 2) -> None:
    """Strict load of `reference`'s state dict, outputs within 1e-5 relative after perturb_norms, and the
    static parameters, MACs and output shape equal to the reference's run on the same input."""
    reference.eval()
    perturb_norms(reference)  # BN statistics and affine weights away from 0 and 1: a misplaced BN shows
    with torch.device("meta"):
        ours = net.to_torch()
    ours = ours.to_empty(device="cpu").eval()  # every tensor comes from the reference next
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn((batch,) + net.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = reference(x)
    with torch.no_grad():
        got = ours(x)
    assert got.shape == expected.shape == (batch,) + net.output_shape
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs * batch == counter.get_total_flops()


# b2 and b3 (with and without groups) are b1's blocks, wider: the test above checks their names, shapes,
# params and MACs; their outputs would cost the suite half a minute more on two cores.
WIDE = {"repvgg_b2", "repvgg_b2g4", "repvgg_b3", "repvgg_b3g4"}


@pytest.mark.parametrize("name", tiered([n for n in REPVGG if n not in WIDE], FAST))
def test_outputs_at_64_equal_timm(name):
    torch.manual_seed(0)
    _assert_same_as(resdsl.load(name, input_shape=(3, 64, 64)), timm.create_model(name, pretrained=False))


def test_the_family_defaults_are_repvgg_b0():
    with torch.device("meta"):
        ours = resdsl.load("repvgg").to_torch()
        reference = timm.create_model("repvgg_b0", pretrained=False)
    assert _state_shapes(ours) == _state_shapes(reference)


def test_a_narrow_g4_repvgg_equals_timms_from_the_same_configuration():
    """Groups on the odd blocks of each stage (1, 3, ...), depths of 2 and 3, at 32×32: every construct of
    the g4 models, in a second."""
    cfg = ByoModelCfg(
        blocks=_rep_vgg_bcfg(d=(2, 3, 2, 1), wf=(0.25, 0.25, 0.25, 0.5), groups=4), stem_type="rep", stem_chs=16
    )
    torch.manual_seed(0)
    reference = ByobNet(cfg, num_classes=10)
    net = resdsl.load(
        "repvgg",
        input_shape=(3, 32, 32),
        widths=[16, 32, 64, 256],
        depths=[2, 3, 2, 1],
        stem_width=16,
        groups=4,
        classes=10,
    )
    assert reference.stages[1][1].conv_kxk.conv.groups == 4 and reference.stages[1][2].conv_kxk.conv.groups == 1
    _assert_same_as(net, reference)


def test_a_block_is_three_branches_summed_then_a_relu():
    """The structure a deploy pass fuses into one 3×3 conv: each branch's ops in order, the sum's inputs
    in branch order (conv_kxk, conv_1x1, identity), the ReLU after it. A block that strides (the stem, the
    first of a stage) has no identity branch."""
    net = resdsl.load("repvgg_a0", input_shape=(3, 64, 64))
    block = "stages.1.1"
    kinds = {n[len(block) + 1 :]: net.ops.nodes[n].kind for n in net.ops.nodes if n.startswith(block + ".")}
    assert kinds == {
        "conv_kxk.conv": "conv",
        "conv_kxk.bn": "bn",
        "conv_1x1.conv": "conv",
        "conv_1x1.bn": "bn",
        "identity": "bn",
        "sum": "add",
        "act": "relu",
    }
    graph = net.graph
    block_input = "stages.1.0.act"
    assert list(graph.predecessors(f"{block}.conv_kxk.conv")) == [block_input]
    assert list(graph.predecessors(f"{block}.conv_1x1.conv")) == [block_input]
    assert list(graph.predecessors(f"{block}.identity")) == [block_input]
    assert list(graph.predecessors(f"{block}.sum")) == [
        f"{block}.conv_kxk.bn",
        f"{block}.conv_1x1.bn",
        f"{block}.identity",
    ]
    assert list(graph.predecessors(f"{block}.act")) == [f"{block}.sum"]
    assert net.ops.nodes[f"{block}.conv_kxk.conv"].attrs["kernel"] in (3, (3, 3))
    strided = [n for n in net.ops.nodes if n.startswith(("stem.", "stages.2.0."))]
    assert [n for n in strided if n.endswith("identity")] == []
    assert list(graph.predecessors("stem.sum")) == ["stem.conv_kxk.bn", "stem.conv_1x1.bn"]


def test_the_family_page_lists_every_repvgg_with_its_figures():
    """docs/family.md's RepVGG table: one row per model, the spec line's arguments and the static figures
    at timm's input size (checked against timm above)."""
    page = (ROOT / "docs" / "family.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(repvgg_\w+)` \| `([^`]*)` \| ([\d,]+) \| ([\d.]+) G \| ([^|]+) \|$", page, re.M)
    assert [row[0] for row in rows] == list(REPVGG)
    for name, arguments, params, macs, tier in rows:
        assert tier == ("fast tier" if name in FAST else "figures and names" if name in WIDE else "full run"), name
        net = resdsl.load(name)
        assert (params, macs) == (f"{net.params:,}", f"{net.macs / 1e9:.2f}"), name
        spec = (ROOT / "specs" / f"{name}.res").read_text(encoding="utf-8")
        assert f"network {name} = repvgg({arguments})" in spec
