"""Several outputs and side branches (`output`, `from`; docs/language.md §21).

The two bundled backbones against their references at strict parity: timm's `features_only` (a list)
and torchvision's `IntermediateLayerGetter` (an OrderedDict). Their state dicts load with strict=True,
their outputs agree in eval mode with perturbed norm statistics, and the static figures (parameters,
MACs, every output's shape, channels and stride) are the references' own.
"""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import timm
import torch
import torchvision
from hypothesis import HealthCheck, given, settings
from test_family import randomise_norms
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models._utils import IntermediateLayerGetter

import resdsl
from resdsl.backend.runtime import runtime_mismatch
from resdsl.cli import main
from resdsl.testing import networks

SIDE = """use "blocks.res"
network side {
    input 3x32x32
    stem { conv 16 k3 -> bn -> relu }
    layer1: basic(16) x2
    layer2: basic(32) x2 s2
    from layer1 -> aux { conv 8 k1 -> bn -> relu }
    output 0: layer1, 1: layer2, aux: aux
}
"""


def close(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest difference, relative to the reference's largest magnitude."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def static_equals_reference(net: resdsl.Network, reference: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters and MACs at 224×224 (FlopCounterMode on the meta device) and the outputs' shapes."""
    with torch.device("meta"):
        x = torch.empty((1,) + net.input_shape)
        with FlopCounterMode(display=False) as counter:
            out = reference.to("meta")(x)
    outs = list(out.values()) if isinstance(out, dict) else list(out)
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs == counter.get_total_flops()
    assert [o.shape for o in net.outputs] == [tuple(t.shape[1:]) for t in outs]
    return outs


def same_outputs(ours: torch.nn.Module, reference: torch.nn.Module) -> None:
    randomise_norms(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    ours.eval(), reference.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, theirs = ours(x), reference(x)
    assert type(mine) is type(theirs)
    if isinstance(theirs, dict):
        assert list(mine) == list(theirs)
        mine, theirs = list(mine.values()), list(theirs.values())
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape and close(a, b) < 1e-5


def test_timm_features_only():
    net = resdsl.load("resnet50_features")
    assert net.output_form == "list"
    kwargs = {"pretrained": False, "features_only": True, "out_indices": (1, 2, 3, 4)}
    info = timm.create_model("resnet50", **kwargs).feature_info
    assert [o.channels for o in net.outputs] == info.channels()
    assert [o.stride for o in net.outputs] == [(r, r) for r in info.reduction()]
    assert [o.point for o in net.outputs] == info.module_name()
    static_equals_reference(net, timm.create_model("resnet50", **kwargs))
    same_outputs(net.to_torch(), timm.create_model("resnet50", **kwargs))


def test_torchvision_intermediate_layer_getter():
    net = resdsl.load("resnet50_layers")
    assert net.output_form == "dict" and [o.key for o in net.outputs] == ["0", "1", "2", "3"]
    layers = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    static_equals_reference(net, IntermediateLayerGetter(torchvision.models.resnet50(), layers))
    same_outputs(net.to_torch(), IntermediateLayerGetter(torchvision.models.resnet50(), layers))


def test_a_side_branch_and_a_tensor_that_feeds_a_merge_and_an_output():
    net = resdsl.loads(SIDE)
    assert [(o.key, o.point, o.node, o.shape, o.stride) for o in net.outputs] == [
        ("0", "layer1", "layer1.1.relu2", (16, 32, 32), (1, 1)),
        ("1", "layer2", "layer2.1.relu2", (32, 16, 16), (2, 2)),
        ("aux", "aux", "aux.2", (8, 32, 32), (1, 1)),
    ]
    model = net.to_torch().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x)
        assert isinstance(out, OrderedDict) and list(out) == ["0", "1", "aux"]
        # the returned layer1 is what layer2 and the side branch read: no op overwrote it in place
        assert torch.equal(out["1"], model.layer2(out["0"])) and torch.equal(out["aux"], model.aux(out["0"]))
    assert runtime_mismatch(net, batch=2) is None
    listed = resdsl.loads(SIDE.replace("output 0: layer1, 1: layer2, aux: aux", "output layer1, layer2, aux"))
    assert listed.output_form == "list" and isinstance(listed.to_torch()(x), list)


def test_a_point_in_the_middle_of_a_block_is_returned_untouched():
    """`layer1.0.add` is read by the in-place ReLU after it: returned, it must not be overwritten."""
    net = resdsl.loads(SIDE.replace("aux: aux", "aux: aux, add: layer1[0].add"))
    model = net.to_torch().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert (out["add"] < 0).any()  # before the ReLU


def test_one_output_compiles_as_before():
    net = resdsl.loads("network one {\n input 3x8x8\n a: conv 4 k3 -> relu\n output relu\n}\n")
    assert net.output_form == "tensor" and isinstance(net.to_torch()(torch.randn(1, 3, 8, 8)), torch.Tensor)
    keyed = resdsl.loads("network one {\n input 3x8x8\n conv 4 k3 -> relu\n output out: relu\n}\n")
    assert list(keyed.to_torch()(torch.randn(1, 3, 8, 8))) == ["out"]  # DeepLab's {"out": ...}


@pytest.mark.parametrize(
    "text, code",
    [
        ("a: conv 8 k3 -> relu\n from a -> conv 4 k1", "E0212"),  # relu reaches no output
        ("a: conv 8 k3 -> relu\n output a", "E0212"),
        ("a: conv 8 k3 -> b: relu\n output 0: a, b", "E0208"),  # keys on some entries only
        ("a: conv 8 k3 -> b: relu\n output k: a, k: b", "E0206"),
        ("a: conv 8 k3 -> b: relu\n output nothing", "E0201"),
        ("output a\n a: conv 8 k3", "E0201"),  # a point is made before the statement
        ("a: conv 8 k3 -> b: relu\n output a, b\n output b", "E0208"),
        ("a: conv 8 k3 -> from nothing", "E0201"),
        ("a: conv 8 k3 -> c: from a", "E0208"),
    ],
)
def test_mistakes_are_located(text, code):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{\n input 3x8x8\n {text}\n}}\n")
    assert info.value.diagnostics[0].code == code


def test_output_in_a_block_is_refused():
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("block b() {\n conv 4 k1\n output conv1\n}\nnetwork n {\n input 3x8x8\n b()\n}\n")
    assert info.value.diagnostics[0].code == "E0208"


def test_check_summary_and_json_show_every_output(tmp_path, capsys):
    spec = tmp_path / "side.res"
    spec.write_text(SIDE)
    assert main(["check", str(spec)]) == 0
    assert "-> {0: 16x32x32, 1: 32x16x16, aux: 8x32x32}" in capsys.readouterr().out
    assert main(["summary", str(spec), "--input-sizes"]) == 0
    text = capsys.readouterr().out
    assert "outputs (an OrderedDict)" in text and "layer2.1.relu2" in text
    assert "output 1    ceil(H/2)" in text and "output aux  H" in text
    assert main(["summary", str(spec), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output_form"] == "dict"
    assert [(o["key"], o["channels"], o["stride"]) for o in data["outputs"]] == [
        ("0", 16, [1, 1]),
        ("1", 32, [2, 2]),
        ("aux", 8, [1, 1]),
    ]


def test_verify_runtime_covers_every_output(tmp_path, capsys):
    spec = tmp_path / "side.res"
    spec.write_text(SIDE)
    assert main(["verify", str(spec), "--input-range", "16..24", "--runtime"]) == 0


def test_draw_shows_every_output(tmp_path):
    pytest.importorskip("graphviz")
    from resdsl.draw import build

    source = build(resdsl.loads(SIDE), "stage").source
    for key in ("0", "1", "aux"):
        assert f'"output/{key}"' in source


def test_export_takes_several_outputs(tmp_path):
    spec = tmp_path / "side.res"
    spec.write_text(SIDE)
    out = tmp_path / "side.pt2"
    assert main(["compile", str(spec), "--emit", "pt2", "-o", str(out)]) == 0
    result = torch.export.load(str(out)).module()(torch.randn(2, 3, 32, 32))
    assert list(result) == ["0", "1", "aux"]


def test_emit_python_refuses_several_outputs_where_the_spec_writes_them(tmp_path, capsys):
    spec = tmp_path / "side.res"
    spec.write_text(SIDE)
    assert main(["compile", str(spec), "--emit", "python", "-o", str(tmp_path / "side.py")]) == 1
    err = capsys.readouterr().err
    assert "error[E0213]" in err and "side.res:7:5" in err and not (tmp_path / "side.py").exists()


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(networks(outputs=True, max_stages=3))
def test_random_networks_with_several_outputs_agree_at_run_time(spec):
    """The shared strategies' networks returning every stage and the logits: each output's shape,
    and the parameters and MACs, are the compiled module's."""
    net = resdsl.loads(spec.source)
    assert [o.shape for o in net.outputs][-1] == (spec.classes,)
    assert net.output_form == (spec.outputs or "tensor")
    assert runtime_mismatch(net, batch=2) is None


def test_a_point_with_several_indices_names_the_module_path():
    net = resdsl.loads(
        "network n {\n input 3x16x16\n conv 8 k3\n inner_blocks[3][0]: conv 8 k3\n"
        " from inner_blocks[3][0] -> top: conv 4 k1\n output a: inner_blocks[3][0], b: top\n}\n"
    )
    assert net.output_nodes == ("inner_blocks.3.0", "top")
    outputs = net.to_torch()(torch.randn((1,) + net.input_shape))
    assert list(outputs) == ["a", "b"] and outputs["a"].shape[1:] == (8, 16, 16)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(networks(outputs=True, max_stages=3, upsampling=True, ranks=(1, 2, 3)))
def test_random_decoders_resize_and_agree_at_run_time(spec):
    """The strategies' FPN-like top-down merge (`shortcut nearest` or linear): the static shapes, parameters
    and MACs are the compiled module's, for sequences, images and volumes."""
    net = resdsl.loads(spec.source)
    assert runtime_mismatch(net, batch=2) is None
    if spec.decoder:
        top_down = next(o for o in net.outputs if o.point == "top_down")
        assert top_down.shape == (spec.decoder,) + spec.stages[-2].out_shape[1:]
