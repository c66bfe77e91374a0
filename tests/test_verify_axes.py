"""`verify --input-range` on sequences and volumes (resdsl/space.py, resdsl/verify.py): one range is one
size on every spatial axis, per-axis ranges must be one per axis, and failures reproduce."""

from __future__ import annotations

import pytest

from resdsl.cli import main
from resdsl.errors import UsageError
from resdsl.verify import Space, parse_input_range, parse_vary, verify
from resdsl.verify import _reproduce_runtime as reproduce_runtime

SEQUENCE = """
network seq(width = 8) {
    input 2x40
    conv width k3 -> bn -> relu
    branches(2, merge = concat) {
        if branch == 0 { conv width k3 s2 } else { maxpool k2 s2 p0 }
    }
    avgpool -> fc 3
}
"""


@pytest.fixture
def sequence(tmp_path):
    path = tmp_path / "seq.res"
    path.write_text(SEQUENCE)
    return str(path)


def test_one_range_is_one_size_on_every_axis_and_per_axis_ranges_multiply():
    sizes = parse_input_range("4..6:2").values
    assert sizes == ((4, 4), (6, 6))  # before the network is known: a square, as ever
    assert sizes.fitted(1) == ((4,), (6,)) and sizes.fitted(3) == ((4, 4, 4), (6, 6, 6))
    volume = parse_input_range("1..2x8..8x3..4").values
    assert volume == ((1, 8, 3), (1, 8, 4), (2, 8, 3), (2, 8, 4)) and volume.fitted(3) is volume
    assert volume.show() == "1..2x8..8x3..4" and parse_input_range("8..16:4").values.show() == "8..16:4"
    with pytest.raises(UsageError, match="at most 3 ranges"):
        parse_input_range("1..2x1..2x1..2x1..2")


def test_a_sequence_is_verified_and_its_failure_reproduces(sequence, capsys):
    report = verify(sequence, Space((parse_vary("width=8,16"), parse_input_range("30..33"))), workers=1)
    assert report.space == "2 width × 4 input" and report.tried == 8
    assert report.input_sizes == "L from 30 with L even (the smallest input is 2)"
    [failure] = report.failures
    assert failure.config == {"width": "8", "input": "31"}
    assert failure.reproduce == f"resdsl check {sequence} --set width=8 --input 2x31"
    assert main(failure.reproduce.split()[1:]) == 1
    assert "error[E0404]: concat of branches 8x16, 8x15" in capsys.readouterr().err


def test_a_volume_takes_one_size_on_every_axis_or_one_range_per_axis(capsys):
    report = verify("r2plus1d_18", Space((parse_input_range("16..18"),)), workers=1)
    assert report.ok and report.tried == 3
    assert report.input_sizes == "every D=H=W from 16 to 18 (the smallest input is 1x1x1)"
    assert main(["verify", "mc3_18", "--input-range", "4..5x30..32x31..32"]) == 0
    assert "12 configurations of 12 input (every one)" in capsys.readouterr().out


@pytest.mark.parametrize(("spec", "ranges"), [("r3d_18", "16..20x16..20"), ("resnet20", "8..9x8..9x8..9")])
def test_per_axis_ranges_must_fit_the_network(spec, ranges, capsys):
    assert main(["verify", spec, "--input-range", ranges]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"resdsl: error: --input-range: {ranges} gives ") and err.count("\n") == 1
    axes = 3 if spec == "r3d_18" else 2
    assert f"with {axes} spatial axes" in err and f"or {axes} joined by x" in err


def test_runtime_reproduction_gives_every_axis():
    space = Space((parse_input_range("4..5x8..8x8..8"),))
    assert reproduce_runtime("r3d_18", space, {"input": (4, 8, 8)}, None) == (
        "resdsl verify r3d_18 --input-range 4..4x8..8x8..8 --runtime"
    )
    assert reproduce_runtime("r3d_18", space, {"input": (8, 8, 8)}, None).endswith("--input-range 8..8 --runtime")


def test_runtime_checks_a_sequence(sequence):
    report = verify(sequence, Space((parse_input_range("30..32:2"),)), runtime=True, workers=1)
    assert report.ok and report.runtime_checked == 2
