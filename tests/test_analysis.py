"""Exact parameter and MAC counts against published reference figures.

torchvision figures: `sum(p.numel() for p in m.parameters())` and the MACs
behind torchvision's documented GFLOPS; CIFAR figures from He et al. 2015
(6n+2 layers, option A); resnet50d / seresnet50 parameter counts from timm.
"""

import pytest

import resdsl

IMAGENET = [
    ("resnet18", 11_689_512, 1_814_073_344),
    ("resnet34", 21_797_672, 3_663_761_408),
    ("resnet50", 25_557_032, 4_089_184_256),
    ("resnet101", 44_549_160, 7_801_405_440),
    ("resnet152", 60_192_808, 11_513_626_624),
    ("resnet50_v1", 25_557_032, 3_857_973_248),
    ("resnext50_32x4d", 25_028_904, 4_230_479_872),
    ("wide_resnet50_2", 68_883_240, 11_398_021_120),
]

CIFAR = [
    ("resnet20", 269_722, 40_551_040),
    ("resnet32", 464_154, 68_862_592),
    ("resnet44", 658_586, 97_174_144),
    ("resnet56", 853_018, 125_485_696),
    ("resnet110", 1_727_962, 252_887_680),
    ("resnet1202", 19_421_274, 2_829_238_912),
]

TIMM_PARAMS = [("resnet50d", 25_576_264), ("seresnet50", 28_088_024)]


@pytest.mark.parametrize("name,params,macs", IMAGENET)
def test_imagenet_figures_equal_torchvision(name, params, macs):
    net = resdsl.load(name)
    assert (net.params, net.macs) == (params, macs)
    assert net.input_shape == (3, 224, 224) and net.output_shape == (1000,)


@pytest.mark.parametrize("name,params,macs", CIFAR)
def test_cifar_figures_equal_the_paper(name, params, macs):
    net = resdsl.load(name)
    assert (net.params, net.macs) == (params, macs)
    assert net.output_shape == (10,)
    # option A: every shortcut is parameter-free zero-padding
    kinds = {d["shortcut"] for _, d in net.graph.nodes(data=True) if d["kind"] == "add"}
    assert kinds == {"identity", "zeropad"}


@pytest.mark.parametrize("name,params", TIMM_PARAMS)
def test_timm_parameter_counts(name, params):
    assert resdsl.load(name).params == params


def test_option_b_adds_exactly_the_two_projections():
    a = resdsl.load("resnet1202")
    b = resdsl.load("resnet1202", policy="B")
    assert b.params - a.params == 2_752  # 16->32: 512 + 64; 32->64: 2,048 + 128


def test_option_c_projects_every_shortcut():
    b = resdsl.load("resnet20", policy="B")
    c = resdsl.load("resnet20", policy="C")
    adds = [d for _, d in c.graph.nodes(data=True) if d["kind"] == "add"]
    assert {d["shortcut"] for d in adds} == {"projection"}
    assert c.params > b.params


def test_totals_are_sums_of_nodes_and_parts():
    net = resdsl.load("resnet50")
    nodes = list(net.graph.nodes(data=True))
    assert net.params == sum(d["params"] for _, d in nodes)
    assert net.macs == sum(d["macs"] for _, d in nodes)
    assert net.params == sum(p.params for p in net.parts)
    assert net.macs == sum(p.macs for p in net.parts)
    assert [p.name for p in net.parts] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert net.flops == 2 * net.macs


def test_projection_costs_are_reported():
    net = resdsl.load("resnet50")
    projections = net.projections()
    assert [p["merge"] for p in projections] == [f"layer{i}.0.add" for i in range(1, 5)]
    # layer1: 64 -> 256 1x1 conv (16,384) + BN (512) on 56x56
    assert projections[0]["params"] == 16_896 and projections[0]["macs"] == 16_384 * 56 * 56
    assert sum(p.inserted_params for p in net.parts) == sum(p["params"] for p in projections)


def test_se_counts_both_bias_and_weights():
    # SE on 256 channels with ratio 16: fc1 256x16 + 16, fc2 16x256 + 256
    net = resdsl.loads("""
    network n { input 256x4x4
                se 16 }""")
    assert net.params == 256 * 16 + 16 + 16 * 256 + 256
    assert net.macs == 2 * 256 * 16


def test_grouped_conv_and_fc_bias():
    net = resdsl.loads("""
    network n { input 8x10x10
                conv 16 k3 g4 bias -> avgpool -> fc 5 }""")
    conv = net.graph.nodes["conv1"]
    assert conv["params"] == 16 * 2 * 9 + 16
    assert conv["macs"] == 16 * 2 * 9 * 100
    assert net.graph.nodes["fc"]["params"] == 16 * 5 + 5


@pytest.mark.parametrize(
    "family,depth,params",
    [
        ("resnet", 18, 11_689_512),
        ("resnet", 101, 44_549_160),
        ("cifar_resnet", 56, 853_018),
        ("cifar_resnet", 110, 1_727_962),
    ],
)
def test_depth_parameter_picks_the_papers_configuration(family, depth, params):
    assert resdsl.load(family, depth=depth).params == params


def test_a_cifar_depth_that_is_not_6n_plus_2_is_an_error():
    """The family file's `require` says what is wrong, once, instead of the division it breaks."""
    with pytest.raises(resdsl.SpecError) as e:
        resdsl.load("cifar_resnet", depth=21)
    assert [d.code for d in e.value.diagnostics] == ["E0211"]
    assert "6n+2" in e.value.diagnostics[0].message
