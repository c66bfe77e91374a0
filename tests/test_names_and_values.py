"""A spec that checks must compile: names, values and the Python API (issue 8, sections 2 and 5).

- every name that would clash in the compiled module is refused by `check` (E0210), located, and every
  other name compiles and runs;
- NaN and infinities never pass a range check;
- `resdsl.load/loads` validate `input_shape` and parameter values as the command line does.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.fx as fx
import torch.nn as nn

import resdsl
from resdsl.backend.module import Part
from resdsl.cli import main
from resdsl.reserved import PYTHON_NAMES, TORCH_ATTRIBUTES, reserved_reason

CLASHING = [
    "forward",
    "train",
    "eval",
    "to",
    "cuda",
    "type",
    "float",
    "half",
    "apply",
    "parameters",
    "modules",
    "children",
    "state_dict",
    "zero_grad",
    "training",
    "graph",
    "meta",
    "code",
    "self",
    "None",
    "class",
    "lambda",
    "def",
    "import",
    "_modules",
    "__init__",
]


def errors(text: str) -> list[resdsl.Diagnostic]:
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads(text, path="n.res")
    return info.value.diagnostics


def test_the_reserved_list_covers_torch_and_resdsl_containers():
    """Written out so that `check` need not import torch; this keeps it in step with torch."""
    public = lambda names: {n for n in names if not n.startswith("_")}  # noqa: E731
    attributes = public(dir(nn.Module)) | public(dir(fx.GraphModule)) | public(vars(Part("x")))
    attributes |= public(dir(Part)) | public(vars(fx.GraphModule(nn.Module(), fx.Graph())))
    assert attributes <= TORCH_ATTRIBUTES | PYTHON_NAMES, sorted(attributes - TORCH_ATTRIBUTES)


@pytest.mark.parametrize("name", CLASHING)
@pytest.mark.parametrize("where", ["label", "group", "stage", "block"])
def test_a_clashing_name_is_refused_where_it_is_written(name, where):
    if where == "label":
        body, line, column = f" conv 8 k3 -> {name}: bn\n", 3, 15
    elif where == "group":
        body, line, column = f" {name} {{ conv 8 k3 }}\n", 3, 2
    elif where == "stage":
        body, line, column = f" {name}: unit(8) x2\n", 3, 2
    else:
        body, line, column = f" unit(8)\n {name}(8)\n", 4, 2
    block = (
        f"block unit(w) {{ conv w k3 }}\nblock {name}(w) {{ conv w k3 }}\n"
        if where == "block"
        else "block unit(w) { conv w k3 }\n"
    )
    offset = block.count("\n")
    diagnostics = errors(block + "network n {\n input 3x8x8\n" + body + "}\n")
    assert [d.code for d in diagnostics] == ["E0210"], [d.message for d in diagnostics]
    assert (diagnostics[0].line, diagnostics[0].column) == (line + offset, column)
    assert reserved_reason(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "torch",
        "xs",
        "inputs",
        "getattr",
        "operator",
        "add",
        "iadd",
        "flatten",
        "nn",
        "F",
        "layer",
        "stem_conv",
        "head_fc",
        "downsample",
        "identity",
        "fc",
        "se",
        "cat",
    ],
)
def test_every_other_name_compiles_and_runs(name, tmp_path):
    text = (
        f"block unit(w) {{\n residual {{ conv w k3 -> {name}: bn }}\n}}\n"
        f"network n {{\n input 3x8x8\n conv 8 k3\n {name}2: unit(8) x2\n g_{name} {{ unit(8) }}\n"
        f" avgpool -> {name}3: fc 4\n}}\n"
    )
    net = resdsl.loads(text, path="n.res")
    model = net.to_torch().eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    assert f"{name}3.weight" in model.state_dict()
    spec = tmp_path / "n.res"
    spec.write_text(text)
    assert main(["compile", str(spec), "--emit", "python", "-o", str(tmp_path / "n.py")]) == 0
    compile((tmp_path / "n.py").read_text(), "n.py", "exec")


@pytest.mark.parametrize(
    "op",
    [
        "dropout p=(1e308*10-1e308*10)",
        "bn eps=0",
        "bn eps=1e308*10",
        "bn momentum=(1e308*10-1e308*10)",
        "bn eps=-1e-5",
        "dropout p=1.5",
    ],
)
def test_values_torch_refuses_are_refused_statically(op):
    diagnostics = errors(f"network n {{\n input 3x8x8\n conv 4 k3 -> {op}\n}}\n")
    assert [d.code for d in diagnostics] == ["E0303"] and diagnostics[0].line == 3


def test_nan_from_python_is_refused():
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.loads("network n(p = 0.5) {\n input 3x8x8\n dropout p\n}\n", p=float("nan"))
    assert [d.code for d in info.value.diagnostics] == ["E0302"]


@pytest.mark.parametrize(
    "shape",
    [
        (),
        (3, 8, 8, 8, 8),
        (0, 8, 8),
        (3.0, 8, 8),
        (3, float("nan"), 8),
        (3, 2**70, 2**70),
        (True, 8, 8),
        "3x32x32",
        None.__class__,
    ],
)
def test_input_shape_from_python_is_validated(shape):
    with pytest.raises(ValueError, match="input_shape"):
        resdsl.load("resnet20", input_shape=shape)


@pytest.mark.parametrize("value", [None, {}, b"10", object(), float("inf")])
def test_parameter_values_from_python_are_validated(value):
    with pytest.raises(resdsl.SpecError) as info:
        resdsl.load("resnet20", classes=value)
    (diag,) = info.value.diagnostics
    assert diag.code == "E0302" and "classes" in diag.message


def test_numpy_like_integers_are_accepted():
    class Index(int):
        pass

    assert resdsl.load("resnet20", classes=Index(10), input_shape=[3, Index(32), 32]).output_shape == (10,)


def test_summary_json_gives_json_values(capsys):
    assert main(["summary", "resnet50", "--json"]) == 0
    parameters = json.loads(capsys.readouterr().out)["parameters"]
    assert parameters["depth"] == 50 and parameters["layers"] == [3, 4, 6, 3]
    assert parameters["deep_stem"] is False and parameters["unit"] == "bottleneck" and parameters["policy"] == "B"


def test_an_alias_with_an_unknown_parameter_closes_its_bracket(capsys):
    assert main(["check", "resnet18", "--set", "nosuch=1"]) == 1
    assert "network `resnet18` (an alias of `resnet`) has no parameter `nosuch`" in capsys.readouterr().err


def test_hints_for_a_missing_use_and_a_shape_written_as_a_kernel():
    (diag,) = errors("network n {\n input 3x8x8\n layer1: bottleneck(16) x2\n}\n")
    assert diag.code == "E0202" and diag.help == (
        '`bottleneck` is defined in the bundled blocks.res: add `use "blocks.res"` at the top of this file'
    )
    (diag,) = errors("network n {\n input 3x8x8\n conv 16 3x3\n}\n")
    assert diag.code == "E0103" and "`k3`" in diag.help


def test_parts_come_from_the_spec_sections_not_the_walking_order():
    assert [p.name for p in resdsl.load("densenet_cifar").parts] == [
        "stem",
        "block1",
        "trans1",
        "block2",
        "trans2",
        "block3",
        "head",
    ]
    assert [p.name for p in resdsl.load("resnet50").parts] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    loose = resdsl.loads(
        'use "blocks.res"\nnetwork n {\n input 3x8x8\n conv 8 k3\n layer1: basic(8) x1\n avgpool -> fc 2\n}\n',
        path="n.res",
    )
    assert [p.name for p in loose.parts] == ["conv1", "layer1", "avgpool", "fc"]


def test_list_shows_networks_only(capsys):
    assert main(["list"]) == 0
    names = capsys.readouterr().out.split()
    assert "blocks" not in names and {"resnet50", "resnet20", "cifar_resnet", "densenet_cifar"} <= set(names)


def test_an_input_size_over_the_limit_on_the_command_line_is_a_usage_error(capsys):
    """10 digits passed the --input pattern, then load() raised a ValueError traceback."""
    assert main(["check", "resnet20", "--input", "3x9999999999x32"]) == 2
    err = capsys.readouterr().err
    assert "between 1 and 2,147,483,647" in err and "Traceback" not in err


def test_summary_names_the_block_of_a_part_that_is_one_block_call(capsys):
    assert main(["summary", "densenet_cifar"]) == 0
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in capsys.readouterr().out.splitlines()
        if line.count("│") > 3
    }
    assert rows["trans1"] == "transition" and rows["block1"] == "dense_layer ×16" and rows["head"] == ""
