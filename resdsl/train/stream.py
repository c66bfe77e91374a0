"""Image folders streamed from disk: DataLoader workers decode and crop, memory O(batch × workers).

    imagefolder:DIR   DIR/train/<class>/* and DIR/val/<class>/*, or DIR/<class>/* split 80/20 by the seed

Workers read each file and decode it with torchvision.io (libjpeg-turbo, libpng, libwebp; PIL for
the rest), apply the seeded transforms of transforms.py and hand back uint8 tensors. With
`decode="device"` they hand back the file's bytes instead and the batch is decoded on the training
device (nvJPEG on CUDA, `torchvision.io.decode_jpeg(list, device=...)`), with the same seeded crops.

A file that cannot be read or decoded never raises in a worker: it comes back as a `BadImage`
(path, reason), and the main process skips it with a warning or stops the run with a located
error, as `--on-bad-image` says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, cast

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import RunError as DataError
from .decode import MAX_IMAGE_PIXELS, decode, image_kind, jpeg_frame, not_regular, read_bytes, reason
from .transforms import normalize, sample_generator, train_transform, val_transform


class BadImage(NamedTuple):
    path: str
    reason: str
    kind: str = "image"  # what could not be used: an image, a folder, a (shard's) sample


class Item(NamedTuple):
    """What a worker returns for one sample: a decoded uint8 image (or the file's bytes), or why not."""

    pixels: torch.Tensor | None
    label: int
    sample: int  # the sample's index in the dataset (not `index`, which would hide tuple.index)
    name: str  # the file's path (a shard's sample key)
    bad: BadImage | None


@dataclass(frozen=True)
class Transform:
    """What a sample needs to become a training or validation image."""

    size: tuple[int, int]
    channels: int
    train: bool
    seed: int
    decode_in_worker: bool = True

    def apply(self, image: torch.Tensor, epoch: int, index: int) -> torch.Tensor:
        if self.train:
            return train_transform(image, self.size, sample_generator(self.seed, epoch, index))
        return val_transform(image, self.size)


def load_item(
    read: Callable[[], torch.Tensor], path: str, label: int, index: int, epoch: int, transform: Transform
) -> Item:
    """Read (and decode and transform) one sample; any failure becomes a BadImage, never an exception."""
    try:
        data = read()
        if not transform.decode_in_worker:
            return Item(data, label, index, path, None)
        image = decode(data, transform.channels, path)
        if min(image.shape[-2:]) < 1:
            raise ValueError("the image is empty")
        return Item(transform.apply(image, epoch, index), label, index, path, None)
    except Exception as exc:  # noqa: BLE001 - every unreadable file is reported the same way, with its path
        return Item(None, label, index, path, BadImage(path, reason(exc)))


class ImageFiles(Dataset):
    """(path, label) pairs; item (epoch, index) is that sample transformed for that epoch."""

    def __init__(self, samples: list[tuple[str, int]], transform: Transform):
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        epoch, index = key
        path, label = self.samples[index]
        return load_item(lambda: read_bytes(path), path, label, index, epoch, self.transform)


class EpochSampler(Sampler):
    """torch's DistributedSampler (shuffled by seed + epoch, this rank's share), yielding (epoch, index)
    so that each worker knows the epoch's seeds; `start` skips the samples a resumed run already saw."""

    def __init__(self, size: int, rank: int, world: int, seed: int, shuffle: bool):
        # DistributedSampler only takes the len() of its dataset: the sample indices will do
        indices = cast("Dataset[int]", range(size))
        self.inner: DistributedSampler[int] = DistributedSampler(
            indices, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed
        )
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner) - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in list(self.inner)[self.start :])


class Collated(NamedTuple):
    pixels: torch.Tensor | list[torch.Tensor]  # (B, C, H, W) uint8, or the B files' bytes
    labels: torch.Tensor  # (B,) int64
    indices: list[int]
    names: list[str]
    bad: list[BadImage]


def collate(items: list[Item]) -> Collated:
    good = [item for item in items if item.bad is None]
    images: list[torch.Tensor] = []
    for item in good:
        assert item.pixels is not None  # load_item gives a sample without pixels a BadImage
        images.append(item.pixels)
    pixels: torch.Tensor | list[torch.Tensor] = images
    if images and images[0].dim() == 3:  # decoded in the worker: one uint8 tensor for the batch
        pixels = torch.stack(images)
    return Collated(
        pixels,
        torch.tensor([item.label for item in good], dtype=torch.int64),
        [item.sample for item in good],
        [item.name for item in good],
        [item.bad for item in items if item.bad is not None],
    )


def default_workers(world: int = 1) -> int:
    """The cores this process may use, shared by the ranks of this machine, at most 8 per rank."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return max(1, min(8, cores // max(1, local)))


# A worker that sends nothing for this long is stuck (a batch takes well under a second to decode): an
# error, not a hang.
WORKER_TIMEOUT_S = 600


def loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    sampler: Sampler | None,
    pin: bool,
    persistent: bool = True,
    collate_fn: Callable[[list[Item]], Collated] = collate,
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin,
        persistent_workers=persistent and workers > 0,
        prefetch_factor=4 if workers else None,
        timeout=WORKER_TIMEOUT_S if workers else 0,
    )


def to_device(
    batch: Collated, transform: Transform, epoch: int, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
    """A collated batch -> (normalised float images, labels) on `device`, decoding there if the workers did not."""
    bad = list(batch.bad)
    pixels = batch.pixels
    if not transform.decode_in_worker:
        assert isinstance(pixels, list)  # the files' bytes (1-D), which collate never stacks
        pixels, labels, failed = _decode_on(device, pixels, batch, transform, epoch)
        bad += failed
    else:
        labels = batch.labels
    if len(labels) == 0:
        return torch.empty(0), labels, bad
    assert isinstance(pixels, torch.Tensor)  # at least one image, and images are stacked
    x = normalize(pixels.to(device, non_blocking=True), transform.channels)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels.to(device, non_blocking=True), bad


def _decode_on(
    device: torch.device, files: list[torch.Tensor], batch: Collated, transform: Transform, epoch: int
) -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
    """Decode the batch's JPEGs together on `device` (nvJPEG on CUDA), other formats one by one on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.RGB if transform.channels == 3 else ImageReadMode.GRAY
    images: list[torch.Tensor | None] = [None] * len(files)
    jpegs = [i for i, data in enumerate(files) if _batchable_jpeg(data)]
    try:
        if jpegs:  # a batch may hold no JPEG, or no readable file at all
            for i, image in zip(jpegs, decode_jpeg([files[i] for i in jpegs], mode=mode, device=device)):
                images[i] = image
    except RuntimeError:  # one bad file fails the whole batch: decode them one at a time to find it
        pass
    bad: list[BadImage] = []
    keep: list[tuple[int, torch.Tensor]] = []
    for i, data in enumerate(files):
        path = batch.names[i]
        try:
            image = images[i]
            if image is None:
                image = decode(data, transform.channels, path).to(device)
            keep.append((i, image))
        except Exception as exc:  # noqa: BLE001
            bad.append(BadImage(path, reason(exc)))
    out = [transform.apply(image, epoch, batch.indices[i]) for i, image in keep]
    labels = batch.labels[[i for i, _ in keep]] if keep else batch.labels[:0]
    return (torch.stack(out) if out else torch.empty(0, dtype=torch.uint8)), labels, bad


def _batchable_jpeg(data: torch.Tensor) -> bool:
    """A JPEG that the batched decoder takes: 8-bit baseline, extended or progressive, grey or YCbCr, within
    MAX_IMAGE_PIXELS; the others (CMYK, 12-bit, lossless, GIFs named .jpg, ...) go through `decode`."""
    buf = data.numpy().data
    if image_kind(buf) != "jpeg":
        return False
    frame = jpeg_frame(buf)
    return (
        frame is not None
        and frame[0] in (0xC0, 0xC1, 0xC2)
        and frame[1] == 8
        and frame[4] in (1, 3)
        and frame[2] * frame[3] <= MAX_IMAGE_PIXELS
    )


def folder_samples(
    path: str, source: str, seed: int, report=None, extensions: tuple[str, ...] = (), kind: str = "image"
) -> tuple[list, list, list[str]]:
    """(train samples, val samples, class names) of an image folder, as torchvision's ImageFolder finds them
    (the same files in the same order), but see `class_files` for links, odd files and unreadable folders.
    `report(BadImage)` takes what cannot be used (by default: an error). `extensions` (default: the image
    extensions) and `kind` (a BadImage's) serve other files laid out the same way: npy:DIR's arrays."""
    extensions = extensions or IMG_EXTENSIONS

    def fail(bad: BadImage) -> None:
        raise DataError(f"--data {source}: cannot read the {bad.kind} {bad.path}: {bad.reason}")

    def read(folder: str) -> tuple[list[tuple[str, int]], list[str]]:
        try:
            with os.scandir(folder) as entries:
                classes = sorted(entry.name for entry in entries if entry.is_dir())
        except OSError as exc:
            raise DataError(f"--data {source}: cannot read the folder {folder}: {reason(exc)}") from None
        if not classes:
            raise DataError(f"--data {source}: no class folders in {folder}")
        files = class_files([os.path.join(folder, name) for name in classes], folder, report or fail, extensions, kind)
        samples = [(file, label) for label, names in enumerate(files) for file in names]
        if not samples:
            raise DataError(f"--data {source}: no {kind}s ({', '.join(extensions)}) in the class folders of {folder}")
        return samples, classes

    if os.path.isdir(os.path.join(path, "train")):
        train, classes = read(os.path.join(path, "train"))
        if not os.path.isdir(os.path.join(path, "val")):
            raise DataError(f"--data {source}: {path}/train has no {path}/val beside it")
        val, val_classes = read(os.path.join(path, "val"))
        if val_classes != classes:
            raise DataError(
                f"--data {source}: train/ and val/ have different classes "
                f"({len(classes)} and {len(val_classes)} folders)"
            )
        return train, val, classes
    samples, classes = read(path)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(0.8 * len(order)))
    return [samples[i] for i in order[:cut]], [samples[i] for i in order[cut:]], classes


IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's


def _key(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def class_files(
    classes: list[str], root: str, report, extensions: tuple[str, ...] = IMG_EXTENSIONS, kind: str = "image"
) -> list[list[str]]:
    """The image files of each class folder, in torchvision's make_dataset order (folders by path, then
    names), with links followed once, as `os.walk(followlinks=True)` guarded against revisits:

    - every folder (by the device and inode of its real path) is walked once in all. The classes' own
      trees are walked first, links aside; then each class's links, in class order. So a link into the
      data's own tree (another class, the root, an ancestor, itself) is passed over and its images stay
      in their class, and a folder outside the tree belongs to the first class that links it;
    - a file with one of `extensions` that is not a regular file (a FIFO, a device, a socket, a link that
      leads nowhere) and a folder that cannot be read go to `report` (a BadImage) and are left out.
    Each folder is listed once (os.scandir), as os.walk does.
    """
    owner: dict[tuple[int, int], int | None] = {}
    try:
        owner[_key(root)] = None
    except OSError:
        pass
    found: list[list[tuple[str, list[str]]]] = [[] for _ in classes]
    links: list[list[str]] = [[] for _ in classes]

    def walk(label: int, start: str) -> None:
        stack = [start]
        while stack:
            folder = stack.pop()
            try:
                key = _key(folder)
                if key in owner:
                    continue  # walked already, in this class or another
                owner[key] = label
                with os.scandir(folder) as scan:
                    entries = list(scan)
            except OSError as exc:
                report(BadImage(folder, reason(exc), "folder"))
                continue
            names = []
            for entry in entries:
                try:
                    if entry.is_dir():
                        (links[label] if entry.is_symlink() else stack).append(entry.path)
                    elif entry.name.lower().endswith(extensions):
                        if entry.is_file():
                            names.append(entry.name)
                        else:
                            report(BadImage(entry.path, not_regular(entry.path), kind))
                except OSError as exc:
                    report(BadImage(entry.path, reason(exc), kind))
            found[label].append((folder, sorted(names)))

    for label, top in enumerate(classes):  # the tree itself
        walk(label, top)
    for label in range(len(classes)):  # then the links (and the links of what they lead to)
        while links[label]:
            walk(label, links[label].pop(0))
    return [[os.path.join(folder, name) for folder, names in sorted(tree) for name in names] for tree in found]
