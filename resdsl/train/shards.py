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
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import RunError as DataError
from .decode import MAX_IMAGE_BYTES
from .stream import BadImage, Item, Transform, load_item

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
SHUFFLE_BUFFER = 1000


# A pattern may name at most this many shards: the names are counted from the pattern before any is made
# (`{0..9999999999}` would be 10^10 strings).
MAX_SHARDS = 1_000_000
# `cls` is a class index below this (a classifier of a million classes is already larger than most networks).
MAX_CLASSES = 1_000_000
_INT_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)(?:\.\.-?(\d+))?$")
_CHAR_RANGE = re.compile(r"^([A-Za-z])\.\.([A-Za-z])(?:\.\.-?(\d+))?$")


def count_names(pattern: str) -> int:
    """How many strings `braceexpand.braceexpand(pattern)` yields, without making them (its grammar: a
    product of literals and {...} groups; a group is a range, a comma list of patterns, or a pattern)."""
    total, start, pos, depth = 1, 0, 0, 0
    while pos < len(pattern):
        if pattern[pos] == "\\":
            pos += 2
            continue
        if pattern[pos] == "{":
            if depth == 0:
                start = pos
            depth += 1
        elif pattern[pos] == "}":
            depth -= 1
            if depth == 0:
                total *= _count_group(pattern[start + 1 : pos])
        pos += 1
    if depth != 0:
        raise ValueError(f"unbalanced braces in {pattern!r}")
    return total


def _count_group(expr: str) -> int:
    if match := _INT_RANGE.match(expr):
        first, last, step = int(match[1]), int(match[2]), int(match[3] or 1) or 1
        return abs(last - first) // step + 1
    if match := _CHAR_RANGE.match(expr):
        import braceexpand

        return len(list(braceexpand.braceexpand("{" + expr + "}")))  # at most 52 letters
    items, start, pos, depth = [], 0, 0, 0
    while pos < len(expr):
        if expr[pos] == "\\":
            pos += 2
            continue
        if expr[pos] == "{":
            depth += 1
        elif expr[pos] == "}":
            depth -= 1
        elif expr[pos] == "," and depth == 0:
            items.append(expr[start:pos])
            start = pos + 1
        pos += 1
    if depth != 0 or not items:  # not a list: the braces stay, around a pattern
        return count_names(expr)
    return sum(count_names(item) for item in items + [expr[start:]])


def expand(pattern: str) -> list[str]:
    """The shard URLs of a brace pattern (`train-{000..099}.tar`), as webdataset expands them; at most
    MAX_SHARDS, counted before any name is made."""
    import braceexpand

    parts = pattern.split("::")
    try:
        names = sum(count_names(part) for part in parts)
    except ValueError as exc:
        raise DataError(f"--data wds:{pattern}: {exc}") from None
    if names > MAX_SHARDS:
        raise DataError(
            f"--data wds:{pattern}: the pattern names {names:,} shards, more than the {MAX_SHARDS:,} a run takes"
        )
    urls = [url for part in parts for url in braceexpand.braceexpand(part)]
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


def class_of(data: bytes, classes: int | None) -> tuple[int | None, str | None]:
    """(label, None) for a `cls` member that is a class index in 0..classes-1 (0..MAX_CLASSES-1 when the
    number of classes is not known yet), else (None, why not)."""
    if len(data) > 32:
        return None, f"the `cls` member has {len(data):,} bytes, not a class index (a decimal integer)"
    try:
        label = int(data.decode().strip())
    except (ValueError, UnicodeDecodeError):
        return None, f"the `cls` member {data[:32]!r} is not a class index (a decimal integer)"
    bound = MAX_CLASSES if classes is None else classes
    if not 0 <= label < bound:
        what = f"{classes} classes" if classes is not None else f"the bound of {MAX_CLASSES:,} classes"
        return None, f"the `cls` member {label} is outside 0..{bound - 1} ({what})"
    return label, None


def local(url: str) -> bool:
    return not url.startswith("pipe:") and "://" not in url


def check_local(urls: list[str], source: str) -> None:
    """Shards on disk are regular files (a FIFO or a device would be read forever); others are not checked."""
    for url in urls:
        if local(url) and os.path.exists(url) and not os.path.isfile(url):
            raise DataError(f"--data {source}: the shard {url} is not a regular file")


def count(urls: list[str], source: str, split: bool, report=None) -> ShardCount:
    """Read the tar headers (and the tiny `cls` members) of local shards: samples per split, and classes.
    A sample whose `cls` is not a class index goes to `report(BadImage)` (by default: an error) and is
    not counted."""

    def fail(bad: BadImage) -> None:
        raise DataError(f"--data {source}: cannot read the {bad.kind} {bad.path}: {bad.reason}")

    report = report or fail
    train = val = 0
    top = -1
    for url in urls:
        if not os.path.isfile(url):
            raise DataError(
                f"--data {source}: {url} is not a file (shards elsewhere than on disk need --epoch-samples N)"
            )
        try:
            with tarfile.open(url) as tar:
                keys: dict[str, bool] = {}  # the keys with an image, in order
                unusable: set[str] = set()  # the keys with a bad `cls`
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if ext.lower() in IMAGE_KEYS:
                        keys[key] = True
                    elif ext == "cls":
                        file = tar.extractfile(member) if member.size <= 32 else None
                        data = file.read() if file is not None else b"?" * member.size  # None: not a file
                        label, problem = class_of(data, None)
                        if problem:
                            report(BadImage(f"{url}:{key}", problem, "sample"))
                            unusable.add(key)
                        else:
                            assert label is not None  # class_of gives a label or a problem
                            top = max(top, label)
        except (tarfile.TarError, OSError, ValueError) as exc:
            raise DataError(f"--data {source}: cannot read the shard {url}: {exc}") from None
        for key in keys:
            if key in unusable:
                continue
            if split and held_out(key):
                val += 1
            else:
                train += 1
    if train == 0:
        raise DataError(f"--data {source}: the shards hold no samples with an image ({', '.join(IMAGE_KEYS)})")
    return ShardCount(train, val, top + 1)


class ShardStream(IterableDataset):
    """The samples of this rank's shards for one epoch (set before the workers start), as `Item`s."""

    def __init__(
        self,
        urls: list[str],
        transform: Transform,
        quota: int | None,
        rank: int,
        world: int,
        split: str,
        epoch: int = 0,
        classes: int | None = None,
    ):
        self.urls, self.transform, self.quota = urls, transform, quota
        self.rank, self.world, self.split, self.epoch = rank, world, split, epoch
        self.classes = classes  # a `cls` outside 0..classes-1 makes the sample unusable (None: 0..MAX_CLASSES-1)

    def worker_quota(self, worker: int, workers: int) -> int:
        assert self.quota is not None  # asked only of a stream with a quota
        return self.quota // workers + (worker < self.quota % workers)

    def __iter__(self) -> Iterator[Item]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        order = list(self.urls)
        if self.transform.train:
            random.Random(f"{self.transform.seed}/{self.epoch}").shuffle(order)
        mine = (
            order[self.rank :: self.world][worker::workers] or order[(self.rank * workers + worker) % len(order) :][:1]
        )
        quota = self.worker_quota(worker, workers) if self.quota is not None else None
        produced, passes = 0, 0
        while True:  # a training epoch goes round this worker's shards until its quota is met
            samples = self._samples(mine)
            if self.transform.train:
                samples = _shuffled(
                    samples, random.Random(f"{self.transform.seed}/{self.epoch}/{self.rank}/{worker}/{passes}")
                )
            before = produced
            for key, data, label, name, problem in samples:
                if quota is not None and produced >= quota:
                    return
                if problem:
                    yield Item(None, label, 0, name, problem)
                    continue
                assert data is not None  # a sample without a problem has its bytes
                produced += 1
                yield load_item(_given(data), name, label, zlib.crc32(key.encode()), self.epoch, self.transform)
            passes += 1
            if quota is None or produced == before:
                return

    def _samples(self, urls: list[str]) -> Iterator[tuple[str, torch.Tensor | None, int, str, BadImage | None]]:
        """(key, image bytes, label, name, problem) of one pass over `urls`, in this split."""
        from webdataset.tariterators import tarfile_samples

        broken: list[str] = []
        where = urls[0] if len(urls) == 1 else f"one of {', '.join(urls[:3])}{', ...' if len(urls) > 3 else ''}"

        def handler(exc: Exception) -> bool:  # a broken shard: reported by the consumer, then skipped
            broken.append(f"{type(exc).__name__}: {exc}")
            return True

        for sample in tarfile_samples(({"url": url} for url in urls), handler=handler):
            while broken:
                yield "", None, 0, where, BadImage(where, broken.pop(), "shard")
            key = sample["__key__"]
            if self.split != "all" and held_out(key) != (self.split == "val"):
                continue
            name = f"{sample.get('__url__', '?')}:{key}"
            image = next((sample[k] for k in sample if k.lower() in IMAGE_KEYS), None)
            if not isinstance(sample.get("cls"), bytes):
                yield key, None, 0, name, BadImage(name, "no `cls` member (the class, a decimal integer)", "sample")
                continue
            label, problem = class_of(sample["cls"], self.classes)
            if problem:
                yield key, None, 0, name, BadImage(name, problem, "sample")
                continue
            assert label is not None  # class_of gives a label or a problem
            if image is None:
                yield key, None, label, name, BadImage(name, f"no image member ({', '.join(IMAGE_KEYS)})", "sample")
                continue
            if len(image) > MAX_IMAGE_BYTES:
                yield (
                    key,
                    None,
                    label,
                    name,
                    BadImage(
                        name,
                        f"the image has {len(image):,} bytes, over the bound of {MAX_IMAGE_BYTES:,} for an image file",
                    ),
                )
                continue
            yield key, torch.frombuffer(bytearray(image), dtype=torch.uint8), label, name, None
        while broken:
            yield "", None, 0, where, BadImage(where, broken.pop(), "shard")


def _given(data: torch.Tensor) -> Callable[[], torch.Tensor]:
    """A `read` for load_item of bytes already read."""
    return lambda: data


def _shuffled(samples: Iterator, rng: random.Random) -> Iterator:
    """A shuffle buffer, as webdataset's `shuffle(n)`, drawing from a seeded generator."""
    buffer = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) >= SHUFFLE_BUFFER:
            yield buffer.pop(rng.randrange(len(buffer)))
    while buffer:
        yield buffer.pop(rng.randrange(len(buffer)))
