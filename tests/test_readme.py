"""Every command and every Python example in README.md runs, and prints what the README says it prints.

The commands are found, not listed: every `$ ...` line of a ```console block, and every ```python
block, in the README as it is now, so that a line added later is tested without touching this file.
docs/performance.md, where the README's speed figures moved, is read the same way; the benchmark
scripts it names are checked to exist and to take the options it gives them (running them takes
minutes each, and their figures depend on the machine).
Each runs in a fresh directory (with HOME pointing at a prepared workspace, so `~/data/...` works).

What cannot run here as written is changed by the explicit tables below, each entry with its reason:
SCALE_DOWN (fewer epochs, smaller inputs: the README's figures come from full runs), DATA (the README's
data folders and checkpoints, generated tiny, never downloaded), BEFORE (a command that continues an
earlier run gets that run first), PYTHON_SUBSTITUTIONS, and SKIPPED (no such machine here). A
substitution that no longer matches any README line fails the test, so the tables cannot go stale.
Where the README shows a command's output, the output must match it line for line.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import re
import shlex
import subprocess
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PERFORMANCE = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
PAGES = (README, PERFORMANCE)  # whose ```console and ```python blocks run
FENCE = re.compile(r"^```([A-Za-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)

# Commands that need what no test machine has: (start of the command, reason).
SKIPPED = [
    (
        "torchrun --standalone --nproc_per_node=8",
        "eight GPUs and ImageNet; tests/test_train.py runs torchrun with two CPU processes instead",
    ),
]
# (pattern, replacement, reason), applied in order to each `resdsl train` command.
SCALE_DOWN = [
    (r"--epochs \d+", "--epochs 1", "one epoch: the README's accuracy comes from the full run"),
    (r"^(train resnet20 --out runs/r20 --resume)$", r"\1 --epochs 2", "one epoch beyond the run BEFORE made, not ten"),
    (
        r"^(train resnet50 (?!.*--input).*)$",
        r"\1 --input 3x32x32 --batch-size 8",
        "resnet50 at 224x224 takes seconds an image on a CPU",
    ),
    (
        r"^(train (?!resnet50 )(?!.*--input).*)$",
        r"\1 --input 3x16x16",
        "CIFAR ResNets at 16x16: a quarter of the work, the same code",
    ),
    (r"^(train (?!.*--epochs).*)$", r"\1 --epochs 1", "one epoch, not the recipe's 90"),
    (r"--workers \d+", "--workers 2", "the test machine's two cores"),
]
# (pattern, replacement, reason): the README's data and checkpoints, replaced by tiny generated ones.
DATA = [
    (r"imagefolder:/data/pets", "imagefolder:{work}/pets", "a generated image folder: 3 classes of 8 images"),
    (r"imagefolder:/data/imagenet", "imagefolder:{work}/pets", "the same generated image folder"),
    (
        r"wds:/data/shards/train-\{000000\.\.001281\}\.tar",
        "wds:{work}/shards/train-{{0000..0002}}.tar",
        "WebDataset shards of the generated image folder",
    ),
    (
        r"cifar10:~/data/cifar10",
        "cifar10:~/data/cifar10",
        "kept as written: HOME is the workspace, which holds a generated CIFAR-10 (200 images) at data/cifar10",
    ),
]
# Commands that continue an earlier run: (command, what to run first in the same directory, reason).
BEFORE = {
    "train resnet20 --out runs/r20 --resume": (
        "train resnet20 --out runs/r20 --epochs 1",
        "--resume continues the run the README's `--out runs/r20` made",
    ),
}
# (pattern, replacement, reason) for the ```python blocks.
PYTHON_SUBSTITUTIONS = [
    (
        r'weights="IMAGENET1K_V2"',
        "weights=None",
        "nothing is downloaded in tests; the random weights have the same names and shapes",
    ),
]


@dataclass(frozen=True)
class Command:
    line: str  # as written after `$ `
    expected: tuple  # the output lines the README shows under it (none: only the exit status is checked)

    @property
    def id(self) -> str:
        return self.line.split("#")[0].strip()


def console_commands() -> list[Command]:
    found = []
    for lang, body in ((m.group(1), m.group(2)) for page in PAGES for m in FENCE.finditer(page)):
        if lang != "console":
            continue
        lines = body.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                output = []
                for after in lines[i + 1 :]:
                    if after.startswith("$ ") or not after.strip():
                        break
                    output.append(after)
                found.append(Command(line[2:], tuple(output)))
    return found


def python_blocks() -> list[str]:
    return [m.group(2) for page in PAGES for m in FENCE.finditer(page) if m.group(1) == "python"]


# The commands no test machine can run are listed in SKIPPED with the reason and left out here (a
# test below checks each still names a README line), so the run shows no skip that could hide a failure.
COMMANDS = [c for c in console_commands() if not any(c.id.startswith(start) for start, _ in SKIPPED)]


def test_the_readme_has_commands_and_examples():
    assert len(COMMANDS) >= 15 and len(python_blocks()) >= 3
    assert any(c.expected for c in COMMANDS)


def test_every_table_entry_still_applies():
    lines = [c.id for c in COMMANDS]
    for start, _ in SKIPPED:
        assert any(c.id.startswith(start) for c in console_commands()), (
            f"SKIPPED: no README command starts with {start!r}"
        )
    for pattern, _, _ in SCALE_DOWN + DATA:
        assert any(re.search(pattern, _args_text(line)) for line in lines), f"no README command matches {pattern!r}"
    for key in BEFORE:
        assert key in {_args_text(line) for line in lines}, f"BEFORE: no README command {key!r}"
    for pattern, _, _ in PYTHON_SUBSTITUTIONS:
        assert any(re.search(pattern, block) for block in python_blocks()), f"no README example has {pattern!r}"


def test_every_benchmark_named_exists_and_takes_the_options_given():
    """`python benchmarks/x.py --opt N` in the README or docs/performance.md: the script is there and its
    argument parser defines `--opt` (read from its source: the scripts import torch, and run for minutes)."""
    named = [
        (m.group(1), m.group(2))
        for page in PAGES
        for m in re.finditer(r"python (benchmarks/[\w.]+\.py)((?:\s+--?[\w-]+(?: [^\s`-][^\s`]*)?)*)", page)
    ]
    assert {script for script, _ in named} >= {"benchmarks/check_speed.py", "benchmarks/backend.py"}, named
    for script, options in named:
        source = (ROOT / script).read_text(encoding="utf-8")
        for option in re.findall(r"--[\w-]+", options):
            assert re.search(rf"add_argument\(\s*(?:\"-\w\",\s*)?\"{option}\"", source), f"{script} has no {option}"


def test_the_main_install_covers_every_command():
    """The first set-up command installs an extra holding every package the README's commands import."""
    setup = next(m.group(2) for m in FENCE.finditer(README) if m.group(1) == "sh")
    extra = re.search(r"pip install -q -e '\.\[(\w+)\]'", setup).group(1)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    names = {re.split(r"[<>=!~ ]", requirement)[0] for requirement in extras[extra]}
    assert {"torch", "torchvision", "scikit-learn", "matplotlib"} <= names, names
    assert "resdsl train" in README and "resdsl compile" in README and "resdsl draw" in setup


def _args_text(line: str) -> str:
    """`resdsl check x  # comment` -> `check x`."""
    words = shlex.split(line, comments=True)
    return " ".join(words[1:] if words and words[0] == "resdsl" else words)


def _scaled(command: Command, work: Path) -> list[str]:
    text = _args_text(command.line)
    for pattern, replacement, _ in DATA:
        text = re.sub(pattern, replacement.format(work=work), text)
    if text.startswith("train "):
        for pattern, replacement, _ in SCALE_DOWN:
            text = re.sub(pattern, replacement, text)
    return shlex.split(text)


# ---- the workspace: what the commands read ----------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    work = tmp_path_factory.mktemp("readme")
    torch.save(torchvision.models.resnet50().state_dict(), work / "resnet50.pth")  # see PYTHON_SUBSTITUTIONS
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((220, 40, 40), (40, 220, 40), (40, 40, 220))):
        folder = work / "pets" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(8):
            pixels = np.clip(np.array(colour) + rng.integers(-30, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    from resdsl.testing.images import shards

    assert shards(work / "pets", work / "shards", per_shard=8).endswith("train-{0000..0002}.tar")
    batches = work / "data" / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, 40)
        with open(batches / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 256, (40, 3072), dtype=np.uint8), "labels": labels.tolist()}, f)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # torchvision checks the md5 of the real CIFAR-10 files; the generated ones pass by this patch alone
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(
        "import torchvision.datasets.cifar as cifar\ncifar.check_integrity = lambda *args, **kwargs: True\n"
        "cifar.CIFAR10._check_integrity = lambda self: True\n"
    )
    return work


def _run(args: list[str], cwd: Path, work: Path) -> subprocess.CompletedProcess:
    site = [str(work / "site")] if any(a.startswith("cifar10:") for a in args) else []
    env = dict(
        os.environ,
        HOME=str(work),
        OMP_NUM_THREADS="2",
        COLUMNS="120",
        PYTHONPATH=os.pathsep.join(site + [str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def _slow(line: str) -> bool:
    """The `resdsl train` commands (each a real, if scaled-down, run) and the exports of a full-size
    ResNet-50 beyond the first (a few seconds each): the fast tier (-m "not slow") leaves them out."""
    args = _args_text(line)
    return args.startswith("train ") or args.startswith("compile resnet50 --")


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=pytest.mark.slow) if _slow(c.line) else c for c in COMMANDS],
    ids=[c.id for c in COMMANDS],
)
def test_readme_command(command, work, tmp_path):
    words = shlex.split(command.line, comments=True)
    assert words[0] == "resdsl", f"a README command this test does not know how to run: {command.line}"
    (tmp_path / "docs" / "images").mkdir(parents=True)  # where the README's drawings go
    (tmp_path / "resnet50.pth").symlink_to(work / "resnet50.pth")
    key = _args_text(command.line)
    if key in BEFORE:
        first = _run(_scaled(Command(BEFORE[key][0], ()), work), tmp_path, work)
        assert first.returncode == 0, first.stderr[-3000:]
    result = _run(_scaled(command, work), tmp_path, work)
    assert result.returncode == 0, f"$ {command.line}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    if command.expected:
        assert result.stdout.splitlines() == list(command.expected)


# ---- the Python examples ------------------------------------------------------------------------


def _checked(block: str) -> tuple[str, list[str]]:
    """The block with `expression  # literal` lines turned into asserts, and the lines `print(...)  # out`
    says it prints."""
    lines, printed = [], []
    for line in block.splitlines():
        code, sep, comment = line.partition("  #")
        stripped, comment = code.strip(), comment.strip()
        if sep and stripped.startswith("print("):
            printed.append(comment)
        elif sep and stripped and _is_expression(stripped) and _is_literal(comment):
            indent = code[: len(code) - len(code.lstrip())]
            line = f"{indent}assert ({stripped}) == {comment}, ({stripped})"
        lines.append(line)
    return "\n".join(lines), printed


def _is_expression(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True


def _is_literal(text: str) -> bool:
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return True


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example(index, tmp_path, monkeypatch):
    block = python_blocks()[index]
    for pattern, replacement, _ in PYTHON_SUBSTITUTIONS:
        block = re.sub(pattern, replacement, block)
    code, printed = _checked(block)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code, f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
    assert out.getvalue().splitlines() == printed


def test_the_python_example_figures_are_torchvisions():
    """The README's `(params, macs, output_shape)` for resnet50 with classes=10, against torchvision."""
    import torchvision

    import resdsl

    block = next(b for b in python_blocks() if "classes=10" in b)
    figures = ast.literal_eval(re.search(r"net\.output_shape\s+#\s*(\(.*\))", block).group(1))
    model = torchvision.models.resnet50(num_classes=10)
    assert figures[0] == sum(p.numel() for p in model.parameters()) == 23_528_522
    net = resdsl.load("resnet50", classes=10)
    assert figures == (net.params, net.macs, net.output_shape) == (23_528_522, 4_087_156_736, (10,))
