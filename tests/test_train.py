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


def env(**extra):
    # one thread count for every run, so that runs compare bit for bit
    return {
        **os.environ,
        "OMP_NUM_THREADS": "2",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        **extra,
    }


def cli(*args, timeout=600, extra_env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "resdsl", *args],
        capture_output=True,
        text=True,
        env=env(**(extra_env or {})),
        timeout=timeout,
        **kwargs,
    )


@pytest.mark.slow  # four real epochs of resnet20
def test_resnet20_learns_the_digits_in_four_epochs(tmp_path):
    history = train(
        TrainConfig(spec="resnet20", data="digits", epochs=4, batch_size=64, device="cpu", out=str(tmp_path)),
        log=lambda *a: None,
    )
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


@pytest.mark.slow  # two runs of three epochs, one killed and resumed
def test_killed_run_resumes_to_identical_weights(tmp_path):
    args = ["train", "resnet20", *SMALL, "--epochs", "3", "--batch-size", "64", "--device", "cpu", "--seed", "3"]
    whole = cli(*args, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    run = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "resdsl", *args, "--out", str(run)],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


@pytest.mark.slow  # torchrun: two processes, three epochs
def test_torchrun_two_processes_with_gloo_learns(tmp_path):
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
            "--epochs",
            "3",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[-1]["val_acc"] > 0.6  # ten classes: chance is 0.1
    assert result.stdout.count("epoch 3/3") == 1  # only rank 0 logs


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_imagefolder_classes_override_the_spec_and_init_from_transfers(tmp_path):
    # `~` in every path option, as the README writes them: the shell leaves `imagefolder:~/...` alone
    home = {"HOME": str(tmp_path)}
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
    source = cli("train", "resnet20", *SMALL, "--epochs", "1", "--device", "cpu", "--out=~/digits", extra_env=home)
    assert source.returncode == 0, source.stderr
    # --strict: the classifier is the one difference, and the data's three classes explain it
    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--data",
        "imagefolder:~/images",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--out=~/run",
        "--init-from=~/digits/last.pt",
        "--strict",
        "--freeze",
        "layer1",
        extra_env=home,
    )
    assert result.returncode == 0, result.stderr
    assert "3 classes; setting classes=3" in result.stdout
    assert "re-initialised fc" in result.stdout and "warning" not in result.stderr
    before = torch.load(tmp_path / "digits" / "last.pt", weights_only=True)["model"]
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert torch.equal(before["layer1.0.conv1.weight"], after["layer1.0.conv1.weight"])  # frozen
    assert not torch.equal(before["layer2.0.conv1.weight"], after["layer2.0.conv1.weight"])
    assert after["fc.weight"].shape == (3, 64)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--data", "cifar10:/no/such/dir"], "--data cifar10:/no/such/dir: /no/such/dir is not a directory"),
        # the fast tier runs the first; each is a `resdsl train` process
        *(
            pytest.param(*case, marks=pytest.mark.slow)
            for case in [
                (["--data", "cifar10:~/no-such-dir"], "{tmp}/no-such-dir is not a directory"),  # `~` is expanded
                (["--data", "cifar10:{tmp}/empty"], "not the CIFAR-10 python batches"),
                (["--data", "imagefolder:{tmp}/empty"], "imagefolder"),
                (
                    ["--resume"],
                    "resdsl: error: --resume: there is no {tmp}/run/last.pt to resume from "
                    "(train without --resume first)",
                ),
                (["--device", "tpu"], "unknown --device"),
                (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
            ]
        ),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        *args,
        extra_env={"HOME": str(tmp_path)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_resuming_a_checkpoint_of_another_spec_is_refused(tmp_path):
    first = cli("train", "resnet20", *SMALL, "--epochs", "1", "--device", "cpu", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    other = cli(
        "train",
        "resnet20",
        "--set",
        "depth=14",
        "--input",
        "3x16x16",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
        "--resume",
    )
    # the run's --set is restored on --resume: another one is a conflict, named before any work
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert other.stderr.startswith(
        f"resdsl: error: --resume: the run in {tmp_path} was trained with --set depth=8, not --set depth=14"
    )


def test_synthetic_data_and_python_dash_m(tmp_path):
    result = cli(
        "train", "mlp_resnet", "--data", "synthetic", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout


# ---- checks before any work --------------------------------------------------------------------


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_out_that_is_a_file_or_unwritable_fails_before_training(tmp_path):
    (tmp_path / "afile").write_text("not a run directory")
    unwritable = "/sys" if os.geteuid() == 0 else str(tmp_path / "ro")  # permissions do not stop root
    if unwritable != "/sys":
        (tmp_path / "ro").mkdir(mode=0o555)
    for out, message in (
        (tmp_path / "afile", "is a file, not a run directory"),
        (Path(unwritable) / "run", f"cannot write in {unwritable}"),
    ):
        result = cli("train", "resnet20", *SMALL, "--epochs", "1", "--out", str(out))
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"resdsl: error: --out {out}: " + (
            message if "file" in message else f"{message}: Permission denied"
        )
        assert result.stdout == ""
    assert (tmp_path / "afile").read_text() == "not a run directory"


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_freeze_takes_the_parts_summary_lists(tmp_path):
    import resdsl

    parts = [p.name for p in resdsl.load("resnet20", input_shape=(3, 16, 16), depth=8).parts]
    result = cli("train", "resnet20", *SMALL, "--epochs", "1", "--out", str(tmp_path), "--freeze", "stem", "layer9")
    assert result.returncode == 2 and result.stdout == ""
    assert (
        result.stderr.strip() == f"resdsl: error: --freeze layer9: no such part of resnet20; its parts are "
        f"{', '.join(parts)}"
    )


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_init_from_another_architecture_warns_and_strict_refuses(tmp_path):
    source = cli("train", "resnet20", *SMALL, "--epochs", "1", "--out", str(tmp_path / "r8"))
    assert source.returncode == 0, source.stderr
    deeper = [
        "train",
        "resnet20",
        "--set",
        "depth=14",
        "--input",
        "3x16x16",
        "--epochs",
        "1",
        "--init-from",
        str(tmp_path / "r8" / "last.pt"),
    ]
    loose = cli(*deeper, "--out", str(tmp_path / "r14"))
    assert loose.returncode == 0, loose.stderr
    warning = [line for line in loose.stderr.splitlines() if line.startswith("warning:")]
    assert (
        len(warning) == 1
        and f"--init-from {tmp_path / 'r8' / 'last.pt'} matched only 44 of 80 tensors of "
        "resnet20; not loaded: layer1.1.conv1, layer1.1.bn1"
        in warning[0]
    ), loose.stderr
    strict = cli(*deeper, "--strict", "--out", str(tmp_path / "r14s"))
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    assert "error[E0601]: `layer1.1.conv1.weight` (16x16x3x3) is missing from" in strict.stderr
    assert "epoch 1/1" not in strict.stdout and not (tmp_path / "r14s" / "last.pt").exists()


def blocking(tmp_path: Path, *modules: str) -> dict:
    """An environment in which `import MODULE` fails, as if the package were not installed."""
    site = tmp_path / "blocked"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules))
    return {"PYTHONPATH": os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_without_scikit_learn_digits_is_one_line_at_start_up(tmp_path):
    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        extra_env=blocking(tmp_path, "sklearn"),
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "resdsl: error: --data digits needs scikit-learn, which is not installed: "
        "pip install scikit-learn (or pip install 'resdsl[train]')\n"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_without_matplotlib_training_runs_and_says_so_first(tmp_path):
    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
        extra_env=blocking(tmp_path, "matplotlib"),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "note: matplotlib is not installed; curves.png will not be drawn (pip install matplotlib)"
    assert lines[-1].startswith("epoch 1/1:") and "Traceback" not in result.stderr
    assert (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "curves.png").exists()


@pytest.mark.slow  # a `resdsl train` process (the fast tier keeps test_synthetic_data_and_python_dash_m)
def test_a_full_disk_stops_the_run_with_one_line_and_keeps_the_last_checkpoint(tmp_path):
    import resource

    run = tmp_path / "run"
    first = cli("train", "resnet20", *SMALL, "--epochs", "1", "--out", str(run))
    assert first.returncode == 0, first.stderr
    good = (run / "last.pt").read_bytes()
    assert len(good) > 100_000

    def cap():  # every file at most 100 kB: the next checkpoint fails with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    result = cli(
        "train",
        "resnet20",
        *SMALL,
        "--epochs",
        "2",
        "--out",
        str(run),
        "--resume",
        preexec_fn=cap,
        extra_env={"PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr == f"resdsl: error: cannot write {run / 'last.pt'}: File too large\n"
    assert (run / "last.pt").read_bytes() == good
    assert not list(run.glob(".*.tmp"))
