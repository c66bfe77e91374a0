"""The ops the normaliser-free ResNets brought, and the activations users port: `leaky_relu`, `hardswish`,
`mish`, `gelu tanh`, `scaled_stdconv` (timm's ScaledStdConv2d, on 1, 2 and 3 spatial axes) and `mul`.

Each: its shape, cost and label; the module it compiles to against torch's or timm's own; the ejected
source (`--emit python`) run without resdsl; pt2 and TorchScript export; and located errors.
"""

from __future__ import annotations

import runpy
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import resdsl
from resdsl.cli import main
from resdsl.draw import essentials


def _single(op: str, input_shape: str = "32x6x6") -> tuple[resdsl.Network, torch.nn.Module]:
    net = resdsl.loads(f"network n {{\n input {input_shape}\n op: {op}\n}}")
    return net, net.to_torch().eval()


@pytest.mark.parametrize(
    "op, reference, label",
    [
        ("leaky_relu", torch.nn.LeakyReLU(), "LeakyReLU"),
        ("leaky_relu 0.2", torch.nn.LeakyReLU(0.2), "LeakyReLU 0.2"),
        ("leaky_relu slope=0", torch.nn.LeakyReLU(0.0), "LeakyReLU 0"),
        ("hardswish", torch.nn.Hardswish(), "hardswish"),
        ("mish", torch.nn.Mish(), "Mish"),
        ("gelu", torch.nn.GELU(), "GELU"),
        ("gelu tanh", torch.nn.GELU(approximate="tanh"), "GELU tanh"),
        ("gelu approximate=tanh", torch.nn.GELU(approximate="tanh"), "GELU tanh"),
        ("mul 0.2", None, "× 0.2"),
        ("mul factor=-1.5", None, "× -1.5"),
    ],
)
def test_activations_and_mul_compute_torchs_on_every_rank(op, reference, label):
    for shape in ("32", "32x6", "32x6x6", "32x3x6x6"):
        net, model = _single(op, shape)
        assert net.output_shape == net.input_shape and (net.params, net.macs) == (0, 0)
        x = torch.randn((2,) + net.input_shape)
        expected = x * float(op.split("=")[-1].split()[-1]) if reference is None else reference(x)
        assert torch.equal(model(x.clone()), expected), (op, shape)
    assert essentials(net.ops.nodes["op"].kind, net.ops.nodes["op"].attrs, None) == label


def test_the_activations_run_in_place_where_no_one_else_reads_their_input():
    net = resdsl.loads("network n { input 8x6x6\n conv 8 k3 -> leaky_relu 0.1 -> conv 8 k1 -> mish -> hardswish }")
    model = net.to_torch()
    assert model.leaky_relu.inplace and model.leaky_relu.negative_slope == 0.1 and model.mish.inplace
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    model(x).sum().backward()  # autograd accepts the in-place activations after a conv
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "op, timm_layer",
    [
        ("scaled_stdconv 16 k3 s2 bias", "ScaledStdConv2d(32, 16, 3, stride=2)"),
        ("scaled_stdconv 16 k1 gamma=1.7139588594436646 eps=1e-5", "ScaledStdConv2d(32, 16, 1, bias=False, "
         "gamma=1.7139588594436646, eps=1e-5)"),
        ("scaled_stdconv 16 k3 g4 bias gamma=2", "ScaledStdConv2d(32, 16, 3, groups=4, gamma=2.0)"),
    ],
)  # fmt: skip
def test_scaled_stdconv_computes_timms_scaled_std_conv(op, timm_layer):
    from timm.layers import ScaledStdConv2d  # noqa: F401 - the name in `timm_layer`

    net, model = _single(op)
    reference = eval(timm_layer).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + 1.0)
    model.op.load_state_dict(reference.state_dict(), strict=True)  # weight, bias, gain
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        got = model(x)
    assert torch.equal(got, reference(x))
    assert sum(p.numel() for p in model.parameters()) == net.params == sum(p.numel() for p in reference.parameters())
    assert counter.get_total_flops() == 2 * 2 * net.macs and tuple(got.shape[1:]) == net.output_shape


@pytest.mark.parametrize("shape, torch_conv", [("8x12", "conv1d"), ("8x6x6", "conv2d"), ("8x4x6x6", "conv3d")])
def test_scaled_stdconv_on_any_rank_scales_each_standardised_filter(shape, torch_conv):
    net, model = _single("scaled_stdconv 6 k3 bias gamma=1.5 eps=1e-4", shape)
    conv = model.op
    with torch.no_grad():
        conv.gain.copy_(torch.rand(conv.gain.shape) + 0.5)
        conv.bias.copy_(torch.randn(6))
    w = conv.weight.detach()
    fan_in = w[0].numel()
    flat = w.reshape(6, -1)
    standardised = (flat - flat.mean(1, keepdim=True)) / (flat.var(1, unbiased=False, keepdim=True) + 1e-4).sqrt()
    scaled = (standardised * conv.gain.detach().reshape(6, 1) * 1.5 / fan_in**0.5).reshape_as(w)
    x = torch.randn((2,) + net.input_shape)
    expected = getattr(torch.nn.functional, torch_conv)(x, scaled, conv.bias.detach(), padding=1)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5, rtol=1e-5)
    weights = 6 * 8 * 3 ** (len(net.input_shape) - 1)
    assert net.params == weights + 6 + 6  # weights, bias, gain (6×1×1…)
    assert net.macs == weights * torch.Size(net.output_shape[1:]).numel()


def test_scaled_stdconv_without_gain_and_with_gain_init():
    net, model = _single("scaled_stdconv 16 k3 gain=false")
    assert net.params == 16 * 32 * 9 and "gain" not in dict(model.named_parameters()) and model.op.gain is None
    net, model = _single("scaled_stdconv 16 k1 gain_init=0 bias")
    assert torch.count_nonzero(model.op.gain) == 0 and net.params == 16 * 32 + 16 + 16
    assert torch.equal(model(torch.randn(1, 32, 6, 6)), model.op.bias.detach().reshape(1, 16, 1, 1).expand(1, 16, 6, 6))
    assert essentials("scaled_stdconv", net.ops.nodes["op"].attrs, None) == "scaled std conv 1×1, 16"
    net, _ = _single("scaled_stdconv 16 k3 s2 gamma=1.7")
    assert essentials("scaled_stdconv", net.ops.nodes["op"].attrs, None) == "scaled std conv 3×3, 16, /2, gamma 1.7"


@pytest.mark.parametrize(
    "bad, code, where",
    [
        ("leaky_relu -0.1", "E0303", "`slope` of `leaky_relu`"),  # torch cannot differentiate it in place
        ("leaky_relu 2", "E0303", "`slope` of `leaky_relu`"),
        ("gelu sigmoid", "E0204", "`sigmoid` is an op"),
        ("gelu approximate=nearest", "E0302", "`approximate` of `gelu`"),
        ("gelu approximate=1", "E0302", "`approximate` of `gelu`"),
        ("hardswish 1", "E0204", "too many positional"),
        ("mish inplace", "E0203", "`mish` has no option `inplace`"),
        ("mul", "E0204", "`mul` needs `factor`"),
        ("mul 1e7", "E0303", "`factor` of `mul`"),
        ("mul gain=2", "E0203", "`mul` has no option `gain`"),
        ("scaled_stdconv 8 k3 eps=0", "E0303", "`eps` of `scaled_stdconv`"),
        ("scaled_stdconv 8 k3 eps=2", "E0303", "`eps` of `scaled_stdconv`"),
        ("scaled_stdconv 8 k3 gamma=0", "E0303", "`gamma` of `scaled_stdconv`"),
        ("scaled_stdconv 32 k1 g=32", "E0410", "no variance"),
        ("scaled_stdconv 8 k3 g=3", "E0402", "groups=3"),
    ],
)
def test_bad_arguments_are_located_errors(bad, code, where):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(f"network n {{ input 32x8x8\n {bad} }}")
    [d] = info.value.diagnostics
    assert d.code == code and d.line == 2 and where in d.message, d.message


def test_scaled_stdconv_needs_a_feature_map():
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n { input 32\n scaled_stdconv 8 k1 }")
    assert [d.code for d in info.value.diagnostics] == ["E0406"]


SOURCE = """network nf_ops {
    input 8x12x12
    scaled_stdconv 16 k3 s2 gamma=1.7139588594436646 eps=1e-5 bias -> relu -> mul 0.2
    leaky_relu -> leaky_relu 0.2 -> hardswish -> mish -> gelu tanh -> gelu
    scaled_stdconv 16 k1 gain=false -> scaled_stdconv 8 k1 gain_init=0.5 bias
    avgpool -> fc 10 -> mul -1.5 -> leaky_relu slope=0
}
"""


def _randomised(model: torch.nn.Module) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + 1.0)
    return model.eval()


def test_the_new_ops_eject_to_source_that_runs_without_resdsl(tmp_path):
    spec = tmp_path / "nf_ops.res"
    spec.write_text(SOURCE)
    out = tmp_path / "nf_ops.py"
    assert main(["compile", str(spec), "--emit", "python", "-o", str(out)]) == 0
    source = out.read_text()
    for written in (
        "ScaledStdConv2d(8, 16, kernel_size=3, stride=2, padding=1, eps=1e-05,",
        "gamma=1.7139588594436646",
        "Multiply(0.2)",
        "nn.LeakyReLU(negative_slope=0.2, inplace=True)",
        "nn.GELU(approximate='tanh')",
        "nn.Mish(inplace=True)",
        "nn.Hardswish(inplace=True)",
        "ScaledStdConv2d(16, 16, kernel_size=1, bias=False, gain=False)",
        "gain_init=0.5",
    ):
        assert written in source, written
    net = resdsl.load(str(spec))
    model = _randomised(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 8, 12, 12)
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


def test_the_new_ops_export_to_pt2_and_torchscript(tmp_path):
    spec = tmp_path / "nf_ops.res"
    spec.write_text(SOURCE)
    net = resdsl.load(str(spec))
    model = _randomised(net.to_torch())
    torch.save(model.state_dict(), tmp_path / "w.pt")
    x = torch.randn(2, 8, 12, 12)
    with torch.no_grad():
        expected = model(x)
    assert main(["compile", str(spec), "--weights", str(tmp_path / "w.pt"), "-o", str(tmp_path / "m.pt2")]) == 0
    program = torch.export.load(str(tmp_path / "m.pt2"))
    assert torch.allclose(program.module()(x), expected, atol=1e-6)
    out = tmp_path / "m.ts"
    weights = ["--weights", str(tmp_path / "w.pt")]
    assert main(["compile", str(spec), *weights, "--emit", "torchscript", "-o", str(out)]) == 0
    scripted = torch.jit.load(str(out))
    with torch.no_grad():
        assert torch.allclose(scripted(x), expected, atol=1e-6)


def test_the_drawing_labels_the_new_ops():
    net = resdsl.loads(SOURCE)
    labels = {name: essentials(node.kind, node.attrs, None) for name, node in net.ops.nodes.items() if name != "input"}
    assert labels["scaled_stdconv1"] == "scaled std conv 3×3, 16, /2, gamma 1.71396"
    assert labels["mul"] == "× 0.2" and labels["gelu"] == "GELU tanh" and labels["leaky_relu2"] == "LeakyReLU 0.2"
    assert runpy  # the module is imported for the ejected file's runner above
