"""1-D and 3-D networks and per-axis arguments (docs/language.md, "Spatial rank").

The references: MONAI's ResNet (`monai.networks.nets.resnet18` / `resnet50` at spatial_dims 1 and 3, with its
options) and torchvision's video ResNets (r3d_18, mc3_18, r2plus1d_18). Each loads the reference's state
dict strictly, gives its eval outputs with perturbed norm statistics, and has the static params, MACs and
output shape the reference has at run time.
"""

import pytest
import torch
from family import perturb_norms
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.errors import SpecError

monai_nets = pytest.importorskip("monai.networks.nets", reason="MONAI is in the test extra (pyproject.toml)")
from torchvision.models import video  # noqa: E402 - after the skip above


def assert_parity(net, reference: torch.nn.Module, batch: int = 2) -> None:
    """Strict load, equal eval outputs (1e-5 relative), and static figures equal to the reference's."""
    reference.eval()
    perturb_norms(reference)
    ours = net.to_torch().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn((batch,) + net.input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = reference(x)
    with torch.no_grad():
        got = ours(x)
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * net.macs * batch == counter.get_total_flops()
    assert net.output_shape == tuple(expected.shape[1:])
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


MONAI_CASES = [
    (18, 3, {}),
    (18, 1, {}),
    (50, 3, {}),
    (50, 1, {}),
    (18, 3, {"shortcut_type": "A"}),
    (18, 1, {"shortcut_type": "A", "widen_factor": 1.5}),
    (50, 2, {"conv1_t_size": 3, "conv1_t_stride": 2, "no_max_pool": True, "widen_factor": 0.5}),
    (18, 3, {"conv1_t_size": [3, 7, 7], "conv1_t_stride": [1, 2, 2], "bias_downsample": False}),
]


@pytest.mark.parametrize(("depth", "dims", "options"), MONAI_CASES)
def test_monai_resnet_at_parity(depth, dims, options):
    reference = getattr(monai_nets, f"resnet{depth}")(spatial_dims=dims, n_input_channels=2, num_classes=7, **options)
    size = {1: 64, 2: 32, 3: 16}[dims]
    net = resdsl.load(f"monai_resnet{depth}", spatial_dims=dims, in_chans=2, classes=7, size=size, **options)
    assert len(net.input_shape) == dims + 1
    assert_parity(net, reference)


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18"])
def test_torchvision_video_resnet_at_parity(name):
    assert_parity(resdsl.load(name, input_shape=(3, 4, 32, 32)), getattr(video, name)())


@pytest.mark.parametrize(
    ("name", "weights"),
    [("r3d_18", video.R3D_18_Weights), ("mc3_18", video.MC3_18_Weights), ("r2plus1d_18", video.R2Plus1D_18_Weights)],
)
def test_video_resnets_have_torchvisions_figures_at_their_default_input(name, weights):
    # torchvision's own figures, from its weights' metadata (nothing is downloaded): `_ops` is GMACs
    meta = weights.DEFAULT.meta
    net = resdsl.load(name)
    assert net.input_shape == (3, 16, 112, 112)
    assert net.params == meta["num_params"]
    assert round(net.macs / 1e9, 3) == meta["_ops"]
    with torch.device("meta"):
        reference = getattr(video, name)()
        with FlopCounterMode(display=False) as counter:
            reference(torch.empty((1,) + net.input_shape))
    assert counter.get_total_flops() == 2 * net.macs


def test_the_factorised_block_has_the_3d_blocks_parameters():
    # R(2+1)D's `mid` channels give each factorised conv about the parameters of the 3×3×3 conv it replaces
    r3d, r2plus1d = resdsl.load("r3d_18"), resdsl.load("r2plus1d_18")
    conv3d = r3d.ops.nodes["layer2.0.conv1.0"].params
    factorised = sum(r2plus1d.ops.nodes[f"layer2.0.conv1.0.{i}"].params for i in (0, 3))
    assert abs(factorised - conv3d) / conv3d < 0.01


# ---- every op on sequences and volumes -----------------------------------------------------------

EVERY_OP = """
network every_op(policy = B) {{
    input {input}
    shortcut policy
    stem {{ pad 1 -> conv 16 k=3 s=2 p=0 -> bn -> relu -> maxpool k3 s2 }}
    residual {{ conv 16 k3 -> gn 4 -> silu -> conv 32 k3 s2 -> bn -> se 4 }}
    residual {{ conv 32 k1 -> evonorm 8 -> conv 32 k3 g=4 -> frn -> att: eca -> drop_path 0.1 }}
    residual {{ stdconv 32 k3 -> bn -> blurpool -> conv 64 k1 -> bn zero_init }}
    branches(2, merge = select) {{ convs[branch]: conv 64 k=3 d=(branch + 1) -> bn -> relu }} attend {{
        avgpool -> conv 16 k1 -> bn -> relu -> conv 128 k1
    }}
    residual {{ avgpool k3 s1 -> conv 64 k1 -> gelu -> sigmoid }}
    head {{ avgpool -> flatten -> dropout 0.2 -> fc 10 }}
}}
"""


@pytest.mark.parametrize("policy", ["A", "B", "C", "D"])
@pytest.mark.parametrize("shape", ["4x256", "4x48x48", "4x48x48x48"])
def test_every_op_on_every_rank_has_its_runtime_figures(shape, policy):
    net = resdsl.loads(EVERY_OP.format(input=shape), policy=policy)
    model = net.to_torch().eval()
    assert sum(p.numel() for p in model.parameters()) == net.params
    x = torch.randn((2,) + net.input_shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = model(x)
    assert counter.get_total_flops() == 2 * net.macs * 2
    assert tuple(out.shape[1:]) == net.output_shape == (10,)
    rank = len(net.input_shape) - 1
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[rank]
    assert isinstance(model.get_submodule("conv1"), conv)
    for node, data in net.ops.nodes.items():  # every feature map keeps the input's rank up to the pool
        if data.shape is not None and node != "flatten" and data.kind not in ("fc", "dropout"):
            assert len(data.shape) in (rank + 1, 1), node


def test_per_axis_arguments_shape_and_label():
    net = resdsl.loads(
        "network n {\n input 3x8x32x32\n conv 8 k=(3, 7, 7) s=(1, 2, 2) -> maxpool k=(1, 3, 3) s=(1, 2, 2)\n}"
    )
    conv = net.ops.nodes["conv1"]
    assert conv.attrs["padding"] == (1, 3, 3)  # kernel // 2 on each axis
    assert conv.shape == (8, 8, 16, 16) and net.output_shape == (8, 8, 8, 8)
    assert conv.params == 8 * 3 * 3 * 7 * 7
    assert conv.macs == conv.params * 8 * 16 * 16
    assert resdsl.ops.ALL["conv"].label(conv.attrs, 3) == "conv 3×7×7, 8, /1×2×2"
    assert resdsl.ops.ALL["conv"].label({**conv.attrs, "kernel": 3, "stride": 1}, 1) == "conv 3, 8"


def test_a_per_axis_stride_makes_the_inserted_projection_per_axis():
    net = resdsl.loads("network n {\n input 8x4x16x16\n residual { conv 16 k3 s=(1, 2, 2) -> bn }\n}", path="n.res")
    projection = net.ops.nodes["downsample.0"]
    assert projection.attrs["stride"] == (1, 2, 2) and projection.shape == (16, 4, 8, 8)
    model = net.to_torch()
    assert model.get_submodule("downsample.0").stride == (1, 2, 2)


@pytest.mark.parametrize(
    ("source", "code", "needle"),
    [
        ("input 3x8x8\n conv 8 k=(3, 3, 3)", "E0411", "gives 3 sizes [3, 3, 3], but its input has 2 spatial axes"),
        ("input 3x8x8\n conv 8 k=(3, 3) s=(1, 1, 1)", "E0411", "different numbers of axes"),
        ("input 3x8x8\n conv 8 k=(3, 3, 3, 3)", "E0411", "gives 4 sizes"),
        ("input 3x8x8\n conv 8 k=(3, 0)", "E0303", "`kernel` of `conv` is 0"),
        ("input 3x8x8\n conv 8 k=(3, true)", "E0302", "expected an integer"),
        ("input 3x8x8x8x8\n conv 8", "E0209", "not 5 sizes"),
        ("input 3x8\n fc 4", "E0405", "`fc` on a 3x8 feature map"),
        ("input 16\n conv 8 k3", "E0406", "needs a feature map (C×L, C×H×W or C×D×H×W)"),
        ("input 3x4x8x8\n conv 8 k=(1, 9, 9) p=0", "E0403", "turns 4x8x8 into 4x0x0"),
        ("input 3x2x8x8\n avgpool k3 s1", "E0403", "AvgPool3d needs the kernel within the unpadded input"),
        ("input 3x2x8x8\n maxpool k3 s1", None, None),  # MaxPool3d takes it
    ],
)
def test_per_axis_and_rank_errors_are_located(source, code, needle):
    if code is None:
        net = resdsl.loads(f"network n {{\n {source}\n}}", path="n.res")
        assert net.to_torch()(torch.randn((1,) + net.input_shape)).shape[1:] == net.output_shape
        return
    with pytest.raises(SpecError) as caught:
        resdsl.loads(f"network n {{\n {source}\n}}", path="n.res")
    text = str(caught.value)
    assert f"error[{code}]" in text and needle in text and "n.res:" in text


@pytest.mark.parametrize(
    ("expression", "sizes"),
    [("[16] * 3", (16, 16, 16)), ("[8] + [32, 32]", (8, 32, 32)), ("3 * [10]", (10, 10, 10)), ("[100]", (100,))],
)
def test_input_sizes_may_come_from_a_list(expression, sizes):
    net = resdsl.loads(f"network n(sizes = {expression}) {{\n input 2 x sizes\n conv 4 k3\n}}")
    assert net.input_shape == (2,) + sizes


@pytest.mark.parametrize(
    ("expression", "code"),
    [("[1] * [2]", "E0302"), ("[1] + 2", "E0302"), ("[1] * -1", "E0303"), ("[1] * 200000", "E0303")],
)
def test_list_arithmetic_refuses_what_python_would_not_mean(expression, code):
    with pytest.raises(SpecError, match=code):
        resdsl.loads(f"network n(v = {expression}) {{\n input 3x8x8\n require v != []\n conv 4 k3\n}}")


def test_one_spec_serves_every_rank():
    ranks = {dims: resdsl.load("monai_resnet18", spatial_dims=dims, size=32) for dims in (1, 2, 3)}
    assert [len(net.input_shape) for net in ranks.values()] == [2, 3, 4]
    assert len({net.params for net in ranks.values()}) == 3  # the kernels grow with the rank
    assert [type(net.to_torch().get_submodule("layer1.0.bn1")).__name__ for net in ranks.values()] == [
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
    ]


def test_the_family_page_lists_the_spatial_models_with_their_figures():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "family.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)`(?:, `([^`]*)`)? \| `[^`]*` \| ([\d×]+) \| ([\d,]+) \| ([\d.]+) G \|$", page, re.M)
    assert {row[0] for row in rows} == {"monai_resnet18", "monai_resnet50", "r3d_18", "mc3_18", "r2plus1d_18"}
    for name, overrides, shape, params, macs in rows:
        settings = dict(item.split(" = ") for item in overrides.split(", ")) if overrides else {}
        net = resdsl.load(name, **settings)
        assert "×".join(map(str, net.input_shape)) == shape
        assert (f"{net.params:,}", f"{net.macs / 1e9:.2f}") == (params, macs), name
