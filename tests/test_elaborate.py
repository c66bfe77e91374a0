"""The graph: torchvision-style names, structure, policies, blocks as values."""

import pytest
import torch

import resdsl
from resdsl import SpecError


def codes(text, **params):
    with pytest.raises(SpecError) as e:
        resdsl.loads(text, **params)
    return [d.code for d in e.value.diagnostics]


def test_resnet50_node_names_follow_torchvision():
    g = resdsl.load("resnet50").graph
    for name in [
        "conv1",
        "bn1",
        "maxpool",
        "layer1.0.conv1",
        "layer1.0.bn3",
        "layer1.0.downsample.0",
        "layer1.0.downsample.1",
        "layer2.0.downsample.0",
        "layer4.2.conv3",
        "avgpool",
        "fc",
    ]:
        assert name in g, name
    assert "layer1.1.downsample.0" not in g
    assert g.nodes["layer2.0.downsample.0"]["attrs"]["stride"] == 2
    assert g.nodes["layer2.0.downsample.0"]["inserted"] is True
    assert g.nodes["layer2.0.downsample.0"]["merge"] == "layer2.0.add"


def test_timm_names_for_resnet50d_and_seresnet50():
    g = resdsl.load("resnet50d").graph
    assert [n for n in g if n.startswith("conv1.")] == [f"conv1.{i}" for i in range(7)]
    assert g.nodes["layer2.0.downsample.0"]["kind"] == "avgpool"
    assert g.nodes["layer2.0.downsample.1"]["kind"] == "conv"
    # stride 1 with a channel change: timm keeps the pool slot (an Identity), conv is .1
    assert "layer1.0.downsample.0" not in g and g.nodes["layer1.0.downsample.1"]["kind"] == "conv"
    se = resdsl.load("seresnet50").graph
    assert se.nodes["layer1.0.se"]["kind"] == "se"


def test_edges_carry_program_order_and_shortcut_roles():
    net = resdsl.load("resnet18")
    g = net.graph
    roles = {g.edges[u, v]["role"]: u for u, v in g.in_edges("layer1.0.add")}
    assert roles == {"main": "layer1.0.bn2", "shortcut": "maxpool"}
    order = list(g.nodes)
    assert order.index("layer2.0.downsample.1") < order.index("layer2.0.add")
    import networkx as nx

    assert nx.is_directed_acyclic_graph(g)
    assert order == list(nx.lexicographical_topological_sort(g, key=order.index))


def test_node_spans_point_into_the_template_and_trace_to_the_stage():
    net = resdsl.load("resnet18")
    conv = net.graph.nodes["layer3.1.conv2"]
    assert conv["span"].path.endswith("blocks.res")
    ((call, what),) = conv["trace"]
    assert call.path.endswith("resnet.res") and "layer3.1" in what


def test_stage_stride_goes_to_the_first_block_only():
    g = resdsl.load("resnet18").graph
    assert g.nodes["layer2.0.conv1"]["attrs"]["stride"] == 2
    assert g.nodes["layer2.1.conv1"]["attrs"]["stride"] == 1


def test_stride_placement_is_a_switch():
    v15 = resdsl.load("resnet50").graph
    v1 = resdsl.load("resnet50", unit="bottleneck_v1").graph
    assert v15.nodes["layer2.0.conv2"]["attrs"]["stride"] == 2 and v15.nodes["layer2.0.conv1"]["attrs"]["stride"] == 1
    assert v1.nodes["layer2.0.conv1"]["attrs"]["stride"] == 2 and v1.nodes["layer2.0.conv2"]["attrs"]["stride"] == 1


def test_plain_networks_have_no_merges():
    g = resdsl.load("plain34").graph
    assert not [n for n, d in g.nodes(data=True) if d["kind"] == "add"]


def test_stage_shortcut_option_overrides_network_policy():
    net = resdsl.loads("""
    use "blocks.res"
    network n {
        input 3x32x32
        shortcut B
        conv 16 k3
        layer1: basic(32) x2 s2 shortcut A
        layer2: basic(64) x1 s2
    }""")
    g = net.graph
    assert g.nodes["layer1.0.add"]["shortcut"] == "zeropad"
    assert g.nodes["layer2.0.add"]["shortcut"] == "projection"


def test_block_level_policy_wins():
    net = resdsl.loads("""
    block always_projected(w, stride = 1) {
        shortcut C
        residual { conv w k3 s=stride -> bn }
    }
    network n { input 4x8x8
                shortcut A
                layer1: always_projected(4) x2 }""")
    assert {d["shortcut"] for _, d in net.graph.nodes(data=True) if d["kind"] == "add"} == {"projection"}


def test_dense_concat_adds_channels():
    net = resdsl.load("densenet_cifar")
    g = net.graph
    first = g.nodes["block1.0.concat"]
    assert first["shape"] == (24 + 12, 32, 32)
    assert g.nodes["block1.15.concat"]["shape"] == (24 + 16 * 12, 32, 32)


def test_vectors_mlp_projection():
    net = resdsl.load("mlp_resnet")
    g = net.graph
    assert g.nodes["layer2.0.downsample.0"]["kind"] == "fc"
    assert net.output_shape == (10,)


def test_groups_are_sequential_with_indexed_children():
    net = resdsl.loads("network n { input 3x8x8\n features { conv 4 k3 -> bn -> relu }\n }")
    assert [n for n in net.graph if n != "input"] == ["features.0", "features.1", "features.2"]


def test_auto_names_and_explicit_labels():
    net = resdsl.loads("network n { input 8\n fc 8 -> relu -> fc 8 -> relu -> out: fc 2 }")
    assert list(net.graph)[1:] == ["fc", "relu", "fc2", "relu2", "out"]
    assert codes("network n { input 8\n a: fc 8 -> a: fc 2 }") == ["E0206"]


def test_if_else_chooses_ops():
    text = "network n(big = false) { input 8\n if big { fc 64 } else { fc 4 } }"
    assert resdsl.loads(text).output_shape == (4,)
    assert resdsl.loads(text, big=True).output_shape == (64,)


def test_block_defaults_may_use_earlier_parameters():
    net = resdsl.loads("""
    block wide(w, hidden = w * 4) { residual { fc hidden -> relu -> fc w } }
    network n { input 16
                wide(16) }""")
    assert net.graph.nodes["wide.fc"]["shape"] == (64,)


def test_exact_division():
    assert codes("network n(w = 65) { input 8\n fc w * 3 / 2 }") == ["E0301"]
    assert resdsl.loads("network n(w = 64) { input 8\n fc w * 3 / 2 }").output_shape == (96,)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("network n { input 3x8x8\n foo 3 }", "E0202"),
        ('use "blocks.res"\nnetwork n { input 3x8x8\n basic(8, colour=3) }', "E0203"),
        (
            'use "blocks.res"\nnetwork n { input 3x8x8\n'
            " basic(8, 1, 1, 64, false, 0, 1, false, false, false, 1, 1, false, false, 9) }",
            "E0204",
        ),
        ('use "blocks.res"\nnetwork n { input 3x8x8\n basic() }', "E0204"),
        ("block a(w) { b(w) }\nblock b(w) { a(w) }\nnetwork n { input 8\n a(3) }", "E0503"),
        ("network n { input 3x8x8\n conv 8 k3 g3 }", "E0402"),
        ("network n { input 3x8x8\n conv 8 k3 s2 -> conv 8 k3 s2 -> conv 8 k3 s2 -> conv 8 k9 p0 }", "E0403"),
        ("network n { input 3x8x8\n fc 10 }", "E0405"),
        ("network n { input 8\n conv 8 k3 }", "E0406"),
        ("network n { input 3x8x8\n shortcut identity\n residual { conv 8 k3 } }", "E0401"),
        ("network n { conv 8 k3 }", "E0209"),
        ("network n { input 3x8x8\n conv 1000000000000 k3 }", "E0303"),
        ("network n { input 3x8x8\n conv 8 k3 -> relu x3 }", "E0208"),
        ("network n(w = 3) { input 3x8x8\n shortcut w }", "E0302"),
        ("network n(l = [1]) { input 8\n fc l[2] }", "E0305"),
    ],
)
def test_semantic_errors(text, expected):
    assert expected in codes(text)


def test_several_errors_in_one_run():
    found = codes("network n { input 3x8x8\n conv 8 k3 g3\n foo 3\n fc -2 }")
    assert {"E0402", "E0202", "E0303"} <= set(found)


def test_an_error_in_a_repeated_block_is_reported_once():
    found = codes("""
    block bad(w, stride = 1) { conv w k3 s=stride g=3 }
    network n { input 4x8x8
                layer1: bad(4) x5 }""")
    assert found == ["E0402"]


def test_network_too_large_is_refused_quickly():
    found = codes("""
    block b(w, stride = 1) { conv w k1 }
    network n { input 4x8x8
                layer1: b(4) x 100000
                layer2: b(4) x 100000
                layer3: b(4) x 100000
                layer4: b(4) x 100000
                layer5: b(4) x 100000
                layer6: b(4) x 100000
                layer7: b(4) x 100000
                layer8: b(4) x 100000
                layer9: b(4) x 100000
                layer10: b(4) x 100000
                layer11: b(4) x 100000 }""")
    assert found == ["E0504"]


def test_edges_carry_tensor_shapes():
    g = resdsl.load("resnet50").graph
    assert g.edges["layer2.0.downsample.1", "layer2.0.add"]["shape"] == (512, 28, 28)
    assert g.edges["maxpool", "layer1.0.downsample.0"]["shape"] == (64, 56, 56)
    assert all(data["shape"] is not None for _, _, data in g.edges(data=True))


@pytest.mark.parametrize(
    "text,expected",
    [
        # a residual whose main path ends up empty is an error, not a crash
        ("network n {\n input 3x8x8\n residual { if false { relu } }\n}", ["E0208"]),
        ("network n {\n input 3x8x8\n residual { bogus }\n}", ["E0202"]),
        ("block a(w, stride=1) { conv w k3 s=stride }\nnetwork n { input 3x8x8\n a(8, stride=1, s=2) }", ["E0205"]),
        ("block a(w, stride=1) { conv w k3 s=stride }\nnetwork n { input 3x8x8\n a(8) x2 s2 stride=4 }", ["E0205"]),
        (
            "block a(w, stride=1) { conv w k3 s=stride }\nnetwork n { input 3x8x8\n a(8) x2 shortcut A shortcut C }",
            ["E0205"],
        ),
        ("block b(w, w) { relu }\nnetwork n { input 8\n relu }", ["E0205"]),
        ("network n { input 3x8x8\n foo: g { relu } }", ["E0208"]),
        ("network n { input 3x8x8\n avgpool s2 }", ["E0203"]),
        ("block u(w, mid = w / 2) { fc mid }\nnetwork n { input 8\n u() }", ["E0204"]),
    ],
)
def test_mistakes_found_by_review(text, expected):
    assert codes(text) == expected


def test_alias_without_arguments_and_auto_stage_names_skip_taken_names():
    assert resdsl.loads('use "resnet.res"\nnetwork r = resnet').params == 25_557_032
    net = resdsl.loads('use "blocks.res"\nnetwork n { input 3x8x8\n layer1 { relu }\n basic(3) x2 }')
    assert [s.name for s in net.stages] == ["layer2"]


def test_else_on_its_own_line_and_parenthesised_repeat():
    net = resdsl.loads(
        "block a(w, stride=1) { conv w k3 s=stride }\n"
        "network n(k = 1) { input 3x8x8\n if k > 1 { relu }\n else { a(3) x(k + 1) } }"
    )
    assert [s.repeats for s in net.stages] == [2]


def test_network_graph_is_a_networkx_digraph_built_on_demand():
    import networkx as nx

    net = resdsl.load("resnet18")
    assert isinstance(net.graph, nx.DiGraph)
    assert net.graph is net.graph  # built once
    assert list(net.graph) == list(net.ops.nodes)
    assert net.graph.number_of_edges() == sum(1 for _ in net.ops.edges())


def test_a_repeated_call_is_bound_for_its_own_values_not_equal_ones_of_another_type():
    """Binding is memoised per call values: `5.0` and `5` are different values (5 / 10 is not whole,
    5.0 / 10 is 0.5), though Python finds them equal."""
    text = "block b(p) {{ dropout p / 10 }}\nnetwork n {{ input 4x8x8\n {first}\n {second} }}"
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text.format(first="b1: b(5.0)", second="b2: b(5)"))
    assert [(d.code, d.line) for d in info.value.diagnostics] == [("E0301", 1)]
    net = resdsl.loads(text.format(first="b1: b(5.0)", second="b2: b(6.0)"))
    assert net.ops.nodes["b1.dropout"].attrs["p"] == 0.5


# ---- dotted and indexed labels; shortcuts a block writes -----------------------------------------


def test_dotted_labels_give_timms_module_paths():
    net = resdsl.loads("""
network n {
    input 3x32x32
    stem { stem.conv: conv 8 k3 s2 -> stem.pool: maxpool k3 s2 }
    stages[0].blocks: unit(8) x2
    stages[1].blocks: unit(8) x1
    norm: bn -> relu
    head { avgpool -> head.fc: conv 10 k1 bias -> flatten }
}
block unit(width) { residual { conv1: conv width k3 } }""")
    names = list(net.ops.nodes)
    for name in [
        "stem.conv",
        "stem.pool",
        "stages.0.blocks.0.conv1",
        "stages.0.blocks.1.conv1",
        "stages.1.blocks.0.conv1",
        "norm",
        "head.fc",
    ]:
        assert name in names, name
    model = net.to_torch()
    assert set(model.state_dict()) >= {
        "stem.conv.weight",
        "stages.1.blocks.0.conv1.weight",
        "norm.weight",
        "head.fc.bias",
    }


@pytest.mark.parametrize(
    "text, code",
    [
        ("a.b: conv 8 k3\n a: relu", "E0206"),  # `a` is a container, then an op
        ("a: conv 8 k3\n a.b: relu", "E0206"),  # and the other way round
        ("a.b: conv 8 k3\n a.b: relu", "E0206"),
        ("train.conv: conv 8 k3", "E0210"),  # a container is a module attribute too
        ("a[1 + 1.5].b: conv 8 k3", "E0302"),
    ],
)
def test_dotted_label_mistakes(text, code):
    assert codes(f"network n {{\n input 8x8x8\n {text}\n}}") == [code]


WRITTEN = """
block v2(width, stride = 1, project = false) {
    residual(project_from = preact) {
        bn -> preact: relu -> conv width k3 s=stride
    } shortcut {
        if project { downsample.conv: conv width k1 s=stride }
    }
}
network n {
    input 8x16x16
    shortcut C       # the policy is not consulted where the block writes its shortcut
    a: v2(16, 2, project = true)
    b: v2(16)
}
"""


def test_a_written_shortcut_starts_at_the_tap_and_an_empty_one_is_the_identity():
    net = resdsl.loads(WRITTEN)
    ops = net.ops
    assert ops.inputs("a.downsample.conv").main == "a.preact"
    assert ops.inputs("a.add").shortcut == "a.downsample.conv" and ops.nodes["a.add"].shortcut == "written"
    assert ops.inputs("b.add").shortcut == "a.add" and ops.nodes["b.add"].shortcut == "identity"
    assert not any(d.inserted for d in ops.nodes.values())
    model = net.to_torch().eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        pre = torch.relu(model.a.bn1(x))
        a = model.a.conv1(pre) + model.a.downsample.conv(pre)
        b = model.b.conv1(torch.relu(model.b.bn1(a))) + a
        assert torch.allclose(model(x), b, atol=1e-6)


def test_a_written_shortcut_must_give_the_main_paths_shape():
    assert codes(WRITTEN.replace("project = true", "project = false")) == ["E0401"]


# ---- `defaults`: shared arguments, bound once -------------------------------------------------------

DEFAULTS = """
use "blocks.res"
block pair(width) { a: basic(width) -> b: basic(width) }
network n(unit = basic, se = 4) {
    input 16x16x16
    defaults unit, basic(se_ratio = se, zero_init_last = true)
    layer1: unit(16) x2
    one: basic(16, se_ratio = 0)        # explicit arguments win
    inner: pair(16)                      # lexical: the blocks `pair` calls do not see it
}
"""


def test_defaults_apply_to_later_calls_of_the_names_and_explicit_arguments_win():
    net = resdsl.loads(DEFAULTS)
    nodes = net.ops.nodes
    assert nodes["layer1.1.se"].kind == "se" and nodes["layer1.0.bn2"].attrs["zero_init"] is True
    assert "one.se" not in nodes and nodes["one.bn2"].attrs["zero_init"] is True
    assert "inner.a.se" not in nodes and nodes["inner.a.bn2"].attrs["zero_init"] is False


@pytest.mark.parametrize(
    "statement, code",
    [
        ("defaults conv(bias = true)", "E0202"),  # an op
        ("defaults nosuch(y = 1)", "E0202"),
        ("defaults se(ratio = 2)", "E0202"),  # a parameter that holds a number
        ("defaults basic(16)", "E0204"),  # keywords only
        ("defaults basic(nope = 1)", "E0203"),  # found at the call, located at the statement
    ],
)
def test_defaults_mistakes(statement, code):
    text = DEFAULTS.replace("    defaults unit, basic(se_ratio = se, zero_init_last = true)", "    " + statement)
    assert codes(text) == [code]


def test_project_kernel_makes_strided_projections_k_by_k_and_must_be_odd():
    net = resdsl.load("senet154", input_shape=(3, 64, 64))
    assert net.ops.nodes["layer2.0.downsample.0"].attrs["kernel"] == 3
    assert net.ops.nodes["layer2.0.downsample.0"].attrs["padding"] == 1
    assert net.ops.nodes["layer1.0.downsample.0"].attrs["kernel"] == 1  # stride 1: 1×1, as timm
    assert codes('use "blocks.res"\nnetwork n { input 8x8x8\n basic(16, down_kernel = 2) }') == ["E0303"]
