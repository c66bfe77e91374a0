"""docs/training.md: every `resdsl train` command it shows parses, and every option the parser has is documented."""

import re
import shlex
from pathlib import Path

import pytest

from resdsl.cli import build_parser

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
