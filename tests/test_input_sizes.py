"""`summary --input-sizes` (resdsl/input_sizes.py): computed from one elaboration, checked against brute
force (a whole `resdsl.load` at every size of the range)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import resdsl
from resdsl import SpecError
from resdsl.cli import main
from resdsl.input_sizes import describe, input_sizes

PLANTED = str(Path(__file__).resolve().parent / "data" / "planted.res")
CASES = [
    ("resnet50", 1, 80),
    ("resnet20", 1, 40),
    (PLANTED, 1, 64),
    ("densenet_cifar", 1, 40),
    ("res2net50_26w_4s", 1, 70),
    ("skresnet18", 1, 40),
    ("resnetv2_50x1_bit", 1, 40),
]
# a vector network (mlp_resnet) has no spatial size: tests/test_verify_robust.py


def brute_force(spec: str, low: int, high: int) -> dict[int, resdsl.Network]:
    found = {}
    channels = resdsl.load(spec).input_shape
    for h in range(low, high + 1):
        if len(channels) != 3:
            break
        try:
            found[h] = resdsl.load(spec, input_shape=(channels[0], h, h))
        except SpecError:
            pass
    return found


def evaluate(formula: str, h: int) -> int:
    expr = formula.replace("H", str(h))
    expr = re.sub(r"ceil\(([^()]*)\)", lambda m: str(-(-eval(m[1].split("/")[0]) // int(m[1].split("/")[1]))), expr)
    expr = re.sub(r"floor\(\(?([^()]*?)\)?/(\d+)\)", lambda m: str(eval(m[1]) // int(m[2])), expr)
    return eval(expr)


@pytest.mark.parametrize("spec, low, high", CASES)
def test_valid_sizes_and_formulas_equal_brute_force(spec, low, high):
    net = resdsl.load(spec)
    computed = input_sizes(net, low, high)
    truth = brute_force(spec, low, high)
    assert computed.valid == tuple(truth)
    if truth:
        assert computed.smallest == min(truth) or min(truth) == low and computed.smallest <= low
    for part, formula in computed.outputs:
        for h, checked in truth.items():
            shape = next(p.output_shape for p in checked.parts if p.name == part)
            if formula == "a vector":
                assert len(shape) == 1
            else:
                assert evaluate(formula, h) == shape[1], (part, formula, h)


def test_the_planted_regions_are_described():
    net = resdsl.load(PLANTED)
    sizes = input_sizes(net, 1, 64)
    assert sizes.describe_valid() == "H from 8 with H even" and sizes.smallest == 8


def test_descriptions():
    assert describe(tuple(range(1, 11)), 1, 10) == "every H from 1 to 10"
    assert describe(tuple(range(4, 11)), 1, 10) == "every H from 4 (up to 10)"
    assert describe((3, 6, 9), 1, 10) == "H from 3 with H ≡ 0 (mod 3)"
    assert describe((2, 3, 7), 1, 10) == "H in 2..3, 7"
    assert describe((16, 21, 22, 23, 24, 29, 30, 31, 32), 16, 32) == "H from 16 with H mod 8 in {0, 5, 6, 7}"
    assert describe((), 1, 10) == "no H from 1 to 10"


def test_summary_prints_them(capsys):
    assert main(["summary", "resnet50", "--input-sizes", "32..512"]) == 0
    out = capsys.readouterr().out
    assert "input sizes 32..512 (H; W follows the same rule): every H from 32 to 512; the smallest input is 1x1" in out
    assert re.search(r"layer4\s+ceil\(H/32\)", out)
    assert main(["summary", "resnet50", "--input-sizes", "9..3"]) == 2


def test_summary_json_has_them(capsys):
    import json

    assert main(["summary", PLANTED, "--input-sizes", "1..20", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)["input_sizes"]
    assert data["valid_sizes"] == list(range(8, 21, 2)) and data["smallest"] == 8
    assert math.isfinite(data["low"])
