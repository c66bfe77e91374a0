"""`resdsl compile`: export, TorchScript, state, ejected Python, checkpoints checked at the spec line."""

import subprocess
import sys
import textwrap

import pytest
import torch

import resdsl
from resdsl.cli import main


def compile_(tmp_path, *args):
    return main(["compile", *args])


def same(a: torch.nn.Module, b, shape, atol=1e-6):
    a.eval()
    x = torch.randn((2,) + tuple(shape))
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=atol)


def test_default_is_a_torch_export_program(tmp_path, capsys):
    out = tmp_path / "r20.pt2"
    assert main(["compile", "resnet20", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    program = torch.export.load(str(out))
    reference = resdsl.load("resnet20").to_torch()
    reference.load_state_dict(program.state_dict, strict=True)
    assert same(reference, program.module(), (3, 32, 32))


def test_torchscript_and_state(tmp_path):
    ts, state = tmp_path / "m.ts.pt", tmp_path / "m.pth"
    assert main(["compile", "resnet20", "--emit", "torchscript", "-o", str(ts)]) == 0
    assert main(["compile", "resnet20", "--emit", "state", "-o", str(state)]) == 0
    scripted = torch.jit.load(str(ts))
    payload = torch.load(str(state), weights_only=True)
    assert payload["network"] == "resnet20" and "cifar_resnet" in payload["spec"]
    assert payload["resdsl_version"] == resdsl.__version__
    model = resdsl.load("resnet20").to_torch()
    model.load_state_dict(payload["state_dict"], strict=True)
    model.load_state_dict(scripted.state_dict(), strict=True)
    assert same(model, scripted, (3, 32, 32))


def test_onnx_without_the_package_is_a_clear_usage_error(tmp_path, capsys):
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        assert main(["compile", "resnet20", "--emit", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
        assert "pip install" in capsys.readouterr().err
    else:
        assert main(["compile", "resnet20", "--emit", "onnx", "-o", str(tmp_path / "m.onnx")]) == 0
        assert (tmp_path / "m.onnx").stat().st_size > 100_000


@pytest.mark.parametrize("name", ["resnet50", "resnet50d", "seresnet50", "resnet56", "densenet_cifar", "mlp_resnet",
                                  "preact_resnet18", "plain20"])
def test_ejected_python_runs_without_resdsl_and_loads_the_same_weights(tmp_path, name):
    small = {"resnet50": "3x64x64", "resnet50d": "3x64x64", "seresnet50": "3x64x64"}
    out = tmp_path / f"{name}.py"
    args = ["compile", name, "--emit", "python", "-o", str(out)] + (["--input", small[name]] if name in small else [])
    assert main(args) == 0
    net = resdsl.load(name, input_shape=tuple(map(int, small[name].split("x"))) if name in small else None)
    model = net.to_torch().eval()
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
        model.load_state_dict(torch.load({str(tmp_path / 'w.pt')!r}, weights_only=True), strict=True)
        with torch.no_grad():
            y = model(torch.load({str(tmp_path / 'x.pt')!r}))
        assert torch.allclose(y, torch.load({str(tmp_path / 'y.pt')!r}), atol=1e-5), (y - y).abs().max()
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    source = out.read_text()
    assert source.count("(nn.Module):") >= 2  # a class per block type, and the network's
    assert "def build() -> nn.Module" in source


def test_ejected_resnet50_loads_torchvision_weights(tmp_path):
    import torchvision
    out = tmp_path / "r50.py"
    assert main(["compile", "resnet50", "--emit", "python", "-o", str(out)]) == 0
    import runpy
    model = runpy.run_path(str(out))["build"]()
    model.load_state_dict(torchvision.models.resnet50().state_dict(), strict=True)


def test_matching_weights_are_loaded_into_what_is_emitted(tmp_path):
    model = resdsl.load("resnet20").to_torch()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "m.pth"
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "w.pt"), "--emit", "state", "-o", str(out)]) == 0
    saved = torch.load(str(out), weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_mismatched_checkpoint_is_reported_at_the_spec_lines(tmp_path, capsys):
    state = resdsl.load("resnet20").to_torch().state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(32, 16, 5, 5)
    del state["fc.bias"]
    state["fc.extra"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pt")
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "x.pt2")]) == 1
    err = capsys.readouterr().err
    assert "error[E0601]: `layer2.0.conv1.weight`" in err and "32x16x5x5" in err and "32x16x3x3" in err
    assert "blocks.res:9:" in err or "blocks.res:10:" in err  # the conv's line in the basic block
    assert "`fc.bias` (10) is missing" in err and "`fc.extra`" in err
    assert not (tmp_path / "x.pt2").exists()
    assert "Traceback" not in err


@pytest.mark.parametrize("payload", [[1, 2, 3], {"a": 1}, "text"])
def test_a_pickle_that_is_not_a_state_dict(tmp_path, capsys, payload):
    torch.save(payload, tmp_path / "odd.pt")
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "odd.pt")]) == 1
    assert "error[E0602]" in capsys.readouterr().err


def test_unsafe_or_garbage_checkpoints_are_refused(tmp_path, capsys):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Evil()))
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 100)
    for name in ("evil.pt", "junk.pt"):
        assert main(["compile", "resnet20", "--weights", str(tmp_path / name)]) == 1
        captured = capsys.readouterr()
        assert "error[E0602]" in captured.err and "code ran" not in captured.out
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "missing.pt")]) == 2


def test_max_params_refuses_before_building(tmp_path, capsys):
    assert main(["compile", "resnet50", "--max-params", "1000000", "-o", str(tmp_path / "m.pt2")]) == 1
    assert "error[E0505]" in capsys.readouterr().err
    assert not (tmp_path / "m.pt2").exists()
