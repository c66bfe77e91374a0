"""`resdsl compile --emit python`: the ejected source is general PyTorch, not a replay of one network.

Each block class is checked at values the network never used against the
module resdsl builds for those values; the network class at another
`num_classes`; the whole file in a process where resdsl cannot be imported;
ResNet-50 and friends against torchvision's and timm's own models.
"""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from family import LEFT_TO_TEST_FAMILY, SEVERAL_OUTPUTS, SPATIAL, TIMM_ALL, tiered
from hypothesis import HealthCheck, given, settings

import resdsl
from resdsl.backend.eject import eject
from resdsl.cli import main
from resdsl.library import bundled_networks, specs_dir
from resdsl.testing import networks

IMAGENET = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50d",
    "seresnet50",
    "resnext50_32x4d",
    "resnet101",
    "resnet152",
    "wide_resnet50_2",
    "resnet50_v1",
    "plain18",
    "plain34",
    "resnet",
    "res2net",
    "sknet",
    "resnest",
    "resnetv2",
    "pruned_resnet",
} | set(TIMM_ALL)
SMALL = (3, 64, 64)  # ImageNet networks are checked on small inputs: the source does not depend on it


# 1-D and 3-D networks too: torchvision's video ResNets on 4-frame 32×32 clips, MONAI's on 16³ volumes
SPATIAL_SMALL = {"r3d_18": (3, 4, 32, 32), "mc3_18": (3, 4, 32, 32), "r2plus1d_18": (3, 4, 32, 32)}
SPATIAL_SMALL |= {name: (3, 16, 16, 16) for name in SPATIAL if name.startswith("monai")}


def load(name: str, **params) -> resdsl.Network:
    shape = SMALL if name in IMAGENET else SPATIAL_SMALL.get(name)
    return resdsl.load(name, input_shape=shape, **params)


_SOURCES: dict[str, dict] = {}


def ejected(name: str) -> dict:
    """The namespace of the ejected file of a bundled network (written once per test session)."""
    if name not in _SOURCES:
        source = eject(load(name))
        namespace: dict = {"__name__": f"ejected_{name}"}
        exec(compile(source, f"<ejected {name}>", "exec", dont_inherit=True), namespace)
        namespace["__source__"] = source
        _SOURCES[name] = namespace
    return _SOURCES[name]


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial weights and BN statistics (zero-initialised BNs included), so that equal outputs
    mean equal computations, not 'every BN is an identity'."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
    return model.eval()


def assert_same(
    ours: torch.nn.Module, reference: torch.nn.Module, shape: tuple[int, ...], atol: float = 1e-5, prefix: str = ""
) -> None:
    """Load `reference`'s weights (its keys below `prefix`) into `ours` strictly, then compare outputs."""
    state = {k[len(prefix) :]: v for k, v in reference.state_dict().items() if k.startswith(prefix)}
    ours.load_state_dict(state, strict=True)
    ours.eval()
    reference.eval()
    x = torch.randn((2,) + tuple(shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == expected.shape
    difference = (got - expected).abs().max().item()
    assert difference <= atol * max(1.0, expected.abs().max().item()), f"outputs differ by {difference:.3g}"


# ---- 1. the file alone, in a process without resdsl ------------------------------------------

EJECTED = [
    "resnet18",
    "resnet50",
    "resnet50d",
    "seresnet50",
    "resnext50_32x4d",
    "resnet20",
    "resnet56",
    "preact_resnet18",
    "densenet_cifar",
    "mlp_resnet",
    "plain20",
]
# The fast tier (-m "not slow") runs a process for one spec per construct: basic blocks with option A,
# bottlenecks with SE, pre-activation, dense concat, vectors.
EJECTED_FAST = {"resnet20"}
# ... and ejects in process one spec per construct: option A, dense concat, vectors, ResNet-D shortcuts, an `if`
# on a varying parameter, a varying carry, a loop over branches, split attention, written shortcuts, pruned widths,
# a plain network, pre-activation. The sweep over every bundled spec is the slow tier's.
EVERY_FAST = {
    "resnet20",
    "densenet_cifar",
    "mlp_resnet",
    "resnet50d",
    "resnetaa34d",
    "res2net50_26w_4s",
    "skresnet18",
    "resnest14d",
    "resnetv2_50d_evos",
    "pruned_resnet",
    "plain20",
    "preact_resnet18",
    "r2plus1d_18",  # per-axis kernels and strides, one varying (`s=(1, stride, stride)`), 3-d layers
}


@pytest.mark.parametrize("name", tiered(EJECTED, EJECTED_FAST))
def test_ejected_file_runs_without_resdsl_and_computes_what_resdsl_compiles(tmp_path, name):
    out = tmp_path / f"{name}.py"
    size = ["--input", "x".join(map(str, SMALL))] if name in IMAGENET else []
    assert main(["compile", name, "--emit", "python", "-o", str(out)] + size) == 0
    net = load(name)
    model = randomise(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn((2,) + net.input_shape)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(x), tmp_path / "y.pt")
    check = textwrap.dedent(f"""
        import runpy, sys, torch
        sys.modules["resdsl"] = None  # the ejected file must not need resdsl
        build = runpy.run_path({str(out)!r})["build"]
        model = build().eval()
        model.load_state_dict(torch.load({str(tmp_path / "w.pt")!r}, weights_only=True), strict=True)
        with torch.no_grad():
            y = model(torch.load({str(tmp_path / "x.pt")!r}))
        expected = torch.load({str(tmp_path / "y.pt")!r})
        difference = (y - expected).abs().max().item()
        assert y.shape == expected.shape and difference <= 1e-5, f"outputs differ by {{difference}}"
        assert build(num_classes=3).eval()(torch.load({str(tmp_path / "x.pt")!r})).shape[-1] == 3
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# The deepest ones are left out for time: they use the classes of resnet50 and resnet56.
@pytest.mark.parametrize(
    "name",
    tiered(
        [
            n
            for n in bundled_networks()
            if n not in ("resnet1202", "resnet152", "resnet101", "resnet110")
            and n not in LEFT_TO_TEST_FAMILY
            and n not in SEVERAL_OUTPUTS  # refused (E0213): test_outputs.py
        ],
        EVERY_FAST,
    ),
)
def test_every_bundled_network_ejects_to_the_same_computation(name):
    net = load(name)
    assert_same(ejected(name)["build"](), randomise(net.to_torch()), net.input_shape)


# ---- 2. other values than the network's -------------------------------------------------------


def block_module(
    call: str, input_shape: str, policy: str = "B", use: str = "blocks.res"
) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """The module resdsl compiles for one block call `b: CALL` on `input_shape`, under `policy`."""
    net = resdsl.loads(
        f'use "{use}"\nnetwork one {{\n    input {input_shape}\n    shortcut {policy}\n    b: {call}\n}}\n'
    )
    return randomise(net.to_torch()), net.input_shape


# (network whose file is used, constructor call in that file, the same block in resdsl with the
# network's constants spelled out, input, policy, the file the block is in). A class takes the
# parameters that vary between its calls in that network; the others are its constants.
OTHER_VALUES = [
    (
        "resnet20",
        "Basic(16, 48, stride=2, downsample=ZeroPadShortcut(2, 32))",
        "basic(48, stride=2)",
        "16x16x16",
        "A",
        "blocks.res",
    ),
    ("resnet20", "Basic(24, 24)", "basic(24)", "24x9x9", "A", "blocks.res"),
    (
        "resnet18",
        "Basic(8, 16, stride=3, downsample=nn.Sequential(nn.Conv2d(8, 16, 1, stride=3, bias=False), "
        "nn.BatchNorm2d(16)))",
        "basic(16, stride=3)",
        "8x10x10",
        "B",
        "blocks.res",
    ),
    (
        "resnet50",
        "Bottleneck(64, 32, stride=2, downsample=nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, bias=False), "
        "nn.BatchNorm2d(128)))",
        "bottleneck(32, stride=2)",
        "64x16x16",
        "B",
        "blocks.res",
    ),
    (
        "resnext50_32x4d",
        "Bottleneck(64, 32, stride=2, downsample=nn.Sequential(nn.Conv2d(64, 128, 1, stride=2, "
        "bias=False), nn.BatchNorm2d(128)))",
        "bottleneck(32, stride=2, groups=32, base_width=4)",
        "64x16x16",
        "B",
        "blocks.res",
    ),
    (
        "seresnet50",
        "Bottleneck(32, 16, stride=2, downsample=nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, "
        "bias=False), nn.BatchNorm2d(64)))",
        "bottleneck(16, stride=2, se_ratio=16, se_divisor=8)",
        "32x12x12",
        "B",
        "blocks.res",
    ),
    (
        "resnet50d",
        "Bottleneck(64, 32, stride=2, downsample=nn.Sequential(nn.AvgPool2d(2, ceil_mode=True, "
        "count_include_pad=False), nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128)))",
        "bottleneck(32, stride=2)",
        "64x9x9",
        "D",
        "blocks.res",
    ),
    (
        "resnet50d",
        "Bottleneck(32, 32, downsample=nn.Sequential(nn.Identity(), nn.Conv2d(32, 128, 1, bias=False), "
        "nn.BatchNorm2d(128)))",
        "bottleneck(32)",
        "32x8x8",
        "D",
        "blocks.res",
    ),
    # an `if` on a parameter that varies: the anti-aliasing pool of a stride-2 block
    (
        "resnetaa34d",
        "Basic(16, 32, stride=2, downsample=nn.Sequential(nn.AvgPool2d(2, ceil_mode=True, "
        "count_include_pad=False), nn.Conv2d(16, 32, 1, bias=False), nn.BatchNorm2d(32)))",
        "basic(32, stride=2, aa=true)",
        "16x12x12",
        "D",
        "blocks.res",
    ),
    ("resnetaa34d", "Basic(24, 24)", "basic(24, aa=true)", "24x7x7", "D", "blocks.res"),
    (
        "preact_resnet18",
        "PreactBasic(32, 64, stride=2, downsample=nn.Sequential(nn.Conv2d(32, 64, 1, stride=2, bias=False)))",
        "preact_basic(64, stride=2)",
        "32x8x8",
        "B",
        "blocks.res",
    ),
    ("preact_resnet18", "PreactBasic(48, 48)", "preact_basic(48)", "48x6x6", "B", "blocks.res"),
    ("densenet_cifar", "DenseLayer(20)", "dense_layer(12)", "20x8x8", "B", "blocks.res"),
    ("densenet_cifar", "Transition(20, 10)", "transition(10)", "20x8x8", "B", "blocks.res"),
    (
        "mlp_resnet",
        "FcResidual(32, 16, downsample=nn.Sequential(nn.Linear(32, 16, bias=False), nn.BatchNorm1d(16)))",
        "fc_residual(16)",
        "32",
        "B",
        "blocks.res",
    ),
    ("plain20", "Basic(16, 48, stride=2)", "basic(48, stride=2)", "16x16x16", "none", "blocks.res"),
    # a multi-branch block (the loop over an nn.ModuleList), a block inside a block, a varying carry
    (
        "skresnet18",
        "SelectiveKernel(16, 24, stride=2)",
        "selective_kernel(24, stride=2, reduction=8, divisor=16)",
        "16x10x10",
        "B",
        "sknet.res",
    ),
    (
        "skresnet18",
        "SkBasic(16, 32, stride=2, downsample=nn.Sequential(nn.Conv2d(16, 32, 1, stride=2, bias=False), "
        "nn.BatchNorm2d(32)))",
        "sk_basic(32, stride=2)",
        "16x10x10",
        "B",
        "sknet.res",
    ),
    (
        "res2net50_26w_4s",
        "Bottle2neck(32, 64, stride=2, first=True, downsample=nn.Sequential(nn.Conv2d(32, 256, 1, "
        "stride=2, bias=False), nn.BatchNorm2d(256)))",
        "bottle2neck(64, stride=2, first=true)",
        "32x8x8",
        "B",
        "res2net.res",
    ),
    ("res2net50_26w_4s", "Bottle2neck(256, 64)", "bottle2neck(64)", "256x6x6", "B", "res2net.res"),
    (
        "resnest50d",
        "ResnestBottleneck(64, 32, stride=2, downsample=nn.Sequential(nn.AvgPool2d(2, ceil_mode=True, "
        "count_include_pad=False), nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128)))",
        "resnest_bottleneck(32, stride=2, base_width=64)",
        "64x8x8",
        "D",
        "resnest.res",
    ),
]


@pytest.mark.parametrize("name, constructor, call, shape, policy, use", OTHER_VALUES)
def test_an_ejected_block_class_is_right_for_values_the_network_never_used(name, constructor, call, shape, policy, use):
    namespace = ejected(name)
    reference, input_shape = block_module(call, shape, policy, use)
    ours = eval(constructor, namespace)
    assert_same(ours, reference, input_shape, prefix="b.")


def test_a_pruned_block_takes_its_widths_and_no_parameter_it_does_not_use():
    # the pruned model gives every width itself: `planes` varies between the calls but sizes nothing
    assert str(inspect.signature(ejected("ecaresnet50d_pruned")["Bottleneck"])) == (
        "(inplanes, stride=1, downsample=None, *, reduce_width, inner_width, out_width, eca_kernel)"
    )


def test_a_block_class_refuses_values_it_was_not_written_for():
    # every call of the pruned model's bottleneck has an ECA kernel: the class has no branch without one
    with pytest.raises(ValueError, match="eca_kernel > 0"):
        ejected("ecaresnet50d_pruned")["Bottleneck"](64, reduce_width=16, inner_width=16, out_width=64, eca_kernel=0)


@pytest.mark.parametrize(
    "name", tiered(["resnet20", "resnet50", "mlp_resnet", "densenet_cifar"], {"resnet20", "mlp_resnet"})
)
def test_the_network_class_takes_num_classes(name):
    net = load(name, classes=7)
    ours = ejected(name)["build"](num_classes=7)
    assert_same(ours, randomise(net.to_torch()), net.input_shape)


def test_random_networks_eject_to_the_same_computation():
    @settings(max_examples=12, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(networks(max_stages=3))
    def check(spec):
        net = resdsl.loads(spec.source)
        namespace: dict = {}
        exec(compile(eject(net), "<ejected>", "exec", dont_inherit=True), namespace)
        assert_same(namespace["build"](), randomise(net.to_torch()), net.input_shape)

    check()


def test_blocks_calling_blocks_stages_in_blocks_and_conditions(tmp_path):
    spec = tmp_path / "nested.res"
    spec.write_text(
        textwrap.dedent("""\
        use "blocks.res"

        block double(width, stride = 1) {
            basic(width, stride=stride)
            second: basic(width)
        }

        block dense_stage(growth, n = 3) {
            layers: dense_layer(growth) x n
            conv growth k1
        }

        block pair(width, stride = 1, n = 2, act = true) {
            blocks: basic(width) x n stride=stride
            if act { gelu } else { silu -> sigmoid }
            g { conv width k1 -> bn -> relu }
            if width > 32 { residual { conv width k3 -> bn } }
        }

        network nested(classes = 10) {
            input 16x32x32
            a: double(16)
            b: double(32, stride=2)
            c: dense_stage(8)
            d: pair(32, stride=2, n=3)
            e: pair(64, stride=2, act=false)
            avgpool -> fc classes -> bn -> relu -> fc classes
        }
    """)
    )
    net = resdsl.load(spec)
    namespace: dict = {}
    exec(compile(eject(net), "<ejected>", "exec", dont_inherit=True), namespace)
    assert_same(namespace["build"](num_classes=3), randomise(resdsl.load(spec, classes=3).to_torch()), net.input_shape)
    # a block calling blocks is a class, and passes its inner blocks' shortcuts on; a block holding a stage
    # has no class yet: those calls alone are written flat, and the file's docstring says why
    source = namespace["__source__"] if "__source__" in namespace else eject(net)
    assert "def __init__(self, inplanes, width, stride=1, basic_downsample=None, second_downsample=None):" in source
    assert "class DenseStageFlat(nn.Module):" in source and "class Basic(nn.Module):" in source
    assert "dense_stage: a stage (`x N`) inside a block" in ast.get_docstring(ast.parse(source)).replace("\n", " ")


# ---- 3. torchvision's and timm's models -----------------------------------------------------


def test_ejected_resnet50_is_torchvision_resnet50():
    import torchvision

    reference = randomise(torchvision.models.resnet50())
    assert_same(ejected("resnet50")["build"](), reference, SMALL)


@pytest.mark.parametrize("name", ["resnet50d", "seresnet50"])
def test_ejected_timm_models_are_timm_models(name):
    import timm

    reference = randomise(timm.create_model(name, pretrained=False))
    assert_same(ejected(name)["build"](), reference, SMALL)


# ---- 4. the source itself ----------------------------------------------------------------------


def _unused_imports(source: str) -> set[str]:
    tree = ast.parse(source)
    imported = {
        (a.asname or a.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for a in node.names
    }
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return imported - used


@pytest.mark.parametrize("name", EJECTED)
def test_ejected_source_has_no_dead_code(name):
    source = ejected(name)["__source__"]
    assert not _unused_imports(source)
    tree = ast.parse(source)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Pass)]
    assert "no_grad" not in source
    assert ast.get_docstring(tree).startswith(f"{name}, from {name}.res")


def test_the_docstring_names_the_spec_not_where_it_lies(tmp_path, monkeypatch):
    spec = tmp_path / "specs_kept_here" / "mine.res"
    spec.parent.mkdir()
    shutil.copy(specs_dir() / "resnet20.res", spec)
    shutil.copy(specs_dir() / "cifar_resnet.res", spec.parent / "cifar_resnet.res")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the spec is outside the working directory: an absolute path
    out = tmp_path / "m.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    source = out.read_text()
    assert str(tmp_path) not in source and "specs_kept_here" not in source and "from mine.res" in source


TORCHVISION_SIGNATURE = "(inplanes, planes, stride=1, downsample=None)"


@pytest.mark.parametrize(
    "name, block", [("resnet18", "Basic"), ("resnet50", "Bottleneck"), ("resnext50_32x4d", "Bottleneck")]
)
def test_block_classes_have_torchvisions_signature(name, block):
    """Specialised to the network: the parameters its calls agree on are constants of the class."""
    assert str(inspect.signature(ejected(name)[block])) == TORCHVISION_SIGNATURE


def _classes(name: str) -> set[str]:
    return {k for k, v in ejected(name).items() if inspect.isclass(v) and v.__module__ == f"ejected_{name}"}


def test_resnet50_reads_like_torchvisions_resnet():
    r50 = ejected("resnet50")
    assert _classes("resnet50") == {"Bottleneck", "Resnet50"}  # no helper the network does not use
    assert str(inspect.signature(r50["Resnet50"])) == "(num_classes=1000)"
    assert list(inspect.signature(r50["build"]).parameters.values())[0].default == 1000
    source = r50["__source__"]
    block = source[source.index("    def __init__", source.index("class Bottleneck")) : source.index("class Resnet50")]
    # one test in the whole block, torchvision's; no option resnet50 does not use
    assert [line.strip() for line in block.splitlines() if line.strip().startswith("if ")] == [
        "if self.downsample is not None:"
    ]
    for unused in ("se_", "aa", "blur", "eca", "groups", "base_width", "zero_init"):
        assert unused not in block, unused
    assert "out_width = planes * 4" in block and "out += identity" in block
    assert "self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)" in block
    # every stage written the same way: its first block, then the others in one comprehension
    for width, count in ((64, 2), (128, 3), (256, 5), (512, 2)):
        assert f"*[Bottleneck({width * 4}, {width}) for _ in range({count})]" in source
    assert "self.fc = nn.Linear(2048, num_classes)" in source


def test_a_varying_if_is_one_test_in_the_class():
    block = ejected("resnetaa34d")["__source__"]
    assert "self.aa = nn.AvgPool2d(kernel_size=2) if stride == 2 else None" in block
    assert "stride=1 if stride == 2 else stride" in block.replace("(", "").replace(")", "")


def test_multi_branch_blocks_are_classes_with_a_loop_over_their_branches():
    sk = ejected("skresnet18")["__source__"]
    assert _classes("skresnet18") == {"SelectiveKernel", "SkBasic", "Skresnet18"}
    assert "self.paths = nn.ModuleList([" in sk and "for branch in range(2)" in sk
    assert "padding=branch + 1" in sk and "dilation=branch + 1" in sk
    assert "branches = [path(part) for path, part in zip(self.paths, splits, strict=True)]" in sk
    assert "self.conv1 = SelectiveKernel(inplanes, width, stride=stride)" in sk
    assert "attn_width = max(16, (width // 8 + 8) // 16 * 16)" in sk
    for name, block in (("res2net50_26w_4s", "Bottle2neck"), ("resnest50d", "ResnestBottleneck")):
        assert block in _classes(name) and not any("Flat" in c for c in _classes(name)), name


RUFF_CHECKED = [
    "resnet18",
    "resnet50",
    "resnext50_32x4d",
    "resnet50d",
    "seresnet50",
    "resnet20",
    "preact_resnet18",
    "densenet_cifar",
    "mlp_resnet",
    "plain20",
    "skresnet18",
    "res2net50_26w_4s",
    "resnest50d",
    "resnetaa34d",
    "resnetv2_50d_evos",
    "ecaresnet50d_pruned",
]


@pytest.mark.parametrize(
    "ruleset",
    [[], ["--select", "E,F,W,I,UP,B", "--line-length", "120"]],
    ids=["ruff-defaults", "pycodestyle-isort-upgrade-bugbear"],
)
def test_the_ejected_files_pass_ruff(tmp_path, ruleset):
    for name in RUFF_CHECKED:
        (tmp_path / f"{name}.py").write_text(ejected(name)["__source__"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--isolated",
            "--no-cache",
            "--output-format",
            "concise",
            *ruleset,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_docs_python_shows_what_the_ejector_writes():
    """docs/python.md shows ResNet-50's and SK-ResNet-18's block classes as they are written today."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "python.md").read_text()
    shown = re.findall(r"```python\n(.*?)```", page, re.S)
    r50, sk = ejected("resnet50")["__source__"], ejected("skresnet18")["__source__"]
    assert shown[0].strip() == r50[r50.index("class Bottleneck") : r50.index("\n\n\nclass Resnet50")].strip()
    sk_blocks = sk[sk.index("class SelectiveKernel") : sk.index("\n\n\nclass Skresnet18")]
    assert shown[1].strip() == sk_blocks.strip()


def test_widths_are_worked_out_once_and_simplified():
    """A width that sizes several modules is one local, as torchvision's `width`; `x * 4 // 64` is `x // 16`."""
    res2net = ejected("res2net50_26w_4s")["__source__"]
    block = res2net[res2net.index("class Bottle2neck") : res2net.index("class Res2net50_26w4s")]
    assert "mid_channels2 = width * 26 // 64" in block and block.count("width * 26 // 64") == 2
    assert "reduce_width = planes // 16 * 32" in ejected("resnext50_32x4d")["__source__"]


def test_a_parameter_named_like_what_the_class_uses_is_renamed():
    spec = (
        "block b(max, splits, stride = 1) {\n    residual { conv max k3 s=stride -> bn -> relu -> conv splits k3 }\n}\n"
        "network n {\n    input 8x8x8\n    b(8, 8)\n    b(16, 16, stride = 2)\n}\n"
    )
    net = resdsl.loads(spec)
    source = eject(net)
    assert "def __init__(self, inplanes, max_, splits_, stride=1, downsample=None):" in source
    namespace: dict = {}
    exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
    assert_same(namespace["build"](), randomise(net.to_torch()), net.input_shape)


def test_quoted_names_that_python_cannot_write_after_self_are_added_as_modules():
    # `"c-1"` in a block class and `"0-stem"` in the network class: `self.add_module("c-1", ...)` and
    # `self.get_submodule("c-1")(x)`, as torchvision's RegNet names `block1-0`
    net = resdsl.loads(
        'block b(w) { "c-1": conv w k3 -> bn -> relu }\n'
        'network n {\n input 3x16x16\n "0-stem" { conv 8 k3 -> bn }\n b(8) -> b(8)\n avgpool -> fc 3\n}\n'
    )
    source = eject(net)
    assert 'self.add_module("c-1", nn.Conv2d(' in source and 'self.get_submodule("0-stem")(x)' in source
    namespace: dict = {}
    exec(compile(source, "<ejected>", "exec", dont_inherit=True), namespace)
    assert_same(namespace["build"](), randomise(net.to_torch()), net.input_shape)
