"""`resdsl train` on networks of every input rank: vectors, sequences (C x L), images, volumes (C x D x H x W).

Synthetic data takes the input's shape whatever its rank; `npy:DIR` streams class folders of .npy files
of that shape, and refuses, with the file and the reason, what is not one. Tiny specs, a few steps,
workers=0 but where the workers themselves are tested."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from resdsl.cli import main
from resdsl.errors import RunError
from resdsl.train.arrays import read_array
from resdsl.train.data import load_data, synthetic_count
from resdsl.train.sources import Arrays, Where

ROOT = Path(__file__).resolve().parent.parent

SEQ = """use "blocks.res"
network seq(classes = 3) {
    input 4x64
    conv 8 k7 s2 -> bn -> relu -> maxpool k3 s2
    layer1: basic(8)
    layer2: basic(16) s2
    avgpool -> fc classes
}
"""
VOL = """use "blocks.res"
network vol(classes = 3) {
    input 1x8x8x8
    conv 8 k3 -> bn -> relu
    layer1: basic(8)
    layer2: basic(16) s2
    avgpool -> fc classes
}
"""
SPECS = {"seq": (SEQ, (4, 64)), "vol": (VOL, (1, 8, 8, 8))}
FAST = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--workers", "0"]


def spec(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name}.res"
    path.write_text(SPECS[name][0])
    return str(path)


def npy_folder(root: Path, shape, classes=3, per_class=8, split=False, dtype=np.float32) -> Path:
    """Class c's arrays are noise around 100 + 5c (so that the classes can be learnt, once standardised)."""
    rng = np.random.default_rng(0)
    for part in ("train", "val") if split else ("",):
        for c in range(classes):
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                np.save(folder / f"{i:03d}.npy", (rng.normal(size=shape) * 10 + 100 + 5 * c).astype(dtype))
    return root


def train(tmp_path, capsys, spec_path, data, *extra):
    """`resdsl train` in this process: (exit code, stdout, stderr, metrics per epoch)."""
    out = tmp_path / "run"
    code = main(["train", spec_path, *FAST, "--data", data, "--out", str(out), "--overwrite", *extra])
    captured = capsys.readouterr()
    metrics = out / "metrics.jsonl"
    records = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    return code, captured.out, captured.err, records


def where(**kw):
    base = {"device": torch.device("cpu"), "rank": 0, "world": 1, "seed": 0, "batch_size": 4, "channels_last": False}
    return Where(**{**base, "workers": 0, **kw})


# ---- synthetic data -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(64,), (4, 64), (3, 16, 16), (1, 8, 8, 8)])
def test_synthetic_data_takes_the_input_shape_of_any_rank(shape):
    data = load_data("synthetic", shape, seed=0)
    assert data.train_x.shape == (1638, *shape) and data.val_x.shape == (410, *shape)
    assert not data.augment and data.classes == 10


def test_synthetic_data_of_large_inputs_is_bounded():
    # 2,048 examples up to ImageNet's size; fewer of clips and volumes, but enough for a validation split
    assert synthetic_count((3, 224, 224)) == 2048
    assert synthetic_count((3, 16, 112, 112)) == 512  # r3d_18's clips: 1.2 GB, as 2,048 ImageNet images
    assert synthetic_count((3, 64, 64, 64)) == 392  # monai_resnet18's volumes
    assert synthetic_count((1, 512, 512, 512)) == 20


@pytest.mark.parametrize("name", ["seq", "vol"])
def test_1d_and_3d_networks_train_on_synthetic_data(tmp_path, capsys, name):
    code, out, err, records = train(tmp_path, capsys, spec(tmp_path, name), "synthetic", "--max-steps", "3")
    assert code == 0, err
    assert "setting classes=10" in out and math.isfinite(records[-1]["train_loss"])
    weights = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["model"]
    assert weights["conv1.weight"].dim() == len(SPECS[name][1]) + 1  # Conv1d: 3 dims, Conv3d: 5
    assert weights["fc.weight"].shape[0] == 10


def test_a_volume_network_trains_channels_last_3d(tmp_path, capsys):
    code, _, err, records = train(
        tmp_path, capsys, spec(tmp_path, "vol"), "synthetic", "--max-steps", "2", "--channels-last"
    )
    assert code == 0, err
    assert math.isfinite(records[-1]["train_loss"])


# ---- npy:DIR --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,stored",
    [("seq", (4, 64)), ("vol", (8, 8, 8))],  # a 1-channel volume may be stored without its channel axis
    ids=["sequences", "volumes-without-channel-axis"],
)
def test_1d_and_3d_networks_learn_from_an_npy_folder(tmp_path, capsys, name, stored):
    data = npy_folder(tmp_path / "data", stored, per_class=10)
    code, out, err, records = train(tmp_path, capsys, spec(tmp_path, name), f"npy:{data}", "--epochs", "3")
    assert code == 0, err
    assert f"npy:{data}: arrays standardised by mean 105" in out  # from 24 of the 24 training files
    assert f"on npy:{data}: 24 train / 6 val, 3 classes" in out
    assert all(math.isfinite(r["train_loss"]) for r in records) and len(records) == 3
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "best.pt").exists()


def test_an_image_network_and_a_vector_network_take_npy_folders_too(tmp_path, capsys):
    images = npy_folder(tmp_path / "images", (3, 16, 16), split=True, per_class=4, dtype=np.uint8)
    code, out, err, _ = train(
        tmp_path, capsys, "resnet20", f"npy:{images}", "--set", "depth=8", "--input", "3x16x16", "--max-steps", "2"
    )
    assert code == 0, err
    assert "12 train / 12 val, 3 classes" in out
    vectors = npy_folder(tmp_path / "vectors", (64,), per_class=4, dtype=np.float64)
    code, out, err, _ = train(tmp_path, capsys, "mlp_resnet", f"npy:{vectors}")
    assert code == 1 and err == (  # 9 training vectors in batches of 8: BatchNorm1d cannot take the last one alone
        "resdsl: error: a training batch of 1 sample of 64 gives a BatchNorm one value per channel (9 training "
        "samples in batches of 8): give a --batch-size that leaves more than one sample for the last batch\n"
    )
    code, out, err, _ = train(tmp_path, capsys, "mlp_resnet", f"npy:{vectors}", "--batch-size", "5")
    assert code == 0, err


def test_arrays_stream_the_same_batches_with_workers_and_resume_mid_epoch(tmp_path):
    data = npy_folder(tmp_path / "data", (4, 64), per_class=6)
    plain = Arrays(str(data), (4, 64), where(), "npy")
    assert (plain.train_count, plain.val_count, plain.classes, plain.steps_per_epoch) == (14, 4, 3, 4)
    epoch = list(plain.train_batches(1))
    assert [tuple(x.shape) for x, _ in epoch] == [(4, 4, 64)] * 3 + [(2, 4, 64)]
    x = torch.cat([x for x, _ in epoch])
    assert abs(float(x.mean())) < 0.5 and 0.5 < float(x.std()) < 1.5  # standardised
    with_workers = list(Arrays(str(data), (4, 64), where(workers=1), "npy").train_batches(1))
    resumed = list(plain.train_batches(1, start=2))
    for a, b in zip(epoch, with_workers):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for a, b in zip(epoch[2:], resumed, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(epoch[0][1], list(plain.train_batches(2))[0][1])  # another epoch, another order


def test_a_file_is_read_through_a_memory_map_in_any_order_and_dtype(tmp_path):
    values = np.arange(24, dtype=">i2").reshape(2, 3, 4)  # big-endian int16, Fortran order
    np.save(tmp_path / "f.npy", np.asfortranarray(values))
    array = read_array(str(tmp_path / "f.npy"), (2, 3, 4))
    assert array.dtype == torch.float32 and torch.equal(array, torch.arange(24.0).reshape(2, 3, 4))
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    assert read_array(str(tmp_path / "b.npy"), (1, 2)).tolist() == [[1.0, 0.0]]


def test_a_bad_file_found_while_training_fails_with_its_path_or_is_skipped(tmp_path, capsys):
    data = npy_folder(tmp_path / "data", (4, 64), per_class=6)
    bad = data / "class1" / "004.npy"  # not the class's first file, which is checked at start-up
    nan = np.zeros((4, 64), np.float32)
    nan[2, 7] = np.nan
    np.save(bad, nan)
    seq = spec(tmp_path, "seq")
    code, _, err, _ = train(tmp_path, capsys, seq, f"npy:{data}")
    assert code == 1 and "Traceback" not in err
    assert err == (
        f"resdsl: error: --data npy:{data}: cannot read the array {bad}: the array holds NaN or infinite values "
        "(--on-bad-image skip leaves such arrays out)\n"
    )
    code, _, err, records = train(tmp_path, capsys, seq, f"npy:{data}", "--on-bad-image", "skip")
    assert code == 0 and err.count(f"warning: skipped the unreadable array {bad}") == 1, err
    assert math.isfinite(records[-1]["train_loss"])


def bad_folders(root: Path) -> dict[str, Path]:
    def one(name, array=None, raw=None, allow_pickle=False):
        folder = root / name / "a"
        folder.mkdir(parents=True)
        if raw is not None:
            (folder / "0.npy").write_bytes(raw)
        else:
            np.save(folder / "0.npy", array, allow_pickle=allow_pickle)
        return folder / "0.npy"

    (root / "empty").mkdir(parents=True)
    (root / "no-arrays" / "a").mkdir(parents=True)
    (root / "no-arrays" / "a" / "0.png").write_bytes(b"")
    whole = np.zeros((4, 64), np.float32)
    buffer = root / "whole.npy"
    np.save(buffer, whole)
    return {
        "empty": root / "empty",
        "no-arrays": root / "no-arrays",
        "transposed": one("transposed", whole.T),
        "shorter": one("shorter", np.zeros((4, 32), np.float32)),
        "objects": one("objects", np.array([{}, 1], dtype=object), allow_pickle=True),
        "complex": one("complex", np.zeros((4, 64), np.complex64)),
        "text": one("text", np.full((4, 64), "x")),
        "truncated": one("truncated", raw=buffer.read_bytes()[:300]),
        "not-npy": one("not-npy", raw=b"0,1,2,3\n" * 64),
    }


BAD = {
    "empty": "no class folders in {path}",
    "no-arrays": "no arrays (.npy) in the class folders of {path}",
    "transposed": "cannot use the array {path}: the array is 64x4, the spec's input is 4x64 (C x L, a sequence): "
    "the same sizes in another order; the channel axis comes first",
    "shorter": "cannot use the array {path}: the array is 4x32, the spec's input is 4x64 (C x L, a sequence)",
    "objects": "the array holds Python objects (dtype object): save real or integer numbers",
    "complex": "the array holds complex numbers (dtype complex64): save real or integer numbers",
    "text": "the array holds text (dtype <U1): save real or integer numbers",
    "truncated": "the file is truncated: 300 bytes, of the 1,152 its header promises",
    "not-npy": "cannot use the array {path}: not a NumPy .npy file (the magic string is not correct",
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_folder_that_is_not_arrays_of_the_input_shape_is_refused_at_start_up(tmp_path, capsys, case):
    path = bad_folders(tmp_path / "bad")[case]
    data = tmp_path / "bad" / case
    code, out, err, _ = train(tmp_path, capsys, spec(tmp_path, "seq"), f"npy:{data}")
    assert code == 1 and "Traceback" not in err and "epoch" not in out, err
    assert err.startswith(f"resdsl: error: --data npy:{data}: ")
    assert BAD[case].format(path=path) in err, err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_channel_axis_may_be_left_out_only_for_one_channel(tmp_path):
    data = npy_folder(tmp_path / "data", (64,), per_class=2)
    with pytest.raises(
        RunError,
        match=r"the array is 64, the spec's input is 4x64 \(C x L, a sequence\): without its channel axis, which only ",
    ):
        Arrays(str(data), (4, 64), where(), "npy")
    Arrays(str(data), (1, 64), where(), "npy")  # 1 channel: the file may hold 64 values
    with pytest.raises(RunError, match=r"the array is 64, the spec's input is 1x8x8 .* \(or 8x8, without the"):
        Arrays(str(data), (1, 8, 8), where(), "npy")


@pytest.mark.parametrize(
    "name,args,code,message",
    [
        (
            "seq",
            ["digits"],
            1,
            "--data digits holds 8x8 images; the spec's input is 4x64 (C x L, a sequence): "
            "train it on --data npy:DIR (or synthetic)",
        ),
        (
            "vol",
            ["imagefolder:{tmp}"],
            1,
            "gives images with 1 or 3 channels; the spec's input is 1x8x8x8 "
            "(C x D x H x W, a volume or clip): use --data npy:DIR or synthetic for it",
        ),
        (
            "seq",
            ["synthetic", "--channels-last"],
            2,
            "--channels-last is for images (C x H x W) and "
            "volumes (C x D x H x W); the spec's input is 4x64 (C x L, a sequence)",
        ),
        ("seq", ["npy:"], 2, "--data npy:DIR needs a directory of class folders of .npy files"),
        ("seq", ["npy:{tmp}/nowhere"], 1, "--data npy:{tmp}/nowhere: {tmp}/nowhere is not a directory"),
    ],
    ids=["digits-for-a-sequence", "images-for-a-volume", "channels-last-for-a-sequence", "no-dir", "no-such-dir"],
)
def test_image_data_and_image_options_are_refused_for_sequences_and_volumes(
    tmp_path, capsys, name, args, code, message
):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result, out, err, _ = train(tmp_path, capsys, spec(tmp_path, name), *args)
    assert result == code and "Traceback" not in err and "epoch" not in out, err
    assert message.replace("{tmp}", str(tmp_path)) in err


@pytest.mark.slow  # a `resdsl train` process
def test_resdsl_train_process_on_a_volume_folder(tmp_path):
    data = npy_folder(tmp_path / "data", (1, 8, 8, 8), per_class=4)
    result = subprocess.run(
        [sys.executable, "-m", "resdsl", "train", spec(tmp_path, "vol"), *FAST, "--data", f"npy:{data}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "2", "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1" in result.stdout and (tmp_path / "runs" / "vol" / "last.pt").exists()
