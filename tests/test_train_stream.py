"""Streamed data: the transforms are torchvision's, batches do not depend on workers or restarts,
unreadable images are reported with their paths, WebDataset shards split and replay exactly."""

import tarfile

import pytest
import torch
import torchvision.transforms.v2 as T

from resdsl.errors import RunError
from resdsl.testing.images import image_folder, shards
from resdsl.train.shards import ShardStream, count, expand, held_out
from resdsl.train.sources import Folder, Shards, Where
from resdsl.train.stream import Transform, folder_samples
from resdsl.train.transforms import (
    CROP_RATIO,
    CROP_SCALE,
    normalize,
    random_crop_box,
    sample_generator,
    train_transform,
    val_transform,
)

SIZES = [(375, 500), (500, 375), (64, 300), (300, 64), (33, 33), (120, 121)]


@pytest.mark.parametrize("hw", SIZES)
def test_validation_transform_is_torchvisions_resize_then_centre_crop(hw):
    image = torch.randint(0, 256, (3, *hw), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    reference = T.Compose([T.Resize(256, antialias=True), T.CenterCrop(224)])(image)
    assert torch.equal(val_transform(image, (224, 224)), reference)


@pytest.mark.parametrize("hw", SIZES)
def test_random_crops_stay_inside_torchvisions_scale_and_ratio(hw):
    height, width = hw
    inside = 0
    for sample in range(200):
        top, left, h, w = random_crop_box(height, width, sample_generator(0, 0, sample))
        assert 0 <= top and top + h <= height and 0 <= left and left + w <= width and h > 0 and w > 0
        # the draws that succeed obey the bounds up to rounding; the fallback is the centred whole image
        fallback = top == (height - h) // 2 and left == (width - w) // 2 and (h == height or w == width)
        if not fallback:
            area = h * w / (height * width)
            assert CROP_SCALE[0] * 0.8 <= area <= CROP_SCALE[1] + 1e-9
            assert CROP_RATIO[0] * 0.8 <= w / h <= CROP_RATIO[1] * 1.25
            inside += 1
    if min(hw) >= 64:
        assert inside > 150


def test_a_samples_crop_depends_on_seed_epoch_and_index_only():
    image = torch.randint(0, 256, (3, 90, 140), dtype=torch.uint8)
    a = train_transform(image, (32, 32), sample_generator(3, 1, 17))
    b = train_transform(image, (32, 32), sample_generator(3, 1, 17))
    assert torch.equal(a, b)
    others = [train_transform(image, (32, 32), sample_generator(*key)) for key in ((4, 1, 17), (3, 2, 17), (3, 1, 18))]
    assert all(not torch.equal(a, o) for o in others)


def test_normalize_uses_the_imagenet_statistics():
    batch = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(batch, 3)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out[0, :, 0, 0], expected)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    image_folder(root / "train", classes=3, per_class=10, sizes=SIZES, png_every=4, gray_every=5)
    image_folder(root / "val", classes=3, per_class=3, sizes=SIZES, seed=1)
    return root


def where(**kw):
    return Where(
        **{
            "device": torch.device("cpu"),
            "rank": 0,
            "world": 1,
            "seed": 5,
            "batch_size": 8,
            "channels_last": False,
            "workers": 0,
            **kw,
        }
    )


def epoch_batches(source, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in source.train_batches(epoch, start)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_batches_are_the_same_with_any_number_of_workers_and_decoding_on_the_device(folder):
    shape = (3, 32, 32)
    serial = Folder(str(folder), shape, where(), "imagefolder")
    assert (serial.classes, serial.train_count, serial.val_count, serial.steps_per_epoch) == (3, 30, 9, 4)
    first = epoch_batches(serial, 0)
    assert [len(y) for _, y in first] == [8, 8, 8, 6] and first[0][0].shape == (8, 3, 32, 32)
    assert first[0][0].dtype == torch.float32
    parallel = Folder(str(folder), shape, where(workers=2), "imagefolder")
    assert same(first, epoch_batches(parallel, 0))
    on_device = Folder(str(folder), shape, where(workers=2, decode="device"), "imagefolder")
    assert same(first, epoch_batches(on_device, 0))
    assert not same(first, epoch_batches(serial, 1))  # another epoch, another order and other crops
    assert same(first[2:], epoch_batches(parallel, 0, start=2))  # a resumed epoch skips the steps taken
    val = [(x, y) for x, y in serial.val_batches()]
    assert sum(len(y) for _, y in val) == 9 and same(val, list(parallel.val_batches()))
    parallel.close()


def test_one_folder_is_split_80_20_by_the_seed(folder):
    train, val, classes = folder_samples(str(folder / "train"), "imagefolder", seed=0)
    assert len(train) == 24 and len(val) == 6 and classes == ["class_000", "class_001", "class_002"]
    assert not set(train) & set(val)
    assert folder_samples(str(folder / "train"), "imagefolder", seed=0)[0] == train
    assert folder_samples(str(folder / "train"), "imagefolder", seed=1)[0] != train


def test_train_and_val_with_other_classes_is_an_error(tmp_path):
    image_folder(tmp_path / "train", classes=3, per_class=2)
    image_folder(tmp_path / "val", classes=2, per_class=2)
    with pytest.raises(RunError, match="train/ and val/ have different classes"):
        folder_samples(str(tmp_path), "imagefolder", 0)


@pytest.mark.parametrize(
    "content, why",
    [
        (b"\xff\xd8\xff\xe0garbage", "RuntimeError: Image is incomplete"),
        (b"not an image", "not an image file"),
        (b"", "the file is empty"),
    ],
)
def test_an_unreadable_image_fails_with_its_path_or_is_skipped_once(tmp_path, content, why):
    image_folder(tmp_path, classes=2, per_class=5)
    bad = tmp_path / "class_001" / "00002.jpg"
    bad.write_bytes(content)
    failing = Folder(str(tmp_path), (3, 16, 16), where(workers=2), "imagefolder")
    with pytest.raises(RunError, match=f"cannot read the image {bad}: .*{why}.*--on-bad-image skip"):
        for _ in [*failing.train_batches(0), *failing.val_batches()]:
            pass
    warnings = []
    skipping = Folder(
        str(tmp_path), (3, 16, 16), where(workers=2, on_bad_image="skip", warn=warnings.append), "imagefolder"
    )
    for epoch in range(2):
        seen = sum(len(y) for _, y in skipping.train_batches(epoch)) + sum(len(y) for _, y in skipping.val_batches())
        assert seen == 9
    assert len(warnings) == 1 and str(bad) in warnings[0] and warnings[0].startswith("warning: skipped")


def test_images_need_one_or_three_channels(folder):
    with pytest.raises(RunError, match="1 or 3 channels"):
        Folder(str(folder), (4, 16, 16), where(), "imagefolder")
    with pytest.raises(RunError, match="1 or 3 channels"):
        Folder(str(folder), (64,), where(), "imagefolder")
    gray = Folder(str(folder), (1, 16, 16), where(), "imagefolder")
    assert next(iter(gray.train_batches(0)))[0].shape == (8, 1, 16, 16)


@pytest.fixture(scope="module")
def pattern(folder, tmp_path_factory):
    return shards(folder / "train", tmp_path_factory.mktemp("shards"), per_shard=7)


def test_shards_are_counted_and_one_in_five_keys_held_out(pattern):
    urls = expand(pattern)
    assert len(urls) == 5
    counted = count(urls, "wds", split=True)
    keys = [m.name.partition(".")[0] for u in urls for m in tarfile.open(u) if m.name.endswith(("jpg", "png"))]
    assert counted.train + counted.val == 30 == len(set(keys)) and counted.classes == 3
    assert counted.val == sum(held_out(k) for k in keys) and 0 < counted.val < 15


def test_shard_epochs_replay_exactly_and_ranks_take_equal_quotas(pattern):
    source = Shards(pattern, (3, 16, 16), where(workers=2), "wds", 10)
    a, b = epoch_batches(source, 0), epoch_batches(source, 0)
    assert same(a, b) and not same(a, epoch_batches(source, 1))
    assert len(a) == source.steps_per_epoch and sum(len(y) for _, y in a) == source.train_count
    assert same(a[1:], epoch_batches(source, 0, start=1))
    ranks = [Shards(pattern, (3, 16, 16), where(workers=2, rank=r, world=2), "wds", 10) for r in range(2)]
    counts = [[len(y) for _, y in r.train_batches(0)] for r in ranks]
    assert counts[0] == counts[1] and len(counts[0]) == ranks[0].steps_per_epoch
    assert sum(counts[0]) == source.train_count // 2
    val = sum(len(y) for _, y in source.val_batches())
    assert val == source.val_count


def test_a_worker_that_runs_out_of_shards_starts_them_again(pattern):
    transform = Transform((16, 16), 3, True, 0)
    stream = ShardStream(expand(pattern)[:1], transform, quota=20, rank=0, world=1, split="all")
    items = list(stream)
    assert len(items) == 20 and len({i.name for i in items}) == 7


def test_a_broken_shard_is_reported(pattern, tmp_path):
    broken = tmp_path / "broken.tar"
    data = open(expand(pattern)[0], "rb").read()
    broken.write_bytes(data[: len(data) // 2] + b"\x00junk" * 100)
    transform = Transform((16, 16), 3, False, 0)
    items = list(ShardStream([str(broken)], transform, quota=None, rank=0, world=1, split="all"))
    assert any(i.bad is not None for i in items)
