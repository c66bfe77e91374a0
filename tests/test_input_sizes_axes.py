"""`summary --input-sizes` on sequences, volumes and per-axis arguments (resdsl/input_sizes.py,
resdsl/axis_sizes.py): each axis's valid sizes and formulas against brute force (a whole load at every
size of the axis, the other axes at the spec's sizes)."""

from __future__ import annotations

import json
import re

import pytest

import resdsl
from resdsl import SpecError
from resdsl.cli import main
from resdsl.errors import UsageError
from resdsl.input_sizes import InputSizeLimit, input_sizes

PER_AXIS_2D = """
network per_axis {
    input 3x32x32
    conv 8 k3 s=(1, 2) -> relu
    maxpool k=(2, 3) s=(2, 1) p0
    avgpool -> fc 10
}
"""

# a strided conv (ceil) beside a max pool (floor), on a sequence: only some lengths agree
SEQUENCE = """
network seq {
    input 2x40
    conv 8 k3 -> bn -> relu
    branches(2, merge = concat) {
        if branch == 0 { conv 8 k3 s2 } else { maxpool k2 s2 p0 }
    }
    avgpool -> fc 3
}
"""

CASES = [  # (spec, load's options, low, high)
    ("r2plus1d_18", {}, 1, 20),
    ("mc3_18", {}, 1, 20),
    ("monai_resnet18", {"spatial_dims": 1, "size": 64}, 1, 70),
    ("monai_resnet50", {"spatial_dims": 3, "size": 16}, 1, 20),
    (PER_AXIS_2D, {}, 1, 40),
    (SEQUENCE, {}, 1, 48),
    ("resnet50_fpn", {}, 1, 10),  # resizes to another tensor's size (the fit): any size from 1
    ("unet_resnet34", {}, 1, 10),
]
IDS = [
    "r2plus1d_18",
    "mc3_18",
    "monai_resnet18-1d",
    "monai_resnet50-3d",
    "per_axis_2d",
    "sequence",
    "resnet50_fpn",
    "unet_resnet34",
]


def load(spec: str, options: dict, shape=None) -> resdsl.Network:
    if "\n" in spec:
        return resdsl.loads(spec, input_shape=shape, **options)
    return resdsl.load(spec, input_shape=shape, **options)


def evaluate(formula: str, letter: str, size: int) -> int:
    expr = re.sub(rf"\b{letter}\b", str(size), formula)
    expr = re.sub(r"ceil\(([^()]*)/(\d+)\)", lambda m: str(-(-eval(m[1]) // int(m[2]))), expr)
    expr = re.sub(r"floor\(\(?([^()]*?)\)?/(\d+)\)", lambda m: str(eval(m[1]) // int(m[2])), expr)
    return eval(expr)


@pytest.mark.parametrize(("spec", "options", "low", "high"), CASES, ids=IDS)
def test_each_axis_equals_brute_force(spec, options, low, high):
    net = load(spec, options)
    found = input_sizes(net, low, high)
    assert [a.axis for a in found.axes] == {2: ["L"], 3: ["H", "W"], 4: ["D", "H", "W"]}[len(net.input_shape)]
    for axis, answer in enumerate(found.axes, 1):
        truth = {}
        for size in range(low, high + 1):
            shape = net.input_shape[:axis] + (size,) + net.input_shape[axis + 1 :]
            try:
                truth[size] = load(spec, options, shape)
            except SpecError:
                pass
        assert answer.valid == tuple(truth), answer.axis
        if truth:
            assert answer.smallest == min(truth) or min(truth) == low and answer.smallest <= low
        for part, formula in answer.outputs:
            for size, checked in truth.items():
                if part.startswith("output "):  # one of several outputs, by its key
                    shape = next(o.shape for o in checked.outputs if f"output {o.key}" == part)
                else:
                    shape = next(p.output_shape for p in checked.parts if p.name == part)
                if formula == "a vector":
                    assert len(shape) == 1
                else:
                    assert evaluate(formula, answer.axis, size) == shape[axis], (answer.axis, part, formula, size)
    if found.smallest_input is not None:  # separable: each axis's smallest size together is a valid input
        load(spec, options, net.input_shape[:1] + found.smallest_input)
    if found.smallest is not None:  # the smallest size valid on every axis alike
        load(spec, options, net.input_shape[:1] + (found.smallest,) * len(found.axes))
    assert found.valid == tuple(sorted(set.intersection(*(set(a.valid) for a in found.axes))))


def test_a_video_network_is_reported_axis_by_axis(capsys):
    assert main(["summary", "r2plus1d_18", "--input-sizes", "1..128"]) == 0
    out = capsys.readouterr().out
    report = out[out.index("input sizes") :].splitlines()
    assert report == [
        "input sizes 1..128, axis by axis (the other axes at the spec's sizes; an input is valid when each size is):",
        "  D     every D from 1 to 128",
        "  H, W  every H from 1 to 128",
        "  the smallest input is 1x1x1",
        "  part    D          H, W",
        "  stem    D          ceil(H/2)",
        "  layer1  D          ceil(H/2)",
        "  layer2  ceil(D/2)  ceil(H/4)",
        "  layer3  ceil(D/4)  ceil(H/8)",
        "  layer4  ceil(D/8)  ceil(H/16)",
        "  head    a vector   a vector",
    ]


def test_a_sequence_and_a_cube_are_reported_as_one_axis(capsys):
    sequence = ["--set", "spatial_dims=1", "--set", "size=64"]
    assert main(["summary", "monai_resnet18", *sequence, "--input-sizes", "1..100"]) == 0
    out = capsys.readouterr().out
    assert "input sizes 1..100 (L): every L from 1 to 100; the smallest input is 1\n" in out
    assert re.search(r"\n  layer4\s+ceil\(L/16\)\n", out)
    assert main(["summary", "monai_resnet18", "--set", "size=16", "--input-sizes", "1..100"]) == 0
    out = capsys.readouterr().out
    cube = re.search(
        r"\(D; H and W follow the same rule\): every D from (\d+) (?:\(up to 100\)|to 100); "
        r"the smallest input is (\S+)",
        out,
    )
    assert cube and cube[2] == "x".join([cube[1]] * 3), out


def test_json_keeps_the_2d_keys_and_adds_the_axes(capsys):
    assert main(["summary", "r2plus1d_18", "--input-sizes", "1..40", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["input_sizes"]
    assert [a["axis"] for a in data["axes"]] == ["D", "H", "W"]
    assert data["axes"][0]["outputs"]["layer4"] == "ceil(D/8)" and data["axes"][2]["outputs"]["layer4"] == "ceil(W/16)"
    # the 2-D keys: inputs of one size on every axis (a cube), each part's sizes axis by axis
    assert data["valid"] == "every D=H=W from 1 to 40" and data["valid_sizes"] == list(range(1, 41))
    assert data["smallest"] == 1 and data["smallest_input"] == [1, 1, 1]
    assert data["outputs"]["layer4"] == "ceil(D/8) × ceil(H/16) × ceil(W/16)"
    assert main(["summary", "resnet20", "--input-sizes", "8..9", "--json"]) == 0
    square = json.loads(capsys.readouterr().out)["input_sizes"]
    assert square["valid"] == "every H from 8 to 9" and square["outputs"]["layer3"] == "ceil(H/4)"
    assert [a["axis"] for a in square["axes"]] == ["H", "W"] and square["smallest_input"] == [1, 1]


def test_per_axis_strides_on_an_image_split_h_and_w():
    found = input_sizes(resdsl.loads(PER_AXIS_2D), 1, 50)
    assert not found.uniform and found.smallest_input == (2, 5) and found.smallest == 5
    assert dict(found.outputs)["maxpool"] == "floor(H/2) × ceil(W/2) - 2"
    assert found.lines()[:4] == [
        "input sizes 1..50, axis by axis (the other axes at the spec's sizes; an input is valid when each size is):",
        "  H  every H from 2 (up to 50)",
        "  W  every W from 5 (up to 50)",
        "  the smallest input is 2x5",
    ]


def test_refusals_name_the_axis():
    with pytest.raises(UsageError, match="takes a vector input"):
        input_sizes(resdsl.load("mlp_resnet"), 1, 8)
    # a period beyond the analysis on one axis: searched size by size, over a bounded range only
    long_period = "network n {\n input 2x8x8x8\n conv 8 k1 s=(2048, 1, 1)\n avgpool -> fc 3\n}"
    with pytest.raises(InputSizeLimit, match="valid sizes of D only every 2,048 sizes"):
        input_sizes(resdsl.loads(long_period), 1, 10_000)
    found = input_sizes(resdsl.loads(long_period), 1, 100)
    assert found.axes[0].describe_valid() == "every D from 1 to 100" and found.axes[0].outputs[0][1] == "1"
