"""Training never loses or silently changes a run: an existing run directory is refused, --resume restores
the run's settings, --max-time stops within a step, default outputs never replace a file, --freeze leaves
the frozen parts bitwise as they were, and no validation data is said, not scored 0.

Every run here is tiny: an 8-layer CIFAR ResNet on 8x8 digits, a few optimizer steps (--max-steps)."""

import json

import pytest
import torch

import resdsl
from resdsl.cli import main
from resdsl.library import UsageError
from resdsl.train import TrainConfig, train

TINY = dict(spec="resnet20", overrides={"depth": 8}, input_shape=(3, 8, 8), device="cpu")
CLI_TINY = ["--set", "depth=8", "--input", "3x8x8", "--device", "cpu"]


def tiny(out, **settings) -> TrainConfig:
    return TrainConfig(**{**TINY, "out": str(out), **settings})


def quiet(*args, **kwargs):
    pass


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# ---- an existing run is never replaced without a word ------------------------------------------------


def test_a_run_directory_that_holds_a_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    train(tiny(run, epochs=1, batch_size=64, max_steps=2), log=quiet)
    before = (run / "last.pt").read_bytes()
    with pytest.raises(
        UsageError,
        match=r"holds a run \(last\.pt, best\.pt, metrics\.jsonl.*: give --resume to "
        r"continue it, or --overwrite to replace it",
    ):
        train(tiny(run, epochs=1, batch_size=64, max_steps=1), log=quiet)
    assert (run / "last.pt").read_bytes() == before
    (run / "notes.txt").write_text("mine")  # not the run's: kept
    lines = []
    train(tiny(run, epochs=1, batch_size=64, max_steps=1, overwrite=True), log=lines.append)
    assert any(line.startswith(f"--overwrite: removed the run in {run}") for line in lines), lines
    assert [r["steps"] for r in records(run)] == [1] and (run / "notes.txt").read_text() == "mine"
    # the command line: the same refusal, one line, exit 2; --resume and --overwrite exclude each other
    assert main(["train", "resnet20", *CLI_TINY, "--epochs", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"resdsl: error: --out {run} holds a run (")
    with pytest.raises(SystemExit):
        from resdsl.cli import build_parser

        build_parser().parse_args(["train", "resnet20", "--resume", "--overwrite"])


# ---- --resume continues the run it resumes, with its settings -----------------------------------------


@pytest.mark.slow  # three `resdsl train` processes
def test_resume_restores_the_runs_settings_and_refuses_a_conflicting_option(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "resnet20", *CLI_TINY, "--out", str(run)]
    assert main([*args, "--epochs", "2", "--batch-size", "64", "--seed", "3", "--lr", "0.05", "--max-steps", "2"]) == 0
    capsys.readouterr()
    # nothing but --resume (and a budget, which belongs to one invocation): the run's settings, not the recipe's
    assert main(["train", "resnet20", "--out", str(run), "--device", "cpu", "--resume", "--max-steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "batch 64" in out and "2 epochs, lr 0.05" in out, out
    saved = torch.load(run / "last.pt", weights_only=True)
    assert {k: saved["config"][k] for k in ("epochs", "batch_size", "seed", "lr", "input_shape")} == {
        "epochs": 2,
        "batch_size": 64,
        "seed": 3,
        "lr": 0.05,
        "input_shape": (3, 8, 8),
    }
    assert saved["overrides"] == {"depth": "8"} and records(run)[-1]["steps"] == 4
    # an option given that conflicts is an error naming both values, even when it is the option's default
    for given, theirs in (
        (["--batch-size", "128"], "--batch-size 64"),
        (["--seed", "0"], "--seed 3"),
        (["--set", "depth=14"], "--set depth=8"),
        (["--lr", "0.1"], "--lr 0.05"),
    ):
        assert main([*args, "--resume", *given]) == 2
        err = capsys.readouterr().err
        assert (
            err.startswith(
                f"resdsl: error: --resume: the run in {run} was trained with {theirs}, not "
                f"{' '.join(given)}; leave {given[0]} out"
            )
            and err.count("\n") == 1
        ), err
    assert torch.load(run / "last.pt", weights_only=True)["scheduler"] == saved["scheduler"]  # nothing trained
    # options that may change: the same values, --workers, --epochs to extend (never below what is done)
    assert main([*args, "--resume", "--batch-size", "64", "--workers", "0", "--epochs", "3", "--max-steps", "5"]) == 0
    assert "the run in" in capsys.readouterr().out
    assert torch.load(run / "last.pt", weights_only=True)["config"]["epochs"] == 3


# ---- --max-time is honoured within a step ---------------------------------------------------------------


def test_max_time_stops_within_one_optimizer_step_without_reading_the_device(tmp_path, monkeypatch):
    lines = []
    # 23 steps an epoch (1,437 digits in batches of 64), below --log-every 50: the old check never ran in it
    train(tiny(tmp_path / "run", epochs=3, batch_size=64, max_time=1e-3), log=lines.append)
    assert "stopped by --max-time after 1 optimizer steps; --resume continues from here" in lines
    assert [r["steps"] for r in records(tmp_path / "run")] == [1]
    # the clock is the host's: no .item() per step
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail(".item() called in the loop"))
    history = train(tiny(tmp_path / "long", epochs=1, batch_size=64, max_time=3600, max_steps=3), log=quiet)
    assert history[-1]["steps"] == 3


# ---- compile and draw: a default output never replaces a file -------------------------------------------


def test_default_outputs_never_replace_an_existing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet20.pth").write_bytes(b"torchvision's checkpoint")
    assert main(["compile", "resnet20", "--emit", "state"]) == 0
    assert (tmp_path / "resnet20.pth").read_bytes() == b"torchvision's checkpoint"  # not the default any more
    assert "wrote resnet20.state.pt (state)" in capsys.readouterr().out
    for args, name in (
        (["compile", "resnet20", "--emit", "state"], "resnet20.state.pt"),
        (["compile", "resnet20", "--emit", "python"], "resnet20.py"),
        (["draw", "resnet20", "--level", "network"], "resnet20-network.svg"),
    ):
        (tmp_path / name).write_bytes(b"someone's file")
        assert main(args) == 2
        err = capsys.readouterr().err
        assert (
            err == f"resdsl: error: {name} exists, and this command did not write it: give --force to replace "
            "it, or -o to write elsewhere\n"
        )
        assert (tmp_path / name).read_bytes() == b"someone's file"
        assert main([*args, "--force"]) == 0 and (tmp_path / name).read_bytes() != b"someone's file"
        (tmp_path / name).write_bytes(b"someone's file")
        assert main([*args, "-o", name]) == 0 and (tmp_path / name).read_bytes() != b"someone's file"  # named


# ---- --freeze: the frozen parts stay as they were, to the bit --------------------------------------------


def test_freeze_keeps_the_frozen_parts_bitwise_with_their_norms_in_eval_mode_and_says_so(tmp_path):
    net = resdsl.load("resnet20", depth=8, input_shape=(3, 8, 8))
    start = net.to_torch().state_dict()
    g = torch.Generator().manual_seed(0)
    for key, tensor in start.items():  # running statistics that a step in train mode would move
        if key.endswith(("running_mean", "running_var")):
            tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
        if key.endswith("num_batches_tracked"):
            tensor.fill_(7)
    torch.save(start, tmp_path / "start.pt")
    lines = []
    train(
        tiny(
            tmp_path / "run",
            epochs=2,
            batch_size=64,
            max_steps=25,
            init_from=str(tmp_path / "start.pt"),
            freeze=("stem", "layer1"),
        ),
        log=lines.append,
    )  # across an epoch's end: model.train() again
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    frozen = [k for k in start if k.startswith(("conv1.", "bn1.", "layer1."))]
    assert any(k.endswith("num_batches_tracked") for k in frozen)
    assert all(torch.equal(after[k], start[k]) for k in frozen), [
        k for k in frozen if not torch.equal(after[k], start[k])
    ]
    assert not torch.equal(after["layer2.0.bn1.running_mean"], start["layer2.0.bn1.running_mean"])
    count = sum(p.params for p in net.parts if p.name in ("stem", "layer1"))
    assert (
        f"--freeze stem layer1: {count:,} parameters frozen; their norms keep their running statistics "
        "(eval mode)" in lines
    ), lines
    # (and --resume may change --epochs, but not to fewer than the run has begun: it stopped in epoch 2)
    with pytest.raises(UsageError, match=r"--epochs 1, but the run in .* is in epoch 2; give at least --epochs 2"):
        train(tiny(tmp_path / "run", resume=True, epochs=1), log=quiet)


# ---- no validation data ----------------------------------------------------------------------------------


def test_no_validation_data_is_said_and_never_scored_or_used_for_best(tmp_path):
    from PIL import Image

    (tmp_path / "one" / "cat").mkdir(parents=True)
    Image.new("RGB", (12, 12), (200, 30, 30)).save(tmp_path / "one" / "cat" / "0.png")  # 1 image: 1 train, 0 val
    lines = []
    history = train(
        tiny(tmp_path / "run", data=f"imagefolder:{tmp_path / 'one'}", epochs=1, batch_size=4, workers=0),
        log=lines.append,
    )
    assert history[-1]["val_acc"] is None and history[-1]["val_loss"] is None
    assert records(tmp_path / "run")[-1]["val_acc"] is None
    assert any(line.startswith("note: there is no validation data") for line in lines), lines
    assert any("| no validation data |" in line for line in lines), lines
    assert (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "best.pt").exists()
