"""resdsl train: it learns, it resumes to the bit, it runs under torchrun, it refuses bad input cleanly."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resdsl.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
SMALL = ["--set", "depth=8", "--input", "3x16x16"]  # a 6n+2 = 8-layer CIFAR ResNet on 16x16: seconds an epoch


def env():
    # one thread count for every run, so that runs compare bit for bit
    return dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def cli(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "resdsl", *args], capture_output=True, text=True, env=env(),
                          timeout=timeout, **kwargs)


def test_resnet20_learns_the_digits_in_four_epochs(tmp_path):
    history = train(TrainConfig(spec="resnet20", data="digits", epochs=4, batch_size=64, device="cpu",
                                out=str(tmp_path)), log=lambda *a: None)
    assert history[-1]["val_acc"] >= 0.95, history
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        assert key in lines[0]
    assert all(0 <= r["val_acc"] <= 1 for r in lines)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(checkpoint) >= {"model", "optimizer", "scheduler", "epoch", "rng"}
    assert checkpoint["epoch"] == 4 and "layer1.0.conv1.weight" in checkpoint["model"]
    assert (tmp_path / "best.pt").exists()


def test_killed_run_resumes_to_identical_weights(tmp_path):
    args = ["train", "resnet20", *SMALL, "--epochs", "3", "--batch-size", "64", "--device", "cpu", "--seed", "3"]
    whole = cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "resdsl", *args, "--out", str(run)], env=env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (run / "last.pt").exists() and time.time() < deadline:  # epoch 1 is done
        time.sleep(0.05)
    time.sleep(random.Random(7).uniform(0.0, 2.0))  # somewhere in epoch 2 (or while writing its checkpoint)
    process.send_signal(signal.SIGKILL)
    process.wait()
    torch.load(run / "last.pt", weights_only=True)  # whole, whenever the kill came
    resumed = cli(*args, "--out", str(run), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert not list(run.glob(".*.tmp"))  # a temporary file left by the kill is cleaned up
    a = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model"]
    b = torch.load(run / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_torchrun_two_processes_with_gloo_learns(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "resdsl", "train",
                             "resnet20", *SMALL, "--epochs", "3", "--batch-size", "32", "--device", "cpu",
                             "--out", str(tmp_path)], capture_output=True, text=True, env=env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[-1]["val_acc"] > 0.6  # ten classes: chance is 0.1
    assert result.stdout.count("epoch 3/3") == 1  # only rank 0 logs


def test_imagefolder_classes_override_the_spec_and_init_from_transfers(tmp_path):
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("val", 4)):
        for c, colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 0, 255))):
            folder = tmp_path / "images" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                noise = (torch.rand(3, generator=g) * 60).int().tolist()
                pixel = tuple(max(0, min(255, v - noise[j])) for j, v in enumerate(colour))
                Image.new("RGB", (20, 20), pixel).save(folder / f"{i}.png")
    source = cli("train", "resnet20", *SMALL, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "digits"))
    assert source.returncode == 0, source.stderr
    result = cli("train", "resnet20", *SMALL, "--data", f"imagefolder:{tmp_path / 'images'}", "--epochs", "2",
                 "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path / "run"),
                 "--init-from", str(tmp_path / "digits" / "last.pt"), "--freeze", "layer1")
    assert result.returncode == 0, result.stderr
    assert "3 classes; setting classes=3" in result.stdout
    assert "re-initialised fc" in result.stdout
    before = torch.load(tmp_path / "digits" / "last.pt", weights_only=True)["model"]
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert torch.equal(before["layer1.0.conv1.weight"], after["layer1.0.conv1.weight"])  # frozen
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert after["fc.weight"].shape == (3, 64)


@pytest.mark.parametrize("args,message", [
    (["--data", "cifar10:/no/such/dir"], "is not a directory"),
    (["--data", "cifar10:{empty}"], "not the CIFAR-10 python batches"),
    (["--data", "imagefolder:{empty}"], "imagefolder"),
    (["--resume"], "no "),
    (["--device", "tpu"], "unknown --device"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
])
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.replace("{empty}", str(tmp_path / "empty")) for a in args]
    result = cli("train", "resnet20", *SMALL, "--epochs", "1", "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_resuming_a_checkpoint_of_another_spec_is_refused(tmp_path):
    first = cli("train", "resnet20", *SMALL, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    other = cli("train", "resnet20", "--set", "depth=14", "--input", "3x16x16", "--epochs", "2", "--device", "cpu",
                "--out", str(tmp_path), "--resume")
    assert other.returncode == 1 and "error[E0601]" in other.stderr and "Traceback" not in other.stderr


def test_synthetic_data_and_python_dash_m(tmp_path):
    result = cli("train", "mlp_resnet", "--data", "synthetic", "--epochs", "1", "--device", "cpu",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout
