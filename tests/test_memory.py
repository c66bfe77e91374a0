"""E0506: a spec whose tensors cannot fit is refused by compile and train before anything is allocated."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import resdsl
from resdsl.analysis import memory_estimate
from resdsl.memory import parse_size, physical_memory

ROOT = Path(__file__).resolve().parent.parent
HUGE = ["--input", "3x100000x100000"]  # checks (a valid shape), 240 GB for the input tensor alone at batch 2


def cli(*args, cwd, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_the_estimate_is_in_the_range_pytorch_needs():
    net = resdsl.load("resnet50")
    inference = memory_estimate(net.ops, net.params, 2, training=False)
    assert inference.weights == 4 * 25_557_032
    assert 10e6 < inference.activations < 50e6  # two 64x112x112 maps and their neighbours, batch 2
    training = memory_estimate(net.ops, net.params, 128, training=True)
    assert training.weights == 3 * 4 * 25_557_032  # weights, gradients, momentum
    assert 10e9 < training.activations < 40e9  # resnet50 at batch 128 in fp32 needs about 20 GB on a GPU
    double = memory_estimate(net.ops, net.params, 256, training=True)
    assert double.activations == 2 * training.activations
    assert training.largest == "conv1" and training.largest_shape == (64, 112, 112)


def test_inference_frees_what_no_later_op_reads():
    deep = resdsl.load("resnet110")
    shallow = resdsl.load("resnet20")
    peak = lambda net: memory_estimate(net.ops, 0, 1, training=False).activations  # noqa: E731
    assert peak(deep) == peak(shallow)  # the same widths: depth adds no live tensors
    assert (
        memory_estimate(deep.ops, 0, 1, training=True).activations
        > 5 * memory_estimate(shallow.ops, 0, 1, training=True).activations
    )


@pytest.mark.parametrize(
    ("spec", "options", "largest"),
    [
        ("r3d_18", {}, (64, 16, 56, 56)),
        ("monai_resnet18", {"spatial_dims": 1, "size": 256}, (64, 256)),  # MONAI's first conv: stride 1
        ("monai_resnet18", {"spatial_dims": 3, "size": 32}, (64, 32, 32, 32)),
    ],
)
def test_the_estimate_counts_every_spatial_axis(spec, options, largest):
    # a sequence's C×L and a volume's C×D×H×W: every tensor's elements are the product of all its sizes
    net = resdsl.load(spec, **options)
    training = memory_estimate(net.ops, net.params, 2, training=True)
    assert training.activations == 2 * 4 * sum(math.prod(d.shape) for d in net.ops.nodes.values())
    assert training.largest_shape == largest and training.weights == 3 * 4 * net.params
    inference = memory_estimate(net.ops, net.params, 2, training=False)
    assert 2 * 4 * 2 * math.prod(largest) <= inference.activations < training.activations  # it and its input


def test_a_volume_too_large_is_refused_with_its_shape(tmp_path, capsys):
    from resdsl.cli import main

    clip = ["--input", "3x64x1024x1024", "--max-memory", "1G"]
    assert main(["compile", "r3d_18", *clip, "-o", str(tmp_path / "m.pt2")]) == 1
    err = capsys.readouterr().err
    assert "error[E0506]: `r3d_18` needs about 25.9 GB for input 3x64x1024x1024" in err
    assert "(the largest, `stem.0`, is 64x64x512x512 per example)" in err and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "text,size",
    [("64G", 64 * 10**9), ("1.5T", 1.5e12), ("512MB", 512 * 10**6), ("8GiB", 8e9), ("1e9", 10**9), ("100k", 10**5)],
)
def test_sizes(text, size):
    assert parse_size(text) == int(size)


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "1X", "nan"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_physical_memory_is_known_here():
    assert physical_memory() > 2**30


@pytest.mark.parametrize(
    "command",
    [
        ["compile", "resnet20", "-o", "m.pt2"],
        pytest.param(["train", "resnet20", "--out", "run"], marks=pytest.mark.slow),
    ],
)
def test_a_spec_too_large_for_memory_is_refused_before_allocating(tmp_path, command):
    started = time.perf_counter()
    result = cli(*command, *HUGE, cwd=tmp_path)
    assert time.perf_counter() - started < 60
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert re.findall(r"^error\[(E\d+)\]", result.stderr, re.M) == ["E0506"], result.stderr
    assert "for input 3x100000x100000, more than the " in result.stderr and "of memory of this machine" in result.stderr
    # a bundled spec is shown by name (`cifar_resnet.res:12:5`), not by a path of this machine
    assert (
        re.search(r"(?<![/\w])cifar_resnet\.res:\d+", result.stderr) and "input in_chans x image_size" in result.stderr
    )
    assert ("training at batch 128" if command[0] == "train" else "inference at batch 2") in result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == []  # no table, no file, no run directory


def test_max_memory_sets_the_limit(tmp_path, capsys):
    from resdsl.cli import main

    assert main(["compile", "resnet20", "--max-memory", "1M", "-o", str(tmp_path / "m.pt2")]) == 1
    assert "more than --max-memory 1.00 MB" in capsys.readouterr().err
    assert main(["train", "resnet20", "--max-memory", "10M", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "error[E0506]" in err and "training at batch 128" in err and "the data (digits)" in err
    assert not (tmp_path / "run").exists()


def test_the_documented_e0506_example_renders_exactly(tmp_path):
    doc = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    section = doc[doc.index("## E0506") : doc.index("## E0601")]
    (tmp_path / "example.res").write_text(re.search(r"```res\n(.*?)```", section, re.S).group(1))
    command = re.search(r"```console\n\$ resdsl (.*?)\n```", section, re.S).group(1).split()
    text = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    result = cli(*command, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr == text
