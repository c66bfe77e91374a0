"""docs/training.md: every `resdsl train` command it shows parses, and every option the parser has is documented;
the examples of "Sequences, volumes and clips" run: its ```res blocks are saved under their `# file:` names, its
```python blocks run, then its ```console commands train, and its ```text error is the one printed."""

import re
import shlex
from pathlib import Path

import pytest

from resdsl.cli import build_parser, main

DOC = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()


def commands():
    for block in re.findall(r"```console\n(.*?)```", DOC, re.S):
        for line in block.splitlines():
            words = shlex.split(line.lstrip("$ ").split("  #")[0])
            if "train" in words:
                yield words[words.index("train") :]


@pytest.mark.parametrize("argv", list(commands()), ids=lambda argv: " ".join(argv[:4]))
def test_every_command_shown_parses(argv):
    args = build_parser().parse_args(argv)
    assert args.command == "train"


def test_the_doc_shows_commands():
    assert len(list(commands())) >= 6


def test_every_train_option_is_documented():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    options = {o for action in train._actions for o in action.option_strings if o.startswith("--")}
    shared = {
        "--help",
        "--set",
        "--input",
        "--network",
        "--max-memory",
        "--device",
        "--amp",
        "--channels-last",
        "--seed",
        "--out",
        "--strict",
    }
    missing = sorted(o for o in options - shared if o not in DOC)
    assert not missing, f"docs/training.md does not mention {missing}"


def test_the_recipe_table_gives_the_batch_the_code_uses():
    """The `batch` row: each recipe's batch is the total of an optimizer step, split over the processes and
    the micro-batches (not, as the doc once said for cifar, per process)."""
    from resdsl.train import TrainConfig
    from resdsl.train.recipe import RECIPES, resolve

    row = next(line for line in DOC.splitlines() if line.startswith("| batch |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
    for name, cell in zip(("imagenet", "cifar"), cells):
        total = RECIPES[name].batch_size
        assert cell == f"{total} in all (per process: {total} / processes / `--accumulate`)", cell
        for world, accumulate in ((1, 1), (2, 1), (4, 2)):
            cfg = resolve(TrainConfig(spec="x", accumulate=accumulate), RECIPES[name], world)
            assert cfg.batch_size * world * accumulate == total


def test_the_freeze_line_shown_counts_the_parts_summary_lists():
    import resdsl

    line = next(line for line in DOC.splitlines() if line.startswith("--freeze stem layer1: "))
    parts = {p.name: p.params for p in resdsl.load("resnet20").parts}
    assert line.startswith(f"--freeze stem layer1: {parts['stem'] + parts['layer1']:,} parameters frozen")


SECTION = DOC.split("\n## Sequences, volumes and clips\n", 1)[1].split("\n## ", 1)[0]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", SECTION, re.S | re.M)


def test_the_sequences_and_volumes_section_has_its_examples():
    assert [len(blocks(lang)) for lang in ("res", "python", "console", "text")] == [2, 1, 1, 1]
    commands = [line for line in blocks("console")[0].splitlines() if line.startswith("$ resdsl train ")]
    assert (
        len(commands) == 4 and sum("npy:" in c for c in commands) == 2 and sum("synthetic" in c for c in commands) == 2
    )


@pytest.mark.slow  # four training runs, of a 1-d and a 3-d ResNet
def test_the_sequences_and_volumes_examples_run(tmp_path, monkeypatch, capsys):
    import numpy as np

    monkeypatch.chdir(tmp_path)
    for block in blocks("res"):
        name = re.match(r"# file: (\S+)\n", block)
        assert name, "a ```res example starts with `# file: NAME.res`"
        (tmp_path / name.group(1)).write_text(block)
    for block in blocks("python"):
        exec(compile(block, "docs/training.md", "exec"), {"__name__": "__docs__"})
    for line in blocks("console")[0].splitlines():
        argv = shlex.split(line.removeprefix("$ resdsl ").split("  #")[0])
        assert main(argv) == 0, capsys.readouterr().err
        out = argv[argv.index("--out") + 1] if "--out" in argv else f"runs/{Path(argv[1]).stem}"
        assert (tmp_path / out / "last.pt").exists() and (tmp_path / out / "metrics.jsonl").exists()
        shown = capsys.readouterr().out
        if "npy:" in line:  # 120 ECGs or 80 scans, split 80/20; the classes from the folders
            assert "arrays standardised by mean" in shown, shown
            assert ": 96 train / 24 val, 2 classes" in shown or ": 64 train / 16 val, 2 classes" in shown, shown
    # the error shown: the first ECG stored time first
    first = tmp_path / "ecg" / "normal" / "0000.npy"
    np.save(first, np.load(first).T)
    assert main(["train", "ecg.res", "--data", "npy:ecg", "--out", "runs/transposed"]) == 1
    assert capsys.readouterr().err.strip() == blocks("text")[0].strip()
