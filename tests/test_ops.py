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
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(8, 16, 3, padding=1, bias=False), torch.nn.GroupNorm(4, 16, eps=1e-3)
    ).eval()
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
    assert (
        diagnostic.code == "E0402" and diagnostic.line == 2 and "does not divide the 12 channels" in diagnostic.message
    )


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


# ---- `norm`: the norm every `bn` builds ----------------------------------------------------------

NORM_NET = """
use "blocks.res"
network gn_net(norm_layer = gn) {
    input 3x32x32
    norm norm_layer
    conv 32 k3 -> bn -> relu
    layer1: bottleneck(32) x1
    layer2: bottleneck(64) x1 s2
    avgpool -> fc 10
}
"""


def test_norm_makes_every_bn_and_inserted_projection_that_norm_under_bn_names():
    net = resdsl.loads(NORM_NET, path="gn.res")
    kinds = {
        name: node.kind
        for name, node in net.ops.nodes.items()
        if name.rpartition(".")[2].startswith("bn") or name.endswith("downsample.1")
    }
    assert kinds and set(kinds.values()) == {"gn"}
    assert {"bn1", "layer1.0.bn3", "layer1.0.downsample.1", "layer2.0.downsample.1"} <= set(kinds)
    model = net.to_torch()
    assert isinstance(model.get_submodule("layer2.0.downsample.1"), torch.nn.GroupNorm)
    assert sum(p.numel() for p in model.parameters()) == net.params
    default = resdsl.loads(NORM_NET, path="gn.res", norm_layer=resdsl.load("resnet18").parameters["norm_layer"])
    assert {n.kind for n in default.ops.nodes.values()} >= {"bn"} and "gn" not in {
        n.kind for n in default.ops.nodes.values()
    }


def test_norm_holds_to_the_end_of_its_body():
    net = resdsl.loads(
        "block b() { norm gn\n conv 32 k1 -> bn }\nnetwork n { input 8x8x8\n b()\n conv 32 k1 -> bn }", path="scope.res"
    )
    assert net.ops.nodes["b.bn1"].kind == "gn" and net.ops.nodes["bn1"].kind == "bn"


def test_a_bn_option_the_chosen_norm_lacks_is_located_with_a_note():
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n { input 8x8x8\n norm gn\n conv 32 k1 -> bn momentum=0.2 }", path="m.res")
    [d] = info.value.diagnostics
    assert d.code == "E0203" and d.line == 3 and "`gn` has no option `momentum`" in d.message
    assert any("`bn` is `gn` here" in note and "m.res:2:" in note for note in d.notes)


@pytest.mark.parametrize("kind, code", [("relu", "E0201"), ("B", "E0302"), ("3", "E0302")])
def test_norm_takes_a_norm(kind, code):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 8x8x8\n norm {kind}\n bn }}")
    assert [d.code for d in info.value.diagnostics] == [code]


def test_the_norms_a_statement_may_choose_are_the_norm_kinds():
    from resdsl.values import NORMS

    assert set(NORMS) == {name for name, kind in ALL.items() if kind.norm}


def test_ejecting_a_network_whose_bn_is_another_norm_writes_that_norm_in_its_classes(tmp_path):
    from resdsl.cli import main

    spec = tmp_path / "gn.res"
    spec.write_text(NORM_NET)
    assert main(["compile", str(spec), "--emit", "python", "-o", str(tmp_path / "gn.py")]) == 0
    source = (tmp_path / "gn.py").read_text()
    assert "nn.GroupNorm(" in source and "Flat(nn.Module)" not in source  # the record holds the kinds `bn` became
    namespace: dict = {}
    exec(compile(source, "gn.py", "exec"), namespace)
    net = resdsl.loads(NORM_NET)
    ours, theirs = namespace["build"]().eval(), net.to_torch().eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn((2,) + net.input_shape)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_an_even_eca_kernel_is_refused_where_it_is_written():
    """Checked, `eca k4` used to compile and fail at run time (C - 1 gates for C channels)."""
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n { input 16x4x4\n eca k4 }")
    [d] = info.value.diagnostics
    assert d.code == "E0303" and d.line == 2 and "must be odd" in d.message
    net = resdsl.loads("network n { input 16x4x4\n eca k5 }")
    assert net.to_torch()(torch.randn(1, 16, 4, 4)).shape == (1, 16, 4, 4)


# ---- timm's ops for ResNetV2 / BiT: stdconv, evonorm, frn, pad, drop_path ------------------------------


def _single(op: str, input_shape: str = "32x6x6") -> tuple[resdsl.Network, torch.nn.Module]:
    net = resdsl.loads(f"network n {{\n input {input_shape}\n op: {op}\n}}")
    return net, net.to_torch().eval()


@pytest.mark.parametrize(
    "op, timm_layer",
    [
        ("stdconv 16 k3 s2 eps=1e-8", "StdConv2d(32, 16, 3, stride=2, eps=1e-8)"),
        ("stdconv 16 k1", "StdConv2d(32, 16, 1)"),
        ("evonorm", "EvoNorm2dS0(32)"),
        ("evonorm 8 eps=1e-3", "EvoNorm2dS0(32, groups=8, eps=1e-3)"),
        ("frn", "FilterResponseNormTlu2d(32)"),
        ("frn eps=1e-4", "FilterResponseNormTlu2d(32, eps=1e-4)"),
    ],
)
def test_timms_layers_compute_what_timm_computes(op, timm_layer):
    import timm.layers as layers  # noqa: F401 - the names in `timm_layer`
    from timm.layers import EvoNorm2dS0, FilterResponseNormTlu2d, StdConv2d  # noqa: F401

    net, model = _single(op)
    reference = eval(timm_layer).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn_like(p) * 0.5 + 1.0)
    model.op.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        got = model(x)
    assert torch.allclose(got, reference(x), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == net.params
    assert counter.get_total_flops() == 2 * 2 * net.macs and tuple(got.shape[1:]) == net.output_shape


def test_pad_and_drop_path():
    net, model = _single("pad 2 -> maxpool k3 s2 p0")
    assert net.ops.nodes["op"].shape == (32, 10, 10) and net.output_shape == (32, 4, 4)
    x = torch.randn(1, 32, 6, 6) - 5  # all negative: a zero pad shows in the max
    assert torch.equal(model(x), torch.nn.functional.max_pool2d(torch.nn.functional.pad(x, (2,) * 4), 3, 2))
    net, model = _single("drop_path 0.5")
    x = torch.randn(64, 32, 6, 6)
    assert torch.equal(model.eval()(x), x)  # the identity in evaluation
    out = model.train()(x)
    kept = (out.flatten(1) != 0).any(1)
    assert 10 < int(kept.sum()) < 54  # whole examples dropped, about half
    assert torch.allclose(out[kept], x[kept] * 2)  # survivors scaled by 1 / (1 - rate)
    assert essentials("drop_path", net.ops.nodes["op"].attrs, None) == "drop path 0.5"


@pytest.mark.parametrize(
    "bad, code",
    [
        ("evonorm 5", "E0402"),
        ("frn eps=0", "E0303"),
        ("drop_path 1.5", "E0303"),
        ("pad -1", "E0303"),
        ("stdconv 8 k3 eps=0", "E0303"),
    ],
)
def test_the_new_ops_check_their_arguments(bad, code):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 32x8x8\n {bad} }}")
    assert [d.code for d in info.value.diagnostics] == [code]


def test_norm_makes_bn_an_evonorm_or_frn_with_three_parameters_per_channel():
    for kind, module in [("evonorm", "EvoNormS0"), ("frn", "FilterResponseNormTlu")]:
        net = resdsl.loads(f"network n {{ input 32x8x8\n norm {kind}\n conv 32 k3 -> bn zero_init }}")
        assert net.ops.nodes["bn1"].kind == kind and net.ops.nodes["bn1"].params == 3 * 32
        model = net.to_torch()
        assert type(model.bn1).__name__ == module and torch.count_nonzero(model.bn1.weight) == 0


def test_drop_path_rate_grows_linearly_with_depth_as_timms():
    import timm

    ours = resdsl.load("resnetv2_50", drop_path_rate=0.2, input_shape=(3, 64, 64))
    rates = [ours.ops.nodes[n].attrs["rate"] for n in ours.ops.nodes if ours.ops.nodes[n].kind == "drop_path"]
    reference = timm.create_model("resnetv2_50", drop_path_rate=0.2)
    theirs = [m.drop_prob for m in reference.modules() if type(m).__name__ == "DropPath"]
    # 16 blocks: the first one's rate is 0, so neither builds a DropPath there
    assert len(rates) == len(theirs) == 15
    assert all(abs(a - b) < 1e-6 for a, b in zip(rates, theirs)) and abs(rates[-1] - 0.2) < 1e-9


# ---- the merges are op kinds (resdsl/ops/merge.py) -----------------------------------------------


def test_every_merge_kind_has_a_shape_rule_a_cost_a_forward_and_drawing_data():
    from resdsl.ops import BRANCH_MERGES, FUNCTIONS, MERGES
    from resdsl.ops.base import NO_COST, FunctionCall, OpKind
    from resdsl.values import BRANCH_MERGES as WORDS

    assert set(MERGES) == {"add", "concat", "product", "select", "max"}
    assert {w: k.name for w, k in BRANCH_MERGES.items()} == {
        "concat": "concat",
        "sum": "add",
        "product": "product",
        "select": "select",
        "max": "max",
    }
    assert list(WORDS) == list(BRANCH_MERGES)  # the language's `merge =` words come from the op kinds
    # resize: ops/upsample.py, to another tensor's size; slice: ops/channel_slice.py, a run of channels
    assert set(FUNCTIONS) == set(MERGES) | {"chunk", "resize", "slice"}
    for name in MERGES:
        op = ALL[name]
        assert op.internal and name not in OPS  # a spec cannot call a merge
        assert type(op).merge_shape is not OpKind.merge_shape, name
        attrs = {"groups": 1}
        weights = (2 * 8, 1, 1) if name == "select" else None
        shape = op.merge_shape(attrs, [(8, 4, 4), (8, 4, 4)], weights)
        assert shape == ((16, 4, 4) if name == "concat" else (8, 4, 4)), name
        assert op.merge_cost(attrs, [(8, 4, 4), (8, 4, 4)], shape) == NO_COST
        call = op.forward(attrs, shape)
        assert isinstance(call, FunctionCall) and call.inputs in ("fold", "list"), name
        assert op.label(attrs) and op.fill.startswith("#") and essentials(name, attrs, shape) == op.label(attrs)
    assert ALL["chunk"].forward({"parts": 2, "index": 1}, (4, 4, 4)) == FunctionCall("torch.narrow", "one", (1, 4, 4))
    assert all(op.fill.startswith("#") for op in ALL.values())  # every kind carries its drawing colour


def test_merge_shape_errors_keep_their_codes():
    from resdsl.errors import ShapeError

    for name, inputs, code in [("max", [(8, 4, 4), (4, 4, 4)], "E0409"), ("concat", [(8, 4, 4), (8, 2, 2)], "E0404")]:
        with pytest.raises(ShapeError) as exc:
            ALL[name].merge_shape({}, inputs)
        assert exc.value.code == code
    with pytest.raises(ShapeError, match="merge = sum"):
        ALL["add"].merge_shape({}, [(8, 4, 4), (4, 4, 4)])
    with pytest.raises(ShapeError, match="main path"):
        ALL["concat"].merge_shape({}, [(8, 4, 4), (8, 2, 2)], residual=True)


MAX_NET = """
network n {
    input 8x6x6
    conv 8 k3 -> relu
    mix: branches(2, merge = max) { convs[branch]: conv 8 k3 d=(branch + 1) -> bn }
    avgpool -> fc 3
}
"""


def test_max_merges_branches_end_to_end():
    net = resdsl.loads(MAX_NET)
    assert net.ops.nodes["mix"].kind == "max" and net.ops.nodes["mix"].shape == (8, 6, 6)
    assert net.ops.nodes["mix"].params == 0 and net.ops.nodes["mix"].macs == 0
    model = net.to_torch().eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        h = model.relu(model.conv1(x))
        want = torch.maximum(model.bn1(model.convs[0](h)), model.bn2(model.convs[1](h)))
        mixed = {}
        handle = model.avgpool.register_forward_hook(lambda m, i, o: mixed.update(x=i[0]))
        model(x)
        handle.remove()
        assert torch.allclose(mixed["x"], want, atol=1e-6)
    assert "max" in essentials("max", {}, (8, 6, 6))
    source = eject(net)
    assert "torch.maximum" in source
    namespace: dict = {}
    exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
    ours = namespace["build"]().eval()
    ours.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(ours(x), model(x), atol=1e-6)


def test_a_branch_merge_that_does_not_exist_lists_the_merges():
    with pytest.raises(resdsl.SpecError) as exc:
        resdsl.loads(MAX_NET.replace("merge = max", "merge = min"))
    assert "E0302" in str(exc.value) and "max" in str(exc.value)


def test_a_standardised_filter_of_one_weight_is_refused_where_it_is_written():
    """torch cannot standardise one weight (a batch_norm of one value per channel): the checker says so."""
    with pytest.raises(resdsl.SpecError) as caught:
        resdsl.loads("network n {\n    input 8x8x8\n    stdconv 8 k1 g=8\n}\n")
    assert [d.code for d in caught.value.diagnostics] == ["E0410"]
    assert caught.value.diagnostics[0].span.line == 3
    net = resdsl.loads("network n {\n    input 8x8x8\n    stdconv 8 k1 g=4\n}\n")  # two weights a filter: fine
    net.to_torch().train()(torch.randn(2, 8, 8, 8))
