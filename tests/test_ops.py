"""resdsl/ops/: each op kind is defined once, and every stage follows its definition.

`gn` (GroupNorm) was added as one class in ops/norm.py; these tests show that the
parser, checker, counts, drawing, compiled module and ejected source all take it
from there, with no other change.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.backend.eject import eject
from resdsl.draw import essentials
from resdsl.ops import ALL, OPS

GN_NET = """
block gn_basic(width, stride = 1) {
    residual {
        conv width k3 stride=stride -> gn 8 -> relu
        conv width k3 -> gn 8 zero_init
    } -> relu
}
network gn_resnet(classes = 10) {
    input 3x32x32
    conv 16 k3 -> gn 4 -> relu
    layer1: gn_basic(16) x2
    layer2: gn_basic(32) x2 s2
    avgpool -> fc classes
}
"""


def test_every_kind_is_found_once_and_internal_kinds_are_not_callable():
    assert {"conv", "bn", "gn", "relu", "maxpool", "avgpool", "fc", "se", "zeropad"} <= set(ALL)
    assert "zeropad" in ALL and "zeropad" not in OPS  # inserted by the shape checker only
    assert all(name == kind.name for name, kind in ALL.items())


def test_gn_checks_counts_and_compiles_to_group_norm():
    net = resdsl.loads(GN_NET)
    gn = net.ops.nodes["layer1.0.gn1"]
    assert gn.attrs == {"groups": 8, "zero_init": False, "eps": 1e-5} and gn.params == 2 * 16
    model = net.to_torch().eval()
    assert isinstance(model.get_submodule("layer2.0.gn2"), torch.nn.GroupNorm)
    assert model.get_submodule("layer2.0.gn2").num_groups == 8
    assert torch.count_nonzero(model.get_submodule("layer1.1.gn2").weight) == 0  # zero_init
    assert sum(p.numel() for p in model.parameters()) == net.params
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        out = model(x)
    assert counter.get_total_flops() == 2 * 2 * net.macs and out.shape == (2, 10)
    assert essentials("gn", gn.attrs, gn.shape) == "group norm, 8 groups"


def test_gn_computes_what_torch_group_norm_computes():
    net = resdsl.loads("network n { input 8x6x6\n conv 16 k3 -> gn 4 eps=1e-3 }")
    model = net.to_torch().eval()
    reference = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1, bias=False),
                                    torch.nn.GroupNorm(4, 16, eps=1e-3)).eval()
    with torch.no_grad():
        reference[0].weight.copy_(model.conv1.weight)
        reference[1].weight.uniform_(0.5, 1.5)
        reference[1].bias.uniform_(-0.5, 0.5)
        model.gn1.weight.copy_(reference[1].weight)
        model.gn1.bias.copy_(reference[1].bias)
        x = torch.randn(3, 8, 6, 6)
        assert torch.allclose(model(x), reference(x), atol=1e-6)


def test_gn_groups_must_divide_the_channels():
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n { input 3x8x8\n conv 12 k3 -> gn 5 }")
    [diagnostic] = info.value.diagnostics
    assert diagnostic.code == "E0402" and diagnostic.line == 2 and "does not divide the 12 channels" in \
        diagnostic.message


@pytest.mark.parametrize("bad, code", [("gn 0", "E0303"), ("gn 4 eps=0", "E0303"), ("gn 4 momentum=0.1", "E0203")])
def test_gn_arguments_are_checked_by_its_definition(bad, code):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 8x8x8\n {bad} }}")
    assert [d.code for d in info.value.diagnostics] == [code]


def test_gn_ejects_to_the_same_computation():
    net = resdsl.loads(GN_NET)
    source = eject(net)
    assert "nn.GroupNorm(8, width)" in source  # written in the block class, from the same definition
    namespace: dict = {}
    exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
    ours, theirs = namespace["build"]().eval(), net.to_torch().eval()
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        for module in theirs.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.uniform_(0.5, 1.5)
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, 3, 32, 32)
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)
