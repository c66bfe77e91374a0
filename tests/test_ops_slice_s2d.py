"""The ops `slice` (a run of channels, torch.narrow) and `space_to_depth` (timm's SpaceToDepth, TResNet's stem),
and the uneven split `branches(n, split = [S0, S1, ...])`.

Each: its shape, cost and label on every rank; its result against torch's slicing and timm's module; a
DPN block (timm's DualPathBlock, three kinds) written with `slice`, `residual { from ... }` and
`dense { from ... }` at strict parity; the ejected source (`--emit python`) run without resdsl; pt2 and
TorchScript export; located errors (E0413, E0414, E0303); the input-size analysis; and random networks
whose stem starts with `space_to_depth` (resdsl.testing's `networks(space_to_depth=True)`).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from family import perturb_norms
from hypothesis import HealthCheck, given, settings
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.backend.runtime import runtime_mismatch
from resdsl.cli import main
from resdsl.draw import essentials
from resdsl.testing.generate import networks

DATA = Path(__file__).resolve().parent / "data"


def _single(op: str, input_shape: str) -> tuple[resdsl.Network, torch.nn.Module]:
    net = resdsl.loads(f"network n {{\n input {input_shape}\n op: {op}\n}}")
    return net, net.to_torch().eval()


# ---- slice ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, channels, label", [("slice 0 8", slice(0, 8), "channels 0:8"), ("slice 5", slice(5, 32), "channels 5:")]
)
def test_slice_takes_a_run_of_channels_on_every_rank(op, channels, label):
    for shape in ("32", "32x6", "32x6x6", "32x3x6x6"):
        net, model = _single(op, shape)
        width = channels.stop - channels.start
        assert net.output_shape == (width,) + net.input_shape[1:] and (net.params, net.macs) == (0, 0)
        x = torch.randn((2,) + net.input_shape)
        y = model(x)
        assert torch.equal(y, x[:, channels]) and y.data_ptr() == x[:, channels].data_ptr()  # a view, no copy
    assert essentials("slice", net.ops.nodes["op"].attrs, None) == label
    assert list(model.named_modules()) == [("", model)]  # a function of the forward: no module


def test_slice_with_named_options():
    net, model = _single("slice start=4 size=12", "32x6x6")
    x = torch.randn(1, 32, 6, 6)
    assert net.output_shape == (12, 6, 6) and torch.equal(model(x), x[:, 4:16])


@pytest.mark.parametrize(
    "bad, code, column, where",
    [  # the op's column (16) for what the shapes refuse, the argument's for what its range refuses
        ("slice 0 33", "E0413", 16, "`slice 0 33` takes channels 0 to 32, but its input has 32 (0 to 31)"),
        ("slice 30 4", "E0413", 16, "`slice 30 4` takes channels 30 to 33"),
        ("slice 32", "E0413", 16, "`slice 32` takes channels from 32, but its input has 32"),
        ("slice 0 0", "E0303", 24, "`size` of `slice`"),
        ("slice -1 4", "E0303", 22, "`start` of `slice`"),
        ("slice", "E0204", 16, "`slice` needs `start`"),
        ("slice 0 4 2", "E0204", 26, "too many positional"),
    ],
)
def test_slice_refuses_channels_it_does_not_have_where_it_is_written(bad, code, column, where):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 32x8x8\n conv 32 k1 -> {bad} }}")
    [d] = info.value.diagnostics
    assert (d.code, d.line, d.column) == (code, 2, column) and where in d.message, d.message


# ---- space_to_depth ---------------------------------------------------------------------------


def _space_to_depth(x: torch.Tensor, s: int) -> torch.Tensor:
    """The definition, element by element: output channel (offset index)·C + c at position p holds input
    channel c at p·s + offset, the offset's index running over the patch row-major (timm's order)."""
    n, c, *sizes = x.shape
    out = torch.empty((n, c * s ** len(sizes), *(size // s for size in sizes)))
    for index, offset in enumerate(itertools.product(range(s), repeat=len(sizes))):
        taken = x[(slice(None), slice(None)) + tuple(slice(o, None, s) for o in offset)]
        out[:, index * c : (index + 1) * c] = taken
    return out


def test_space_to_depth_is_timms():
    from timm.layers.space_to_depth import SpaceToDepth

    net, model = _single("space_to_depth 4", "3x32x48")
    assert net.output_shape == (48, 8, 12) and (net.params, net.macs) == (0, 0)
    x = torch.randn(2, 3, 32, 48)
    assert torch.equal(model(x), SpaceToDepth(4)(x)) and torch.equal(model(x), _space_to_depth(x, 4))
    assert essentials("space_to_depth", net.ops.nodes["op"].attrs, None) == "space to depth, /4"
    assert resdsl.loads("network n { input 3x8x8\n space_to_depth }").output_shape == (48, 2, 2)  # timm's 4


@pytest.mark.parametrize(
    "shape, size, out", [("5x12", 3, (15, 4)), ("2x4x6", 2, (8, 2, 3)), ("2x4x6x8", 2, (16, 2, 3, 4))]
)
def test_space_to_depth_on_every_rank_follows_the_definition(shape, size, out):
    net, model = _single(f"space_to_depth {size}", shape)
    assert net.output_shape == out
    x = torch.randn((2,) + net.input_shape)
    assert torch.equal(model(x), _space_to_depth(x, size))


@pytest.mark.parametrize(
    "bad, code, column, where",
    [
        (
            "space_to_depth 4",
            "E0414",
            15,
            "`space_to_depth 4` cuts 8x10 into 4×4 patches, but 10 is not a multiple of 4",
        ),
        ("space_to_depth 3", "E0414", 15, "into 3×3 patches, but 8 and 10 are not multiples of 3"),
        ("space_to_depth 0", "E0303", 30, "`size` of `space_to_depth`"),
        ("flatten -> space_to_depth 2", "E0406", 26, "`space_to_depth` needs a feature map"),
    ],
)
def test_space_to_depth_refuses_sizes_the_patch_does_not_divide_where_it_is_written(bad, code, column, where):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 3x8x10\n conv 4 k1 -> {bad} }}")
    [d] = info.value.diagnostics
    assert (d.code, d.line, d.column) == (code, 2, column) and where in d.message, d.message
    volume = "network v { input 2x4x6x5\n space_to_depth 2 }"
    with pytest.raises(resdsl.SpecError, match="cuts 4x6x5 into 2×2×2 patches, but 5 is not a multiple of 2"):
        resdsl.loads(volume)


def test_the_input_size_analysis_knows_the_patch_divides_every_size():
    from resdsl.input_sizes import input_sizes

    net = resdsl.loads("network n { input 3x32x32\n space_to_depth 4 -> conv 8 k3 s2 }")
    sizes = input_sizes(net, 1, 64)
    assert sizes.describe_valid() == "H from 4 with H ≡ 0 (mod 4)" and sizes.smallest == 4
    assert sizes.valid == tuple(range(4, 65, 4))


# ---- a DPN block: DualPathBlock's partial add and concat, written with slices ----------------------


def test_a_dual_path_block_written_with_slices_is_timms_dual_path_block():
    from timm.models.dpn import DualPathBlock

    reference = torch.nn.Sequential()
    reference.add_module("conv2_1", DualPathBlock(64, 96, 96, 256, 16, 32, "proj"))  # projects, stride 1
    reference.add_module("conv2_2", DualPathBlock(256 + 3 * 16, 96, 96, 256, 16, 32, "normal"))  # x_s = x
    reference.add_module("conv3_1", DualPathBlock(256 + 4 * 16, 192, 192, 512, 32, 32, "down"))  # stride 2
    reference.eval()
    perturb_norms(reference)
    net = resdsl.load(DATA / "dpn_blocks.res")
    model = net.to_torch().eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 64, 16, 16)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        expected = reference(x)
    with torch.no_grad():
        got = model(x)
    assert got.shape == expected.shape == (2,) + net.output_shape == (2, 512 + 3 * 32, 8, 8)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()
    assert net.params == sum(p.numel() for p in reference.parameters())
    assert 2 * 2 * net.macs == counter.get_total_flops()
    kinds = [net.ops.nodes[n].kind for n in net.ops.nodes if n.startswith("conv2_2.") and "." not in n[8:]]
    assert kinds == ["identity", "identity", "slice", "slice", "add", "slice", "concat", "slice", "concat"]


# ---- ejected, exported ------------------------------------------------------------------------

SOURCE = """block s2d_stem(width, size = 4, keep = 8) {
    space_to_depth size -> conv width k3 -> bn -> relu
    dense { slice 0 keep -> conv keep k1 -> bn }
    slice keep
}

network channel_ops {
    input 3x32x32
    s: s2d_stem(16)
    t: s2d_stem(16, size = 2, keep = 4)
    slice 2 8
    avgpool -> fc 10
}
"""


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + 1.0)
    perturb_norms(model)
    return model.eval()


def test_the_ops_eject_to_source_that_runs_without_resdsl(tmp_path):
    spec = tmp_path / "channel_ops.res"
    spec.write_text(SOURCE)
    out = tmp_path / "channel_ops.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    source = out.read_text()
    for written in (
        "self.space_to_depth = SpaceToDepth(size)",
        "class SpaceToDepth(nn.Module):",
        "out = torch.narrow(out, 1, 0, self.slice_size)",  # the block's `keep`, which differs between the calls
        "self.slice2_start = keep",
        "x = torch.narrow(x, 1, 2, 8)",
    ):
        assert written in source, written
    net = resdsl.load(str(spec))
    model = _randomised(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(x), tmp_path / "y.pt")
    check = textwrap.dedent(f"""
        import runpy, sys, torch
        sys.modules["resdsl"] = None  # the ejected file must not need resdsl
        model = runpy.run_path({str(out)!r})["build"]().eval()
        model.load_state_dict(torch.load({str(tmp_path / "w.pt")!r}, weights_only=True), strict=True)
        with torch.no_grad():
            y = model(torch.load({str(tmp_path / "x.pt")!r}))
        assert torch.equal(y, torch.load({str(tmp_path / "y.pt")!r}))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_ops_export_to_pt2_and_torchscript(tmp_path):
    spec = tmp_path / "channel_ops.res"
    spec.write_text(SOURCE)
    net = resdsl.load(str(spec))
    model = _randomised(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    weights = ["--weights", str(tmp_path / "w.pt")]
    assert main(["compile", str(spec), *weights, "-o", str(tmp_path / "m.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "m.pt2"))
    assert torch.allclose(program.module()(x), expected, atol=1e-6)
    assert main(["compile", str(spec), *weights, "--emit", "torchscript", "-o", str(tmp_path / "m.ts")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.ts"))
    with torch.no_grad():
        assert torch.allclose(scripted(x), expected, atol=1e-6)
    three_d = resdsl.loads("network v { input 2x4x4x4\n space_to_depth 2 -> slice 3 5 }").to_torch()
    volume = torch.randn(1, 2, 4, 4, 4)
    assert torch.equal(torch.jit.script(three_d)(volume), three_d(volume))


# ---- branches(n, split = [sizes]): uneven shares ------------------------------------------------

UNEVEN = """block partial(width, keep = 8) {
    branches(2, split = [keep, width - keep], merge = concat) {
        if branch == 1 { conv width - keep k3 -> bn -> relu }
    }
}

network uneven {
    input 24x16x16
    a: partial(24)
    b: partial(24, keep = 16)
    branches(3, split = [4, 12, 8], merge = concat) {
        convs[branch]: conv 8 k1
    }
    avgpool -> fc 10
}
"""


def test_an_uneven_split_gives_each_branch_its_own_share():
    net = resdsl.loads(UNEVEN)
    shares = {
        n: (d.shape[0], essentials("chunk", d.attrs, None)) for n, d in net.ops.nodes.items() if d.kind == "chunk"
    }
    assert shares == {
        "a.chunk": (8, "split 1/2, 8"),
        "a.chunk2": (16, "split 2/2, 16"),
        "b.chunk": (16, "split 1/2, 16"),
        "b.chunk2": (8, "split 2/2, 8"),
        "chunk": (4, "split 1/3, 4"),
        "chunk2": (12, "split 2/3, 12"),
        "chunk3": (8, "split 3/3, 8"),
    }
    model = _randomised(net.to_torch())
    x = torch.randn(2, 24, 16, 16)
    with torch.no_grad():
        expected = x
        for block, keep in ((model.a, 8), (model.b, 16)):  # torch.split by the sizes; the second share convolved
            kept, rest = torch.split(expected, [keep, 24 - keep], 1)
            expected = torch.cat([kept, block.relu(block.bn1(block.conv1(rest)))], 1)
        parts = torch.split(expected, [4, 12, 8], 1)
        expected = torch.cat([model.convs[i](part) for i, part in enumerate(parts)], 1)
        expected = model.fc(expected.mean((2, 3)))
        assert torch.allclose(model(x), expected, atol=1e-5, rtol=1e-5)
    assert net.params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "split, code, where",
    [
        ("[8, 4]", "E0413", "`branches(2, split = [8, 4])` splits 12 channels, but its input has 16"),
        ("[8, 4, 4]", "E0303", "`split` gives 3 sizes [8, 4, 4] to 2 branches"),
        ("[16, 0]", "E0303", "`split` gives a branch 0 channels"),
        ("[8.5, 7.5]", "E0302", "expected an integer"),
        ("[8, true]", "E0302", ""),
    ],
)
def test_an_uneven_split_that_does_not_fit_is_a_located_error(split, code, where):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 16x8x8\n branches(2, split = {split}, merge = concat) {{ conv 8 k1 }} }}")
    [d] = info.value.diagnostics
    assert d.code == code and d.line == 2 and where in d.message, d.message
    assert d.column == (2 if code == "E0413" else 22)  # the construct for the shapes, else the argument


def test_an_uneven_split_ejects_to_torch_split(tmp_path):
    spec = tmp_path / "uneven.res"
    spec.write_text(UNEVEN)
    out = tmp_path / "uneven.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    assert "splits = torch.split(x, [4, 12, 8], 1)" in out.read_text()
    net = resdsl.load(str(spec))
    model = _randomised(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 24, 16, 16)
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        torch.save(model(x), tmp_path / "y.pt")
    check = textwrap.dedent(f"""
        import runpy, sys, torch
        sys.modules["resdsl"] = None
        model = runpy.run_path({str(out)!r})["build"]().eval()
        model.load_state_dict(torch.load({str(tmp_path / "w.pt")!r}, weights_only=True), strict=True)
        with torch.no_grad():
            assert torch.equal(model(torch.load({str(tmp_path / "x.pt")!r})), torch.load({str(tmp_path / "y.pt")!r}))
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# ---- the strategies: random networks whose stem starts with space_to_depth -----------------------


@pytest.mark.slow  # 25 networks built and run: about 17 s
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(networks(space_to_depth=True, max_stages=2, ranks=(1, 2, 3)))
def test_random_networks_with_a_space_to_depth_stem_agree_at_run_time(spec):
    """The generator's own shapes (the stem's conv on C·S^rank channels of sizes / S) are resdsl's, and the
    compiled module's output, parameters and MACs are the static ones, on sequences, images and volumes."""
    net = resdsl.loads(spec.source)
    if spec.stem_space_to_depth:
        assert f"space_to_depth {spec.stem_space_to_depth} -> conv" in spec.source
    parts = {p.name: p.output_shape for p in net.parts}
    assert parts.get("stem", spec.stem_shape) == spec.stem_shape
    for stage in spec.stages:
        assert parts[stage.name] == stage.out_shape
    assert runtime_mismatch(net, batch=2) is None
