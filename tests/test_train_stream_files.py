"""Streamed data and every file a real folder can hold: odd image modes decode as PIL's convert("RGB")
does, odd files (FIFOs, devices, dangling links, link loops, unreadable folders) are reported with their
paths or skipped, shard labels and brace patterns are bounded. Tiny images, workers=0, an 8-layer net."""

import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from resdsl.cli import main
from resdsl.errors import RunError
from resdsl.testing.images import shards
from resdsl.train import decode as decoding
from resdsl.train.decode import decode, read_bytes
from resdsl.train.shards import MAX_SHARDS, count_names, expand
from resdsl.train.sources import Folder, Shards, Where
from resdsl.train.stream import folder_samples

SMALL = [
    "--set",
    "depth=8",
    "--input",
    "3x16x16",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--device",
    "cpu",
    "--workers",
    "0",
]


def train(tmp_path, capsys, data, *extra):
    """`resdsl train` in this process: (exit code, stdout, stderr, metrics of the last epoch or None)."""
    out = tmp_path / "run"
    code = main(["train", "resnet20", *SMALL, "--data", data, "--out", str(out), "--overwrite", *extra])
    captured = capsys.readouterr()
    metrics = out / "metrics.jsonl"
    last = json.loads(metrics.read_text().splitlines()[-1]) if code == 0 and metrics.exists() else None
    return code, captured.out, captured.err, last


def where(**kw):
    return Where(
        **{
            "device": torch.device("cpu"),
            "rank": 0,
            "world": 1,
            "seed": 0,
            "batch_size": 4,
            "channels_last": False,
            "workers": 0,
            **kw,
        }
    )


def encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def png16(array: np.ndarray) -> bytes:
    """A 16-bit PNG (PIL writes none in colour): H x W x C uint16, C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA."""
    height, width, channels = array.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def modes(seed=0) -> dict[str, bytes]:
    """One 8x12 file of each mode a real folder holds, by name (the extension is what ImageFolder sees)."""
    rng = np.random.default_rng(seed)

    def pixels(*channels):
        return rng.integers(0, 256, (8, 12, *channels), dtype=np.uint8)

    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    frames = [Image.fromarray(pixels(3)) for _ in range(3)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    return {
        "rgb16.png": png16(rng.integers(0, 65536, (8, 12, 3), dtype=np.uint16)),
        "rgba16.png": png16(rng.integers(0, 65536, (8, 12, 4), dtype=np.uint16)),
        "la16.png": png16(rng.integers(0, 65536, (8, 12, 2), dtype=np.uint16)),
        "palette.png": encode(Image.fromarray(pixels(3)).convert("P", palette=Image.ADAPTIVE, colors=16), "PNG"),
        "la.png": encode(Image.fromarray(pixels(2), "LA"), "PNG"),
        "grey.png": encode(Image.fromarray(pixels()), "PNG"),
        "grey-jpeg.jpg": encode(Image.fromarray(pixels()), "JPEG"),
        "cmyk.jpg": encode(Image.fromarray(pixels(4), "CMYK"), "JPEG"),
        "exif.jpg": encode(Image.fromarray(pixels(3)), "JPEG", exif=exif.tobytes()),
        "animated-gif.jpg": gif,
        "animated.webp": encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
    }


def pil_reference(data: bytes) -> torch.Tensor:
    """torchvision's ImageFolder loader: Image.open(f).convert("RGB"), as (3, H, W) uint8."""
    with Image.open(io.BytesIO(data)) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def as_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


@pytest.mark.parametrize("name", list(modes()))
def test_every_mode_decodes_as_pils_convert_rgb(name):
    data = modes()[name]
    image = decode(as_tensor(data), 3, name)
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 12)  # stored orientation: EXIF is not applied
    assert torch.equal(image, pil_reference(data))


def test_a_16_bit_grey_png_keeps_its_high_byte():
    # PIL's convert("RGB") clips 16-bit grey at 255 (all white): resdsl takes the high byte, as PIL does for
    # 16-bit colour and as torchvision's to_dtype(uint8, scale=True) does
    grey = np.random.default_rng(1).integers(0, 65536, (8, 12), dtype=np.uint16)
    for data in (png16(grey[..., None]), encode(Image.fromarray(grey), "PNG")):
        expected = torch.from_numpy((grey >> 8).astype(np.uint8)).expand(3, -1, -1)
        assert torch.equal(decode(as_tensor(data), 3, "grey16.png"), expected)
        assert torch.equal(decode(as_tensor(data), 1, "grey16.png"), expected[:1])


def mode_folder(root):
    """A train/val image folder of two classes, each file of `modes()` in both (with other pixels)."""
    for split, seed in (("train", 0), ("val", 1)):
        for c in range(2):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for name, data in modes(seed * 10 + c).items():
                (folder / name).write_bytes(data)
    return root


def test_odd_modes_train_through_the_cli_and_decode_alike_on_the_device(tmp_path, capsys):
    root = mode_folder(tmp_path / "modes")
    code, out, err, last = train(tmp_path, capsys, f"imagefolder:{root}")
    assert code == 0 and "warning" not in err, err
    assert "22 train / 22 val" in out  # every file, none skipped (.webp, .jpg, .png)
    assert last["val_loss"] < 10  # 16-bit samples as uint8, not values up to 65535
    # --decode device gives the same batches (JPEGs batched, the rest one by one through the same decode)
    on_worker = Folder(str(root), (3, 16, 16), where(), "imagefolder")
    on_device = Folder(str(root), (3, 16, 16), where(decode="device"), "imagefolder")
    for a, b in zip(on_worker.train_batches(0), on_device.train_batches(0), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_a_gif_in_a_shard_gives_its_first_frame(tmp_path, capsys):
    root = mode_folder(tmp_path / "modes")
    pattern = shards(root / "train", tmp_path / "shards", per_shard=5)
    code, out, err, _ = train(tmp_path, capsys, f"wds:{pattern}")
    assert code == 0 and "warning" not in err, err


def bad_jpegs(folder, count):
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0broken")


@pytest.mark.parametrize("decode_on", ["worker", "device"])
def test_a_batch_of_only_unreadable_images_is_reported_or_skipped(tmp_path, decode_on):
    for c in range(2):
        bad_jpegs(tmp_path / "train" / f"c{c}", 2)
        (tmp_path / "val" / f"c{c}").mkdir(parents=True)
        (tmp_path / "val" / f"c{c}" / "ok.png").write_bytes(modes()["grey.png"])
    failing = Folder(str(tmp_path), (3, 16, 16), where(decode=decode_on), "imagefolder")
    with pytest.raises(RunError, match=f"cannot read the image {tmp_path}/train/c./..jpg: RuntimeError"):
        list(failing.train_batches(0))
    warnings = []
    skipping = Folder(
        str(tmp_path), (3, 16, 16), where(decode=decode_on, on_bad_image="skip", warn=warnings.append), "imagefolder"
    )
    assert list(skipping.train_batches(0)) == [] and len(warnings) == 4
    assert sum(len(y) for _, y in skipping.val_batches()) == 2


def test_a_batch_of_only_unreadable_images_through_the_cli(tmp_path, capsys):
    bad_jpegs(tmp_path / "data" / "train" / "c0", 4)
    bad_jpegs(tmp_path / "data" / "val" / "c0", 1)
    code, _, err, _ = train(tmp_path, capsys, f"imagefolder:{tmp_path / 'data'}")
    assert code == 1 and err.startswith("resdsl: error: --data imagefolder:") and "Traceback" not in err
    assert f"cannot read the image {tmp_path}/data/" in err


def small_folder(root, classes=2, per_class=3):
    for c in range(classes):
        folder = root / f"c{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            (folder / f"{i}.png").write_bytes(modes(c * 10 + i)["grey.png"])
    return root


def test_directory_links_are_followed_once_and_never_relabel(tmp_path, capsys):
    root = small_folder(tmp_path / "data")
    outside = small_folder(tmp_path / "outside", classes=1, per_class=2) / "c0"
    os.symlink("..", root / "c0" / "loop")  # the root: a loop
    os.symlink("../c0", root / "c1" / "other")  # another class
    os.symlink(".", root / "c1" / "self")  # itself
    os.symlink(str(outside), root / "c1" / "extra")  # outside the tree: followed once...
    os.symlink(str(outside), root / "c1" / "extra-again")  # ...not twice
    os.symlink(str(outside), root / "c0" / "extra")  # ...and by the first class that links it
    train_, val, classes = folder_samples(str(root), "imagefolder", 0)
    samples = sorted(train_ + val)
    assert classes == ["c0", "c1"]
    expected = (
        [(str(root / "c0" / f"{i}.png"), 0) for i in range(3)]
        + [(str(root / "c0" / "extra" / f"{i}.png"), 0) for i in range(2)]
        + [(str(root / "c1" / f"{i}.png"), 1) for i in range(3)]
    )
    assert samples == sorted(expected)
    code, out, err, _ = train(tmp_path, capsys, f"imagefolder:{root}")
    assert code == 0 and "6 train / 2 val" in out, err


def test_a_folder_without_links_lists_as_imagefolder_does(tmp_path):
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    root = small_folder(tmp_path / "data", classes=3, per_class=2)
    small_folder(root / "c1" / "nested", classes=2, per_class=2)
    (root / "c2" / "notes.txt").write_text("not an image")
    (root / "c0" / "UPPER.PNG").write_bytes(modes()["grey.png"])
    train_, val, classes = folder_samples(str(root), "imagefolder", 0)
    expected = make_dataset(str(root), find_classes(str(root))[1], extensions=IMG_EXTENSIONS)
    assert classes == ["c0", "c1", "c2"] and len(expected) == 11
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0)).tolist()  # the same split
    assert train_ + val == [expected[i] for i in order]


def odd_files(folder):
    os.mkfifo(folder / "fifo.jpg")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.symlink("missing.png", folder / "dangling.png")


def test_files_that_are_not_regular_are_reported_when_listing(tmp_path, capsys):
    root = small_folder(tmp_path / "data")
    odd_files(root / "c1")
    code, _, err, _ = train(tmp_path, capsys, f"imagefolder:{root}")
    assert code == 1 and "Traceback" not in err
    assert f"cannot read the image {root}/c1/" in err and "--on-bad-image skip" in err
    code, out, err, _ = train(tmp_path, capsys, f"imagefolder:{root}", "--on-bad-image", "skip")
    assert code == 0 and "4 train / 2 val" in out
    lines = sorted(line for line in err.splitlines() if line.startswith("warning: skipped"))
    assert len(lines) == 3
    assert "dangling.png: a symbolic link that leads nowhere readable" in lines[0]
    assert "fifo.jpg: not a regular file (a FIFO)" in lines[1]
    assert "zero.jpg: not a regular file (a character device)" in lines[2]


def test_reading_refuses_what_is_not_a_bounded_regular_file(tmp_path, monkeypatch):
    # what the listing let through can change before it is read: the read checks again, without blocking
    odd_files(tmp_path)
    with pytest.raises(ValueError, match=r"not a regular file \(a FIFO\)"):
        read_bytes(str(tmp_path / "fifo.jpg"))
    with pytest.raises(ValueError, match=r"not a regular file \(a character device\)"):
        read_bytes(str(tmp_path / "zero.jpg"))
    (tmp_path / "big.png").write_bytes(modes()["grey.png"])
    monkeypatch.setattr(decoding, "MAX_IMAGE_BYTES", 100)
    with pytest.raises(ValueError, match=r"bytes, over the bound of 100 for an image file"):
        read_bytes(str(tmp_path / "big.png"))


def test_an_image_larger_than_the_pixel_bound_is_not_decoded(monkeypatch):
    monkeypatch.setattr(decoding, "MAX_IMAGE_PIXELS", 95)
    for name in ("grey.png", "grey-jpeg.jpg"):
        with pytest.raises(ValueError, match="12x8 pixels, over the bound of 95"):
            decode(as_tensor(modes()[name]), 3, name)


def test_an_unreadable_class_folder_is_reported_not_an_empty_class(tmp_path, capsys, monkeypatch):
    root = small_folder(tmp_path / "data")
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(root / "c1"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    code, _, err, _ = train(tmp_path, capsys, f"imagefolder:{root}")
    assert code == 1 and "Traceback" not in err
    assert f"cannot read the folder {root}/c1: PermissionError: Permission denied" in err
    code, out, err, _ = train(tmp_path, capsys, f"imagefolder:{root}", "--on-bad-image", "skip")
    assert code == 0 and "2 train / 1 val, 2 classes" in out
    assert f"warning: skipped the unreadable folder {root}/c1: PermissionError: Permission denied" in err


def labelled_shard(path, labels):
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(path)) as writer:
        for i, label in enumerate(labels):
            writer.write({"__key__": f"k{i:03d}", "png": modes(i)["grey.png"], "cls": str(label)})
    return path


@pytest.mark.parametrize(
    "label, why",
    [
        ("-1", "the `cls` member -1 is outside 0..999999"),
        ("10" * 12, f"the `cls` member {'10' * 12} is outside 0..999999"),
        ("x" * 40, "the `cls` member has 40 bytes"),
    ],
    ids=["negative", "huge", "long"],
)
def test_a_shards_class_is_checked_with_the_shard_and_key(tmp_path, capsys, label, why):
    shard = labelled_shard(tmp_path / "s" / "a.tar", [0, 1, label, 1, 0, 1, 0, 1])
    code, _, err, _ = train(tmp_path, capsys, f"wds:{shard}")
    assert code == 1 and "Traceback" not in err
    assert f"resdsl: error: --data wds:{shard}: cannot read the sample {shard}:k002: {why}" in err
    code, out, err, _ = train(tmp_path, capsys, f"wds:{shard}", "--on-bad-image", "skip")
    assert code == 0 and "2 classes" in out and f"{shard}:k002" in err


def test_a_remote_shards_class_is_checked_against_the_classes(tmp_path, capsys):
    shard = labelled_shard(tmp_path / "s" / "a.tar", [0, 1, 2, 12, 4, 5, 6, 7])
    code, _, err, _ = train(tmp_path, capsys, f"wds:{shard}", "--epoch-samples", "20")
    assert code == 1 and "Traceback" not in err  # resnet20 has 10 classes
    assert f"cannot read the sample {shard}:k003: the `cls` member 12 is outside 0..9 (10 classes)" in err
    code, _, err, _ = train(tmp_path, capsys, f"wds:{shard}", "--epoch-samples", "20", "--on-bad-image", "skip")
    assert code == 0 and f"skipped the unreadable sample {shard}:k003" in err


def test_a_fifo_shard_is_refused_even_with_epoch_samples(tmp_path):
    os.mkfifo(tmp_path / "a.tar")
    with pytest.raises(RunError, match="the shard .*a.tar is not a regular file"):
        Shards(str(tmp_path / "a.tar"), (3, 16, 16), where(epoch_samples=8), "wds", 10)


def test_a_brace_pattern_is_counted_before_it_is_expanded(tmp_path, capsys):
    assert count_names("train-{0000000000..9999999999}.tar") == 10**10
    assert count_names("a{0..9}{a,b{0..4..2},}::x") == 10 * 5
    with pytest.raises(RunError, match=f"names 10,000,000,000 shards, more than the {MAX_SHARDS:,}"):
        expand("train-{0000000000..9999999999}.tar")
    code, _, err, _ = train(tmp_path, capsys, "wds:" + str(tmp_path / "t-{0..1999999}.tar"))
    assert code == 1 and "the pattern names 2,000,000 shards, more than the 1,000,000 a run takes" in err
