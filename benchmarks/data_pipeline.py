"""The streaming data pipeline: resdsl's against torchvision's reference, on the same JPEG folder.

The benchmark writes an image folder of random smooth images (default 5,000 JPEGs at about 500×375,
nothing downloaded), then times training batches ready in the main process as normalised float
tensors, with the same number of workers and the same batch size:

    resdsl       resdsl.train.sources.Folder: torchvision.io decoding, seeded RandomResizedCrop + flip
                 on uint8 tensors in the workers, uint8 batches, normalised in the main process
    torchvision  ImageFolder (PIL) + RandomResizedCrop(224) + RandomHorizontalFlip + PILToTensor +
                 ToDtype(float32, scale) + Normalize, in a DataLoader (the reference scripts' pipeline)

Alternating rounds; prints the images/s of both, their ratio (goal >= 1.0), and the peak resident
memory of the main process and its workers together (goal < 3 GB at any data set size: it does not
grow with the number of images).

    python benchmarks/data_pipeline.py [--images 5000] [--workers N] [--batch 64] [--rounds 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torchvision.transforms.v2 as T
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from resdsl.testing.images import image_folder
from resdsl.train.sources import Folder, Where
from resdsl.train.stream import default_workers


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes of `root` and its descendants, from /proc. RSS counts the pages the forked
    workers share with the main process once in each process; PSS divides them among the sharers."""
    rss = pss = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                fields = {
                    line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if line.startswith(("Rss:", "Pss:"))
                }
            rss, pss = rss + fields["Rss"], pss + fields["Pss"]
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                pending += [int(child) for child in f.read().split()]
        except (OSError, KeyError):
            continue
    return rss, pss


class PeakMemory:
    def __init__(self):
        self.rss = self.pss = 0
        self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True)

    def watch(self):
        while self.running:
            rss, pss = tree_memory(os.getpid())
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def generate(folder: str, images: int) -> None:
    """The images, written by another process (spawned: the timing process stays as small as a trainer's)."""
    classes = 10
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_one_class, [(folder, c, images // classes) for c in range(classes)]))


def _one_class(job: tuple[str, int, int]) -> None:
    folder, c, count = job
    image_folder(
        Path(folder) / f"part_{c}",
        classes=1,
        per_class=count,
        seed=c,
        sizes=[(375, 500), (500, 375), (333, 500), (400, 500), (375, 375)],
        quality=90,
    )


def reference(folder: str, batch: int, workers: int) -> DataLoader:
    transform = T.Compose(
        [
            T.RandomResizedCrop(224, antialias=True),
            T.RandomHorizontalFlip(),
            T.PILToTensor(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    return DataLoader(
        ImageFolder(folder, transform),
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers else None,
    )


def timed(batches, limit: int) -> float:
    """images/s over the batches after the first (the workers' start-up is not the pipeline's rate)."""
    count, start = 0, None
    for i, (_x, y) in enumerate(batches):
        if i == 0:
            start = time.perf_counter()
            continue
        count += len(y)
        if count >= limit:
            break
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=1500, help="images timed per round")
    parser.add_argument("--dir", default=None, help="an existing image folder to read instead of generating one")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the main process only collates and normalises, in both pipelines
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir
        if folder is None:
            folder = str(Path(scratch) / "images")
            started = time.perf_counter()
            generate(folder, args.images)
            size = sum(f.stat().st_size for f in Path(folder).rglob("*.jpg"))
            print(
                f"wrote {args.images} JPEGs (about 500x375, {size / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - started:.0f} s"
            )
        where = Where(torch.device("cpu"), 0, 1, 0, args.batch, False, args.workers)
        rates = {"resdsl": [], "torchvision": []}
        peaks = {"resdsl": (0, 0), "torchvision": (0, 0)}
        for round_ in range(args.rounds):
            for name in rates:  # each round starts its own workers (not timed) and stops them after
                with PeakMemory() as memory:
                    if name == "resdsl":
                        pipeline = Folder(folder, (3, 224, 224), where, "imagefolder")
                        batches = pipeline.train_batches(round_)
                    else:
                        pipeline = reference(folder, args.batch, args.workers)
                        batches = iter(pipeline)
                    rates[name].append(timed(batches, args.per_round))
                    del batches, pipeline
                    gc.collect()
                peaks[name] = max(peaks[name], (memory.rss, memory.pss))
    where_ = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}"
    )
    print(f"training data pipeline, batch {args.batch}, {args.workers} workers, 224x224 crops, {where_}:")
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name in rates:
        rss, pss = peaks[name]
        print(
            f"  {name:<12} {median[name]:8.1f} images/s   peak memory of all processes: RSS {rss / 2**30:.2f} GB, "
            f"PSS {pss / 2**30:.2f} GB"
        )
    print(f"  ratio resdsl / torchvision: {median['resdsl'] / median['torchvision']:.3f}  (goal >= 1.0)")
    print(f"  resdsl peak RSS {peaks['resdsl'][0] / 2**30:.2f} GB (goal < 3 GB; it does not grow with the images)")


if __name__ == "__main__":
    main()
