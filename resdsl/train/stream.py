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
import re
from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ..errors import RunError as DataError
from .transforms import normalize, sample_generator, train_transform, val_transform

JPEG_MAGIC = b"\xff\xd8\xff"


class BadImage(NamedTuple):
    path: str
    reason: str


class Item(NamedTuple):
    """What a worker returns for one sample: a decoded uint8 image (or the file's bytes), or why not."""

    pixels: torch.Tensor | None
    label: int
    index: int
    name: str                # the file's path (a shard's sample key)
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


MAGIC = (JPEG_MAGIC, b"\x89PNG", b"RIFF", b"GIF8")  # JPEG, PNG, WebP, GIF: what torchvision.io decodes


def decode(data: torch.Tensor, channels: int, path: str) -> torch.Tensor:
    """The bytes of an image file -> (channels, H, W) uint8: torchvision.io for JPEG, PNG, WebP and GIF
    (libjpeg-turbo, libpng, libwebp), PIL for the other formats ImageFolder accepts (BMP, PPM, TIFF)."""
    from torchvision.io import ImageReadMode, decode_image
    head = bytes(data[:4].tolist())
    if any(head.startswith(magic) for magic in MAGIC):
        return decode_image(data, mode=ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY)
    import io

    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.functional import pil_to_tensor
    try:
        with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
            return pil_to_tensor(image.convert("RGB" if channels == 3 else "L"))
    except UnidentifiedImageError:
        raise ValueError("not an image file that torchvision or PIL can read") from None


def load_item(read, path: str, label: int, index: int, epoch: int, transform: Transform) -> Item:
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


def reason(exc: Exception) -> str:
    """One line of why: torchvision's C++ errors lose their `decode_jpeg, /path/decode_jpeg.cpp:171, ` prefix."""
    text = re.sub(r"^\w+, \S+:\d+, ", "", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    return f"{type(exc).__name__}: {text or 'unreadable'}"


def read_bytes(path: str) -> torch.Tensor:
    """A file's bytes as a uint8 tensor in ordinary memory (torchvision.io.read_file's storage cannot be
    sent between processes, which `--decode device` does)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError("the file is empty")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


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
        self.inner = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start
        self.inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.inner) - self.start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, index) for index in list(self.inner)[self.start:])


class Collated(NamedTuple):
    pixels: torch.Tensor | list[torch.Tensor]  # (B, C, H, W) uint8, or the B files' bytes
    labels: torch.Tensor                        # (B,) int64
    indices: list[int]
    names: list[str]
    bad: list[BadImage]


def collate(items: list[Item]) -> Collated:
    good = [item for item in items if item.bad is None]
    pixels = [item.pixels for item in good]
    if good and pixels[0].dim() == 3:  # decoded in the worker: one uint8 tensor for the batch
        pixels = torch.stack(pixels)
    return Collated(pixels, torch.tensor([item.label for item in good], dtype=torch.int64),
                    [item.index for item in good], [item.name for item in good],
                    [item.bad for item in items if item.bad is not None])


def default_workers(world: int = 1) -> int:
    """The cores this process may use, shared by the ranks of this machine, at most 8 per rank."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return max(1, min(8, cores // max(1, local)))


# A worker that sends nothing for this long is stuck (a batch takes well under a second to decode): an
# error, not a hang.
WORKER_TIMEOUT_S = 600


def loader(dataset: Dataset, batch_size: int, workers: int, sampler: Sampler | None, pin: bool,
           persistent: bool = True) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=pin, persistent_workers=persistent and workers > 0,
                      prefetch_factor=4 if workers else None, timeout=WORKER_TIMEOUT_S if workers else 0)


def to_device(batch: Collated, transform: Transform, epoch: int, device: torch.device,
              channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
    """A collated batch -> (normalised float images, labels) on `device`, decoding there if the workers did not."""
    bad = list(batch.bad)
    pixels = batch.pixels
    if isinstance(pixels, list):
        pixels, labels, failed = _decode_on(device, pixels, batch, transform, epoch)
        bad += failed
    else:
        labels = batch.labels
    if len(labels) == 0:
        return torch.empty(0), labels, bad
    x = normalize(pixels.to(device, non_blocking=True), transform.channels)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, labels.to(device, non_blocking=True), bad


def _decode_on(device: torch.device, files: list[torch.Tensor], batch: Collated, transform: Transform, epoch: int):
    """Decode the batch's JPEGs together on `device` (nvJPEG on CUDA), other formats one by one on the CPU."""
    from torchvision.io import ImageReadMode, decode_jpeg
    mode = ImageReadMode.RGB if transform.channels == 3 else ImageReadMode.GRAY
    images: list[torch.Tensor | None] = [None] * len(files)
    jpegs = [i for i, data in enumerate(files) if bytes(data[:3].tolist()) == JPEG_MAGIC]
    try:
        for i, image in zip(jpegs, decode_jpeg([files[i] for i in jpegs], mode=mode, device=device)):
            images[i] = image
    except RuntimeError:  # one bad file fails the whole batch: decode them one at a time to find it
        pass
    bad, keep = [], []
    for i, data in enumerate(files):
        path = batch.names[i]
        try:
            if images[i] is None:
                images[i] = decode(data, transform.channels, path).to(device)
            keep.append(i)
        except Exception as exc:  # noqa: BLE001
            bad.append(BadImage(path, reason(exc)))
    out = [transform.apply(images[i], epoch, batch.indices[i]) for i in keep]
    labels = batch.labels[keep] if keep else batch.labels[:0]
    return (torch.stack(out) if out else torch.empty(0, dtype=torch.uint8)), labels, bad


def folder_samples(path: str, source: str, seed: int) -> tuple[list, list, list[str]]:
    """(train samples, val samples, class names) of an image folder, as torchvision's ImageFolder finds them."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    def read(folder: str) -> tuple[list[tuple[str, int]], list[str]]:
        try:
            classes, class_to_index = find_classes(folder)
            samples = make_dataset(folder, class_to_index, extensions=IMG_EXTENSIONS, allow_empty=True)
        except (FileNotFoundError, RuntimeError, OSError) as exc:
            raise DataError(f"--data {source}: {exc}") from None
        if not samples:
            raise DataError(f"--data {source}: no images ({', '.join(IMG_EXTENSIONS)}) in the class folders of "
                            f"{folder}")
        return samples, classes

    if os.path.isdir(os.path.join(path, "train")):
        train, classes = read(os.path.join(path, "train"))
        if not os.path.isdir(os.path.join(path, "val")):
            raise DataError(f"--data {source}: {path}/train has no {path}/val beside it")
        val, val_classes = read(os.path.join(path, "val"))
        if val_classes != classes:
            raise DataError(f"--data {source}: train/ and val/ have different classes "
                            f"({len(classes)} and {len(val_classes)} folders)")
        return train, val, classes
    samples, classes = read(path)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(0.8 * len(order)))
    return [samples[i] for i in order[:cut]], [samples[i] for i in order[cut:]], classes
