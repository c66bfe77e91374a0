import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "resdsl", *args], capture_output=True, text=True, timeout=timeout)


def test_check_prints_shape_params_and_macs(capsys):
    assert main(["check", "resnet50", "resnet20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("ok resnet50: 3x224x224 -> 1000, 25,557,032 params, 4,089,184,256 MACs (4.09 G)")
    assert out[1].startswith("ok resnet20: 3x32x32 -> 10, 269,722 params")


def test_check_reports_every_failing_file_and_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.res"
    bad.write_text("network bad { input 3x8x8\n  conv 8 k3 g3\n}\n")
    assert main(["check", str(bad), "resnet18"]) == 1
    captured = capsys.readouterr()
    assert "ok resnet18" in captured.out
    assert "error[E0402]" in captured.err and f"{bad}:2:3" in captured.err


def test_set_and_input_override(capsys):
    assert main(["check", "resnet18", "--set", "classes=10", "--input", "3x32x32"]) == 0
    assert "3x32x32 -> 10," in capsys.readouterr().out


def test_set_takes_expressions_lists_and_blocks(capsys):
    assert main(["check", "specs/resnet.res", "--set", "unit=basic", "--set", "layers=[2, 2, 2, 2]"]) == 0
    assert "11,689,512 params" in capsys.readouterr().out


def test_summary_json(capsys):
    assert main(["summary", "resnet50", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 25_557_032 and data["macs"] == 4_089_184_256
    assert data["output_shape"] == [1000]
    assert [p["name"] for p in data["parts"]][:2] == ["stem", "layer1"]
    assert len(data["projections"]) == 4


def test_summary_table_lists_stages_and_projections(capsys):
    assert main(["summary", "resnet34"]) == 0
    out = capsys.readouterr().out
    for word in ("layer1", "basic ×3", "layer4", "512x7x7", "21,797,672", "projection", "layer2.0.add"):
        assert word in out, word


@pytest.mark.parametrize(
    "args",
    [
        ["check", "no_such_spec"],
        ["check", "resnet50", "--input", "3x"],
        ["check", "resnet50", "--set", "classes"],
        ["summary"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(args, capsys):
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_parameter_is_a_located_spec_error(capsys):
    assert main(["check", "resnet50", "--set", "clases=10"]) == 1
    err = capsys.readouterr().err
    assert "E0203" in err and "did you mean `classes`" in err


def test_check_and_summary_never_import_torch_graphviz_or_networkx():
    # networkx alone costs more start-up time than checking resnet152 does; Network.graph builds it lazily
    code = (
        "import sys; from resdsl.cli import main; main(['check', 'resnet50']); main(['summary', 'resnet50']);"
        "bad = [m for m in ('torch', 'graphviz', 'torchvision', 'networkx') if m in sys.modules]; print(bad)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_entry_point():
    result = run("list")
    assert result.returncode == 0 and "resnet50" in result.stdout.split()
    result = run("check", "resnet18")
    assert result.returncode == 0 and result.stdout.startswith("ok resnet18")


def test_the_readme_example_checks_to_torchvisions_figures():
    import re
    from pathlib import Path

    import resdsl

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```res\n(.*?)```", readme, re.S).group(1)
    net = resdsl.loads(example)
    assert (net.params, net.macs) == (21_797_672, 3_663_761_408)  # torchvision's resnet34


# ---- one formatter for counts ------------------------------------------------------------------


def test_check_writes_counts_with_the_one_formatter(capsys):
    from resdsl.units import format_count

    assert main(["check", "resnet20", "mlp_resnet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("40,551,040 MACs (40.6 M)") and format_count(40_551_040) == "40.6 M"
    assert out[1].endswith("184,960 MACs (185 k)")


def summary_lines(name: str, width: int, **kwargs) -> list[str]:
    import io

    from rich.console import Console

    import resdsl
    from resdsl.report import print_summary

    console = Console(width=width, record=True, file=io.StringIO())
    print_summary(resdsl.load(name, **kwargs), console)
    return console.export_text().splitlines()


@pytest.mark.parametrize("name", ["resnet50", "resnet1202", "densenet_cifar", "mlp_resnet", "wide_resnet50_2"])
@pytest.mark.parametrize("width", [120, 80, 50])
def test_the_summary_heading_breaks_only_between_phrases(name, width):
    import resdsl
    from resdsl.report import heading

    net = resdsl.load(name)
    phrases = heading(net)
    lines = summary_lines(name, width)
    head = lines[: next(i for i, line in enumerate(lines) if line.startswith("┏"))]
    assert [p for line in head for p in line.rstrip().rstrip(",").split(", ")] == phrases, head
    assert all(len(line.rstrip()) <= width for line in head)
    if width == 120:
        assert len(head) == 1, head  # a 120-column terminal holds the whole line
    assert "GMACs" not in "\n".join(lines)


def test_a_small_network_is_not_zero_gmacs():
    head = summary_lines("mlp_resnet", 120)[0]
    assert head == "mlp_resnet: 64 -> 10, 186,762 params, 184,960 MACs (185 k)"


# ---- compile: everything checked before any work -----------------------------------------------

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def unwritable_dir(tmp_path) -> str:
    if ROOT_USER:  # permissions do not stop root; read-only sysfs does
        return "/sys"
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return str(folder)


@pytest.mark.parametrize("command", ["compile", "draw"])
@pytest.mark.parametrize(
    "where,message",
    [
        ("", "empty"),
        ("{tmp}/missing/out.pt2", "no such directory: {tmp}/missing"),
        ("{tmp}", "is a directory"),
        ("{ro}/out.pt2", "cannot write in {ro}"),
    ],
)
def test_a_bad_destination_fails_before_any_work(tmp_path, capsys, monkeypatch, command, where, message):
    import resdsl.network

    monkeypatch.setattr(resdsl.network.Network, "to_torch", lambda self: pytest.fail("built the model"))
    fill = {"tmp": str(tmp_path), "ro": unwritable_dir(tmp_path) if "{ro}" in where else ""}
    out = where.format(**fill).replace(".pt2", ".pt2" if command == "compile" else ".svg")
    assert main([command, "resnet20", "-o", out]) == 2
    captured = capsys.readouterr()
    assert message.format(**fill) in captured.err and "Traceback" not in captured.err
    assert captured.out == ""  # no summary table: nothing was done


def test_a_missing_weights_file_fails_before_the_table(tmp_path, capsys):
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "m.pt2")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"--weights {tmp_path / 'nope.pt'}: no such file" in captured.err


@pytest.mark.parametrize("content", [b"hello\n", b"resnet50 weights, see README\n" * 50, b"PK\x03\x04junk", b""])
def test_weights_that_are_not_a_checkpoint_are_e0602(tmp_path, capsys, content):
    (tmp_path / "w.pt").write_bytes(content)
    assert main(["compile", "resnet20", "--weights", str(tmp_path / "w.pt"), "-o", str(tmp_path / "m.pt2")]) == 1
    captured = capsys.readouterr()
    assert "error[E0602]" in captured.err and captured.out == ""
    assert not (tmp_path / "m.pt2").exists()


def test_emit_onnx_without_its_packages_fails_before_the_table(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    assert main(["compile", "resnet20", "--emit", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "pip install" in captured.err and "onnxscript" in captured.err


def test_torchscript_prints_no_torch_warnings(tmp_path):
    result = run("compile", "resnet20", "--emit", "torchscript", "-o", str(tmp_path / "m.ts.pt"), timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    assert result.stdout.splitlines()[-1] == f"wrote {tmp_path / 'm.ts.pt'} (torchscript)"


@pytest.mark.parametrize(
    "args",
    [
        ["compile", "resnet20", "-o", ""],
        ["compile", "resnet20", "--weights", ""],
        ["draw", "resnet20", "-o", ""],
        ["train", "resnet20", "--out", ""],
        ["train", "resnet20", "--lr", "nan"],
        ["train", "resnet20", "--lr", "inf"],
        ["train", "resnet20", "--lr", "-0.1"],
        ["train", "resnet20", "--lr", "0"],
        ["train", "resnet20", "--epochs", "0"],
        ["train", "resnet20", "--batch-size", "-1"],
        ["compile", "resnet20", "--max-params", "0"],
        ["compile", "resnet20", "--max-memory", "lots"],
    ],
)
def test_option_values_that_cannot_be_meant_are_usage_errors(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written: not the default name, no run directory


def test_tilde_is_expanded_in_every_path_option(tmp_path, monkeypatch, capsys):
    import torch

    import resdsl

    monkeypatch.setenv("HOME", str(tmp_path))
    torch.save(resdsl.load("resnet20").to_torch().state_dict(), tmp_path / "w.pt")
    # `--opt=~/x` is how a shell leaves `~` alone
    assert main(["compile", "resnet20", "--emit", "state", "--weights=~/w.pt", "--output=~/m.pth"]) == 0
    assert (tmp_path / "m.pth").exists()
    assert main(["draw", "resnet20", "--level", "network", "--output=~/r.dot"]) == 0
    assert (tmp_path / "r.dot").exists()


# ---- a full disk -------------------------------------------------------------------------------


def run_with_file_limit(args, limit: int, cwd, timeout=300):
    """The CLI with every file capped at `limit` bytes: a longer write fails with EFBIG, as on a full
    disk (SIGXFSZ ignored, as a process on a full disk gets no signal either)."""
    import resource
    import signal

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    env = dict(
        os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        preexec_fn=cap,
    )


@pytest.mark.parametrize(
    "args,out,limit",
    [
        (["compile", "resnet20"], "m.pt2", 100_000),
        (["compile", "resnet20", "--emit", "torchscript"], "m.ts.pt", 100_000),
        (["compile", "resnet20", "--emit", "state"], "m.pth", 100_000),
        (["draw", "resnet20", "--level", "op"], "m.svg", 10_000),
    ],
)
def test_a_full_disk_is_one_clear_line_and_the_old_file_stays(tmp_path, args, out, limit):
    (tmp_path / out).write_bytes(b"the previous good file")
    result = run_with_file_limit([*args, "-o", out], limit, tmp_path)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert result.stderr.strip() == f"resdsl: error: cannot write {out}: File too large"
    assert (tmp_path / out).read_bytes() == b"the previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out]  # no temporary file left
