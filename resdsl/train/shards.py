"""WebDataset tar shards: `--data wds:PATTERN`, read through the `webdataset` package.

    wds:/data/imagenet/train-{000000..001281}.tar
    wds:"pipe:curl -s https://host/train-{0000..0099}.tar"   (with --epoch-samples N)

A sample is the tar members sharing a key: an image (`jpg`, `jpeg`, `png` or `webp`) and its class
(`cls`, a decimal integer). Without `--val-data`, one sample in five (by a hash of its key) is
held out for validation.

Determinism: the shard order of epoch e is a permutation seeded by (seed, e); each rank takes every
world-th shard and each worker every workers-th of those; a shuffle buffer of 1,000 samples is
seeded by (seed, e, rank, worker); crops by (seed, e, sample). DataLoader interleaves its workers in a
fixed order, so an epoch replays exactly after a restart.

Every rank must take the same number of steps (DDP waits for all of them), so each rank's epoch
is a fixed quota of samples, total // world, split between its workers; a worker that runs out of
shards starts its list again.
"""

from __future__ import annotations

import os
import random
import tarfile
import zlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import RunError as DataError
from .stream import BadImage, Item, Transform, load_item

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
SHUFFLE_BUFFER = 1000


def expand(pattern: str) -> list[str]:
    """The shard URLs of a brace pattern (`train-{000..099}.tar`), as webdataset expands them."""
    import braceexpand
    urls = [url for part in pattern.split("::") for url in braceexpand.braceexpand(part)]
    if not urls:
        raise DataError(f"--data wds:{pattern}: the pattern names no shards")
    return urls


def held_out(key: str) -> bool:
    return zlib.crc32(key.encode()) % 5 == 0


@dataclass(frozen=True)
class ShardCount:
    train: int
    val: int
    classes: int


def count(urls: list[str], source: str, split: bool) -> ShardCount:
    """Read the tar headers (and the tiny `cls` members) of local shards: samples per split, and classes."""
    train = val = 0
    top = -1
    for url in urls:
        if not os.path.isfile(url):
            raise DataError(f"--data {source}: {url} is not a file (shards elsewhere than on disk need "
                            "--epoch-samples N)")
        try:
            with tarfile.open(url) as tar:
                keys: dict[str, bool] = {}
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if ext.lower() in IMAGE_KEYS:
                        keys[key] = True
                    elif ext == "cls":
                        top = max(top, int(tar.extractfile(member).read().decode().strip()))
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise DataError(f"--data {source}: cannot read the shard {url}: {exc}") from None
        for key in keys:
            if split and held_out(key):
                val += 1
            else:
                train += 1
    if train == 0:
        raise DataError(f"--data {source}: the shards hold no samples with an image ({', '.join(IMAGE_KEYS)})")
    return ShardCount(train, val, top + 1)


class ShardStream(IterableDataset):
    """The samples of this rank's shards for one epoch (set before the workers start), as `Item`s."""

    def __init__(self, urls: list[str], transform: Transform, quota: int | None, rank: int, world: int, split: str,
                 epoch: int = 0):
        self.urls, self.transform, self.quota = urls, transform, quota
        self.rank, self.world, self.split, self.epoch = rank, world, split, epoch

    def worker_quota(self, worker: int, workers: int) -> int:
        return self.quota // workers + (worker < self.quota % workers)

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = list(self.urls)
        if self.transform.train:
            random.Random(f"{self.transform.seed}/{self.epoch}").shuffle(order)
        mine = order[self.rank::self.world][worker::workers] or order[(self.rank * workers + worker) % len(order):][:1]
        quota = self.worker_quota(worker, workers) if self.quota is not None else None
        produced, passes = 0, 0
        while True:  # a training epoch goes round this worker's shards until its quota is met
            samples = self._samples(mine)
            if self.transform.train:
                samples = _shuffled(samples, random.Random(
                    f"{self.transform.seed}/{self.epoch}/{self.rank}/{worker}/{passes}"))
            before = produced
            for key, data, label, name, problem in samples:
                if quota is not None and produced >= quota:
                    return
                if problem:
                    yield Item(None, label, 0, name, BadImage(name, problem))
                    continue
                produced += 1
                yield load_item(lambda: data, name, label, zlib.crc32(key.encode()), self.epoch, self.transform)
            passes += 1
            if quota is None or produced == before:
                return

    def _samples(self, urls: list[str]) -> Iterator[tuple[str, torch.Tensor | None, int, str, str | None]]:
        """(key, image bytes, label, name, problem) of one pass over `urls`, in this split."""
        from webdataset.tariterators import tarfile_samples
        broken: list[str] = []

        def handler(exc: Exception) -> bool:  # a broken shard: reported by the consumer, then skipped
            broken.append(f"{type(exc).__name__}: {exc}")
            return True
        for sample in tarfile_samples(({"url": url} for url in urls), handler=handler):
            while broken:
                yield "", None, 0, "a shard of " + ", ".join(urls[:3]), broken.pop()
            key = sample["__key__"]
            if self.split != "all" and held_out(key) != (self.split == "val"):
                continue
            name = f"{sample.get('__url__', '?')}:{key}"
            image = next((sample[k] for k in sample if k.lower() in IMAGE_KEYS), None)
            try:
                label = int(sample["cls"].decode().strip())
            except (KeyError, ValueError, UnicodeDecodeError, AttributeError):
                yield key, None, 0, name, "no readable `cls` member (the class, a decimal integer)"
                continue
            if image is None:
                yield key, None, label, name, f"no image member ({', '.join(IMAGE_KEYS)})"
                continue
            yield key, torch.frombuffer(bytearray(image), dtype=torch.uint8), label, name, None
        while broken:
            yield "", None, 0, "a shard of " + ", ".join(urls[:3]), broken.pop()


def _shuffled(samples: Iterator, rng: random.Random) -> Iterator:
    """A shuffle buffer, as webdataset's `shuffle(n)`, drawing from a seeded generator."""
    buffer = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= SHUFFLE_BUFFER:
            yield buffer.pop(rng.randrange(len(buffer)))
    while buffer:
        yield buffer.pop(rng.randrange(len(buffer)))
