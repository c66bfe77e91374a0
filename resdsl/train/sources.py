"""Where a run's batches come from: one interface over the in-memory and the streaming data.

    InMemory   digits, cifar10:DIR, synthetic: tensors on the device (or pinned), sliced per step
    Folder     imagefolder:DIR, streamed by DataLoader workers (stream.py)
    Shards     wds:PATTERN, WebDataset tar shards (shards.py)
    Arrays     npy:DIR, .npy files of any input rank streamed by DataLoader workers (arrays.py)

Each gives, for epoch e, `steps_per_epoch` batches of (normalised float images, labels) on the
device, the same ones after a restart; `start` skips the steps a resumed run already took.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader

from ..errors import RunError as DataError
from ..files import expand
from ..library import UsageError
from . import arrays
from .data import augment_batch, load_data
from .shards import ShardStream, check_local, count
from .shards import expand as expand_shards
from .stream import (
    BadImage,
    Collated,
    EpochSampler,
    ImageFiles,
    Transform,
    default_workers,
    folder_samples,
    loader,
    to_device,
)
from .transforms import sample_generator

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Where:
    """The run's placement, which every source needs."""

    device: torch.device
    rank: int
    world: int
    seed: int
    batch_size: int
    channels_last: bool
    workers: int | None = None  # None: default_workers
    on_bad_image: str = "fail"  # "fail" | "skip"
    decode: str = "worker"  # "worker" | "device" (nvJPEG on CUDA)
    epoch_samples: int | None = None  # wds shards that are not local files
    warn: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))


class InMemory:
    """Tensors in memory: each rank its share of a seeded permutation, the CIFAR augmentation per step."""

    streaming = False
    note: str | None = None  # a line for the run to print before training

    def __init__(self, source: str, input_shape: tuple[int, ...], where: Where):
        data = load_data(source, input_shape, where.seed)
        self.where, self.data = where, data
        self.name, self.classes = data.name, data.classes
        self.train_count, self.val_count = len(data.train_x), len(data.val_x)
        per_rank = math.ceil(len(data.train_x) / where.world)
        self.steps_per_epoch = max(1, math.ceil(per_rank / where.batch_size))
        if where.device.type == "cuda":  # the small data sets live on the GPU; else pinned, for non-blocking copies
            size = sum(t.numel() * t.element_size() for t in (data.train_x, data.val_x))
            move = (lambda t: t.to(where.device)) if size < 8e9 else (lambda t: t.pin_memory())
            data.train_x, data.train_y, data.val_x, data.val_y = map(
                move, (data.train_x, data.train_y, data.val_x, data.val_y)
            )

    def _place(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return place(x, self.where), y.to(self.where.device, non_blocking=True)

    def train_batches(self, epoch: int, start: int = 0) -> Batches:
        w, data = self.where, self.data
        order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(w.seed * 100003 + epoch))
        order = order[w.rank :: w.world]  # each rank its share, as DistributedSampler does
        for step in range(start, self.steps_per_epoch):
            index = order[step * w.batch_size : (step + 1) * w.batch_size]
            if len(index) == 0:
                return
            x, y = data.train_x[index.to(data.train_x.device)], data.train_y[index.to(data.train_y.device)]
            if data.augment:
                x = augment_batch(x, sample_generator(w.seed, epoch, step))
            yield self._place(x, y)

    def val_batches(self) -> Batches:
        w, data = self.where, self.data
        index = torch.arange(len(data.val_x))[w.rank :: w.world]
        for i in range(0, len(index), w.batch_size):
            part = index[i : i + w.batch_size].to(data.val_x.device)
            yield self._place(data.val_x[part], data.val_y[part])

    def close(self) -> None:
        pass


def memory_layout(wanted: bool | None, input_shape: tuple[int, ...]) -> bool:
    """Whether the run is channels-last. By default NHWC for images: cuDNN's and oneDNN's fast convolutions
    (5-10% on a 2-core CPU for resnet18 at 64x64). Volumes (C x D x H x W) take NDHWC (channels_last_3d)
    when asked; torch has no channels-last layout for sequences or vectors."""
    if wanted is None:
        return len(input_shape) == 3
    if wanted and len(input_shape) not in (3, 4):
        raise UsageError(
            f"--channels-last is for images (C x H x W) and volumes (C x D x H x W); the spec's input is "
            f"{arrays.describe(input_shape)}"
        )
    return wanted


def place(x: torch.Tensor, where: Where) -> torch.Tensor:
    """A batch on the run's device; NHWC for images (channels_last) and NDHWC for volumes (channels_last_3d)."""
    x = x.to(where.device, non_blocking=True)
    if where.channels_last and x.dim() in (4, 5):
        x = x.contiguous(memory_format=torch.channels_last if x.dim() == 4 else torch.channels_last_3d)
    return x


class _Loaded:
    """What the streamed sources share: DataLoader workers, and reporting the files they could not use."""

    streaming = True
    note: str | None = None

    def __init__(self, where: Where, source: str):
        self.where, self.name = where, source
        self.workers = where.workers if where.workers is not None else default_workers(where.world)
        self.skipped: set[str] = set()

    def _stream(self, loader_, convert: Callable[[Collated], tuple[torch.Tensor, torch.Tensor, list[BadImage]]]):
        """The loader's batches through `convert` (to the device), the unusable files reported or skipped."""
        batches = iter(loader_)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except RuntimeError as exc:
                if "timed out" not in str(exc) and "exited unexpectedly" not in str(exc):
                    raise
                raise DataError(f"--data {self.name}: the data loading workers stopped: {exc}") from None
            x, y, bad = convert(batch)
            for problem in bad:
                self._report(problem)
            if len(y):
                yield x, y

    def _report(self, bad: BadImage) -> None:
        if self.where.on_bad_image == "fail":
            raise DataError(
                f"--data {self.name}: cannot read the {bad.kind} {bad.path}: {bad.reason} "
                f"(--on-bad-image skip leaves such {bad.kind}s out)"
            )
        if bad.path not in self.skipped:
            self.skipped.add(bad.path)
            self.where.warn(f"warning: skipped the unreadable {bad.kind} {bad.path}: {bad.reason}")


class _Streamed(_Loaded):
    """What the image folder and shard sources share: the transforms."""

    def __init__(self, input_shape: tuple[int, ...], where: Where, source: str):
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            fix = "use --input 3xHxW" if len(input_shape) == 3 else "use --data npy:DIR or synthetic for it"
            raise DataError(
                f"--data {source} gives images with 1 or 3 channels; the spec's input is "
                f"{arrays.describe(input_shape)}: {fix}"
            )
        super().__init__(where, source)
        size = (input_shape[1], input_shape[2])
        in_worker = where.decode != "device"
        self.train_transform = Transform(size, input_shape[0], True, where.seed, in_worker)
        self.val_transform = Transform(size, input_shape[0], False, where.seed, in_worker)

    def _batches(self, loader_, transform: Transform, epoch: int) -> Batches:
        w = self.where
        return self._stream(loader_, lambda batch: to_device(batch, transform, epoch, w.device, w.channels_last))


class Folder(_Streamed):
    def __init__(self, path: str, input_shape: tuple[int, ...], where: Where, source: str):
        super().__init__(input_shape, where, source)
        train, val, classes = folder_samples(path, source, where.seed, self._report)
        self.classes, self.train_count, self.val_count = len(classes), len(train), len(val)
        self.sampler = EpochSampler(len(train), where.rank, where.world, where.seed, shuffle=True)
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler.inner) / where.batch_size))
        pin = where.device.type == "cuda"
        self.train_loader: DataLoader | None = loader(
            ImageFiles(train, self.train_transform), where.batch_size, self.workers, self.sampler, pin
        )
        val_sampler = EpochSampler(len(val), where.rank, where.world, where.seed, shuffle=False) if val else None
        # validation's workers start for each pass and stop after it: no idle processes holding memory
        self.val_loader = (
            loader(
                ImageFiles(val, self.val_transform), where.batch_size, self.workers, val_sampler, pin, persistent=False
            )
            if val
            else None
        )

    def train_batches(self, epoch: int, start: int = 0) -> Batches:
        assert self.train_loader is not None  # not closed
        self.sampler.set_epoch(epoch, start * self.where.batch_size)
        return self._batches(self.train_loader, self.train_transform, epoch)

    def val_batches(self) -> Batches:
        return self._batches(self.val_loader, self.val_transform, 0) if self.val_loader else iter(())

    def close(self) -> None:  # stop the persistent workers now, not at interpreter exit
        self.train_loader = self.val_loader = None


class Shards(_Streamed):
    def __init__(self, pattern: str, input_shape: tuple[int, ...], where: Where, source: str, default_classes: int):
        super().__init__(input_shape, where, source)
        self.urls = expand_shards(pattern)
        if where.epoch_samples:
            check_local(self.urls, source)
            self.train_count, self.val_count, self.classes = where.epoch_samples, 0, default_classes
        else:
            counted = count(self.urls, source, split=True, report=self._report)
            self.train_count, self.val_count, self.classes = counted.train, counted.val, counted.classes
        self.quota = self.train_count // where.world
        if self.quota == 0:
            raise DataError(f"--data {source}: {self.train_count} training samples for {where.world} processes")
        workers = max(1, self.workers)
        self.steps_per_epoch = sum(
            math.ceil((self.quota // workers + (w < self.quota % workers)) / where.batch_size) for w in range(workers)
        )

    def _loader(self, split: str, transform: Transform, quota: int | None, epoch: int):
        stream = ShardStream(
            self.urls, transform, quota, self.where.rank, self.where.world, split, epoch, classes=self.classes
        )
        return loader(
            stream, self.where.batch_size, self.workers, None, self.where.device.type == "cuda", persistent=False
        )  # a new epoch forks new workers: the stream's epoch travels with them

    def train_batches(self, epoch: int, start: int = 0) -> Batches:
        batches = self._batches(
            self._loader("train", self.train_transform, self.quota, epoch), self.train_transform, epoch
        )
        for step, batch in enumerate(batches):
            if step >= start:  # a resumed epoch: the stream replays, the steps already taken are passed over
                yield batch

    def val_batches(self) -> Batches:
        return self._batches(self._loader("val", self.val_transform, None, 0), self.val_transform, 0)

    def close(self) -> None:
        pass


class Arrays(_Loaded):
    """npy:DIR: one .npy file per sample, of any input rank, in class folders (arrays.py)."""

    def __init__(self, path: str, input_shape: tuple[int, ...], where: Where, source: str):
        super().__init__(where, source)
        train, val, classes = folder_samples(path, source, where.seed, self._report, arrays.EXTENSIONS, "array")
        for file in arrays.first_of_each_class(train + val):  # a folder of the wrong shape stops the run now
            try:
                arrays.peek(file, input_shape)
            except (ValueError, OSError) as exc:
                raise DataError(f"--data {source}: cannot use the array {file}: {arrays.why(exc)}") from None
        self.classes, self.train_count, self.val_count = len(classes), len(train), len(val)
        self.mean, self.std = arrays.statistics(train, input_shape, where.seed)
        self.note = (
            f"{source}: arrays standardised by mean {self.mean:.4g} and std {self.std:.4g} "
            f"(from {min(len(train), arrays.STATS_FILES)} training files)"
        )
        self.sampler = EpochSampler(len(train), where.rank, where.world, where.seed, shuffle=True)
        self.steps_per_epoch = max(1, math.ceil(len(self.sampler.inner) / where.batch_size))
        pin = where.device.type == "cuda"
        collate = arrays.collate_arrays
        self.train_loader: DataLoader | None = loader(
            arrays.ArrayFiles(train, input_shape), where.batch_size, self.workers, self.sampler, pin, True, collate
        )
        val_sampler = EpochSampler(len(val), where.rank, where.world, where.seed, shuffle=False) if val else None
        self.val_loader = (
            loader(
                arrays.ArrayFiles(val, input_shape), where.batch_size, self.workers, val_sampler, pin, False, collate
            )
            if val
            else None
        )

    def _to_device(self, batch: Collated) -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
        if not len(batch.labels):
            return torch.empty(0), batch.labels, batch.bad
        assert isinstance(batch.pixels, torch.Tensor)  # collate_arrays stacks every batch that has a sample
        x = (place(batch.pixels, self.where) - self.mean) / self.std
        return x, batch.labels.to(self.where.device, non_blocking=True), batch.bad

    def train_batches(self, epoch: int, start: int = 0) -> Batches:
        assert self.train_loader is not None  # not closed
        self.sampler.set_epoch(epoch, start * self.where.batch_size)
        return self._stream(self.train_loader, self._to_device)

    def val_batches(self) -> Batches:
        return self._stream(self.val_loader, self._to_device) if self.val_loader else iter(())

    def close(self) -> None:
        self.train_loader = self.val_loader = None


Source = InMemory | Folder | Shards | Arrays


def open_source(source: str, input_shape: tuple[int, ...], where: Where, default_classes: int) -> Source:
    """The run's data, checked before the model is built."""
    kind, _, path = source.partition(":")
    if where.on_bad_image not in ("fail", "skip"):
        raise UsageError(f"--on-bad-image must be skip or fail, not {where.on_bad_image!r}")
    if where.decode not in ("worker", "device"):
        raise UsageError(f"--decode must be worker or device, not {where.decode!r}")
    if kind == "imagefolder":
        if not path:
            raise UsageError("--data imagefolder:DIR needs a directory")
        path = expand(path)
        if not os.path.isdir(path):
            raise DataError(f"--data {source}: {path} is not a directory")
        return Folder(path, input_shape, where, f"imagefolder:{path}")
    if kind == "npy":
        if not path:
            raise UsageError("--data npy:DIR needs a directory of class folders of .npy files")
        path = expand(path)
        if not os.path.isdir(path):
            raise DataError(f"--data {source}: {path} is not a directory")
        return Arrays(path, input_shape, where, f"npy:{path}")
    if kind == "wds":
        if not path:
            raise UsageError("--data wds:PATTERN needs the shards, such as wds:/data/train-{000..099}.tar")
        return Shards(path if path.startswith("pipe:") else expand(path), input_shape, where, source, default_classes)
    return InMemory(source, input_shape, where)
