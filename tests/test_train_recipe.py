"""The recipe and the loop: defaults by the data, budgets that stop and resume to the bit, EMA,
accumulation, label smoothing, TensorBoard, streamed data under torchrun, no host reads per step."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import SMALL, cli, env

from resdsl.library import UsageError
from resdsl.testing.images import image_folder
from resdsl.train import TrainConfig, train
from resdsl.train import metrics as metrics_module
from resdsl.train.recipe import RECIPES, choose, lr_factor, parameter_groups, resolve, validate


def test_the_recipe_follows_the_data():
    config = TrainConfig(spec="resnet50")
    assert choose(config, (3, 224, 224), streaming=True).name == "imagenet"
    assert choose(config, (3, 224, 224), streaming=False).name == "cifar"  # digits at 224: not ImageNet
    assert choose(config, (3, 32, 32), streaming=True).name == "cifar"
    assert choose(TrainConfig(spec="x", recipe="imagenet"), (3, 32, 32), False).name == "imagenet"


def test_imagenet_recipe_is_torchvisions_reference_and_scales_the_lr_with_the_batch():
    imagenet = RECIPES["imagenet"]
    one = resolve(TrainConfig(spec="x"), imagenet, world=1)
    assert (one.epochs, one.batch_size, one.lr, one.weight_decay, one.schedule) == (90, 256, 0.1, 1e-4, "step")
    eight = resolve(TrainConfig(spec="x"), imagenet, world=8)  # torchvision: 8 GPUs x 32
    assert (eight.batch_size, eight.lr) == (32, 0.1)
    big = resolve(TrainConfig(spec="x", batch_size=128, accumulate=2), imagenet, world=4)
    assert big.lr == pytest.approx(0.1 * 1024 / 256)
    mine = resolve(TrainConfig(spec="x", lr=0.05, epochs=3, schedule="cosine"), imagenet, world=1)
    assert (mine.lr, mine.epochs, mine.schedule) == (0.05, 3, "cosine")
    cifar = resolve(TrainConfig(spec="x"), RECIPES["cifar"], world=1)
    assert (cifar.epochs, cifar.batch_size, cifar.lr, cifar.warmup_epochs, cifar.schedule) == (
        10,
        128,
        0.1,
        1.0,
        "cosine",
    )


def test_step_schedule_divides_by_ten_every_30_of_90_epochs():
    cfg = resolve(TrainConfig(spec="x"), RECIPES["imagenet"], 1)
    factors = [lr_factor(epoch * 100, 100, cfg, RECIPES["imagenet"].milestones) for epoch in (0, 29, 30, 59, 60, 89)]
    assert factors == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    warm = resolve(TrainConfig(spec="x", warmup_epochs=2, schedule="cosine"), RECIPES["imagenet"], 1)
    assert lr_factor(0, 100, warm, ()) == pytest.approx(1 / 200) and lr_factor(200, 100, warm, ()) == 1.0
    assert lr_factor(90 * 100 - 1, 100, warm, ()) < 1e-3


def test_no_decay_on_norm_and_bias_puts_every_1d_tensor_in_a_group_without_decay():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, bias=True), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )
    model(torch.zeros(1, 3, 5, 5))
    decayed, exempt = parameter_groups(model, 1e-4, True)
    assert [tuple(p.shape) for p in decayed["params"]] == [(4, 3, 3, 3), (2, 36)]
    assert len(exempt["params"]) == 4 and exempt["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-4
    assert len(parameter_groups(model, 1e-4, False)) == 1


@pytest.mark.parametrize(
    "field, value",
    [
        ("label_smoothing", 1.0),
        ("ema", 1.0),
        ("max_time", 0.0),
        ("accumulate", 0),
        ("log", ("wandb",)),
        ("lr", float("nan")),
    ],
)
def test_bad_settings_are_usage_errors(field, value):
    with pytest.raises(UsageError):
        validate(TrainConfig(spec="x", **{field: value}))


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def identical(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # `resdsl train` processes
def test_max_steps_stops_within_an_epoch_and_resume_replays_the_rest_to_the_bit(tmp_path):
    args = [
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--device",
        "cpu",
        "--seed",
        "2",
        "--ema",
        "0.9",
        "--label-smoothing",
        "0.1",
    ]
    whole = cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    steps = math.ceil(math.ceil(1797 * 0.8) / 64)  # 23 per epoch
    stopped = cli(*args, "--out", str(tmp_path / "cut"), "--max-steps", str(steps + 5))
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped by --max-steps after {steps + 5} optimizer steps" in stopped.stdout
    records = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("partial", False) for r in records] == [False, True] and records[1]["steps"] == steps + 5
    resumed = cli(*args, "--out", str(tmp_path / "cut"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"after epoch 1, step {steps + 5 - steps}" in resumed.stdout
    assert identical(weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "cut" / "last.pt"))
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert identical(a["ema"], b["ema"])
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    assert "val_acc_ema" in a["history"][-1] and 0 <= a["history"][-1]["val_top5"] <= 1


@pytest.mark.slow  # three streamed runs with DataLoader workers
def test_streamed_images_resume_to_the_bit_and_log_to_tensorboard(tmp_path):
    image_folder(tmp_path / "pets" / "train", classes=3, per_class=12, sizes=[(50, 70), (70, 50), (40, 90)])
    image_folder(tmp_path / "pets" / "val", classes=3, per_class=3, seed=1)
    args = [
        "train",
        "resnet20",
        *SMALL,
        "--data",
        f"imagefolder:{tmp_path / 'pets'}",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--workers",
        "2",
        "--accumulate",
        "2",
        "--no-decay-norm-bias",
        "--log",
        "tensorboard",
        "--log-every",
        "2",
    ]
    whole = cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    assert "36 train / 9 val, 3 classes" in whole.stdout and "x2 accumulated" in whole.stdout
    records = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in records] == [3, 6]  # 5 batches of 8 (36 images), 2 per optimizer step
    cut = cli(*args, "--out", str(tmp_path / "cut"), "--max-steps", "4")
    assert cut.returncode == 0 and "stopped by --max-steps" in cut.stdout, cut.stderr
    resumed = cli(*args, "--out", str(tmp_path / "cut"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert identical(weights(tmp_path / "whole" / "last.pt"), weights(tmp_path / "cut" / "last.pt"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "whole" / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/acc", "train/lr", "val/val_acc", "val/val_top5"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/val_acc")] == [3, 6]


@pytest.mark.slow  # `resdsl train` processes
def test_max_time_stops_and_says_so(tmp_path):
    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "3",
        "--device",
        "cpu",
        "--max-time",
        "0.001",
        "--log-every",
        "1",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "stopped by --max-time after 1 optimizer steps" in result.stdout
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 1


def test_the_loop_reads_the_device_every_log_every_steps_not_every_step(tmp_path, monkeypatch):
    reads = []
    original = metrics_module.Meter.read
    monkeypatch.setattr(
        metrics_module.Meter, "read", lambda self, reduce=False: reads.append(1) or original(self, reduce)
    )
    monkeypatch.setattr(torch.Tensor, "item", lambda self: pytest.fail(".item() called in the loop"))
    train(
        TrainConfig(
            spec="resnet20",
            data="synthetic",
            epochs=1,
            batch_size=16,
            device="cpu",
            out=str(tmp_path),
            overrides={"depth": 8},
            input_shape=(3, 16, 16),
            log_every=50,
        ),
        log=lambda *a: None,
    )
    # 2,048 synthetic examples: 1,638 train, 103 steps; reads at 50, 100, the epoch's end, the two validations
    assert len(reads) == 5


@pytest.mark.slow  # torchrun: two processes with a worker each
def test_torchrun_two_processes_stream_an_image_folder(tmp_path):
    image_folder(tmp_path / "pets", classes=2, per_class=20, sizes=[(40, 60), (60, 40)])
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "resdsl",
            "train",
            "resnet20",
            *SMALL,
            "--data",
            f"imagefolder:{tmp_path / 'pets'}",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "32 train / 8 val, 2 classes" in result.stdout and "x2" in result.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in records] == [4, 8]  # each rank 16 images in 4 steps of 4
