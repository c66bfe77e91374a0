import json
import subprocess
import sys

import pytest

from resdsl.cli import main


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


@pytest.mark.parametrize("args", [
    ["check", "no_such_spec"],
    ["check", "resnet50", "--input", "3x"],
    ["check", "resnet50", "--set", "classes"],
    ["summary"],
    ["frobnicate"],
])
def test_usage_errors_exit_2(args, capsys):
    assert main(args) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_unknown_parameter_is_a_located_spec_error(capsys):
    assert main(["check", "resnet50", "--set", "clases=10"]) == 1
    err = capsys.readouterr().err
    assert "E0203" in err and "did you mean `classes`" in err


def test_check_and_summary_never_import_torch_graphviz_or_networkx():
    # networkx alone costs more start-up time than checking resnet152 does; Network.graph builds it lazily
    code = ("import sys; from resdsl.cli import main; main(['check', 'resnet50']); main(['summary', 'resnet50']);"
            "bad = [m for m in ('torch', 'graphviz', 'torchvision', 'networkx') if m in sys.modules]; print(bad)")
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
