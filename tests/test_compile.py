"""`resdsl compile`: export, TorchScript, state, and checkpoints checked at the spec line (see test_eject.py)."""

import pytest
import torch

import resdsl
from resdsl.cli import main
from resdsl.library import specs_dir


def same(a: torch.nn.Module, b, shape, atol=1e-6) -> bool:
    """Do `a` and `b` compute the same function? (a is put in eval mode; b is a module or a program.)"""
    a.eval()
    x = torch.randn((2,) + tuple(shape))
    with torch.no_grad():
        expected, got = a(x), b(x)
    difference = (got - expected).abs().max().item()
    assert difference <= atol, f"outputs differ by {difference:.3g}"
    return True


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


def test_matching_weights_are_loaded_into_what_is_emitted(tmp_path):
    model = resdsl.load("resnet20").to_torch()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    out = tmp_path / "m.pth"
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "w.pt"), "--emit", "state", "-o", str(out)]) == 0
    saved = torch.load(str(out), weights_only=True)["state_dict"]
    assert saved.keys() == model.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    fresh = resdsl.load("resnet20").to_torch()  # other random weights, until the emitted ones are loaded
    fresh.load_state_dict(saved, strict=True)
    assert same(model, fresh.eval(), (3, 32, 32))


def test_mismatched_checkpoint_is_reported_at_the_spec_lines(tmp_path, capsys):
    state = resdsl.load("resnet20").to_torch().state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(32, 16, 5, 5)
    del state["fc.bias"]
    state["fc.extra"] = torch.zeros(3)
    torch.save(state, tmp_path / "bad.pt")
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "bad.pt"), "-o", str(tmp_path / "x.pt2")]) == 1
    err = capsys.readouterr().err
    assert "error[E0601]: `layer2.0.conv1.weight`" in err and "32x16x5x5" in err and "32x16x3x3" in err
    lines = (specs_dir() / "blocks.res").read_text().splitlines()
    conv = 1 + lines.index(
        next(line for line in lines if line.strip().startswith("conv planes // reduce_first k3 s=("))
    )
    assert f"blocks.res:{conv}:" in err  # the conv's line in the basic block
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
