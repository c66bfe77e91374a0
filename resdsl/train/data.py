"""Training data held in memory: real images from a package or from disk, never downloaded.

    digits           scikit-learn's 1,797 handwritten digits (8×8), split train/val with a fixed seed
    cifar10:DIR      the CIFAR-10 python batches in DIR (torchvision.datasets.CIFAR10, download=False)
    synthetic        random tensors of the spec's input shape (any rank), for throughput

Image folders, WebDataset shards and folders of .npy arrays are streamed instead (stream.py,
shards.py, arrays.py). DIR may start with `~`: the shell does not expand it after `cifar10:`.

Every source here ends as tensors in memory shaped for the spec's input (resized, channels
replicated), so batching and augmentation are plain tensor ops seeded per epoch and step: that is
what makes a resumed run bitwise identical. Digits and CIFAR-10 are images: a network whose input
is a vector takes them flattened, one of sequences or volumes refuses them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import RunError as DataError  # missing or malformed data, a bad device: exit 1
from ..files import expand
from ..library import UsageError

# How many examples a source holds, where that is known without reading it (for the memory estimate).
EXAMPLES = {"digits": 1797, "synthetic": 2048, "cifar10": 60000}
# Synthetic data holds at most this much: 2,048 examples up to ImageNet's 3x224x224 (1.2 GB of float32),
# fewer of larger inputs (volumes, clips: 512 of r3d_18's 3x16x112x112), but never fewer than
# SYNTHETIC_MIN, which leaves validation examples after the 80/20 split.
SYNTHETIC_BYTES = 2048 * 3 * 224 * 224 * 4
SYNTHETIC_MIN = 20
# The optional packages a source needs beyond torch, with the module to import and the pip name.
PACKAGES = {"digits": ("sklearn", "scikit-learn"), "npy": ("numpy", "numpy")}


def require(source: str) -> None:
    """Before any work: the package `source` needs is importable, or one usage error naming it."""
    kind = source.partition(":")[0]
    if kind not in PACKAGES:
        return
    module, name = PACKAGES[kind]
    try:
        __import__(module)
    except ImportError:
        raise UsageError(
            f"--data {kind} needs {name}, which is not installed: pip install {name} (or pip install 'resdsl[train]')"
        ) from None


def examples(source: str, input_shape: tuple[int, ...]) -> int | None:
    kind = source.partition(":")[0]
    return synthetic_count(input_shape) if kind == "synthetic" else EXAMPLES.get(kind)


def synthetic_count(input_shape: tuple[int, ...]) -> int:
    per_example = 4 * math.prod(input_shape)
    return max(SYNTHETIC_MIN, min(EXAMPLES["synthetic"], SYNTHETIC_BYTES // per_example))


@dataclass
class Data:
    train_x: torch.Tensor  # (N, *input shape) float: (N, D), (N, C, L), (N, C, H, W) or (N, C, D, H, W)
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: int
    name: str
    augment: bool  # pad-4 random crop + flip, for 32×32 images


def load_data(source: str, input_shape: tuple[int, ...], seed: int) -> Data:
    kind, _, path = source.partition(":")
    path = expand(path) if path else path
    if kind == "digits":
        images, labels = _digits()
        return _finish(images, labels, None, None, input_shape, seed, "digits", augment=False)
    if kind == "synthetic":  # uniform noise with random labels: the same steps as real data, nothing to learn
        g = torch.Generator().manual_seed(seed)
        count = synthetic_count(input_shape)
        images = torch.rand((count, *input_shape), generator=g)
        labels = torch.randint(0, 10, (count,), generator=g)
        return _finish(images, labels, None, None, input_shape, seed, "synthetic", augment=False)
    if kind == "cifar10":
        if not path:
            raise UsageError(f"--data {kind}:DIR needs a directory")
        if not os.path.isdir(path):
            raise DataError(f"--data {source}: {path} is not a directory")
        train, val = _cifar10(path)
        augment = len(input_shape) == 3 and input_shape[-1] == 32
        return _finish(*train, *val, input_shape, seed, f"{kind}:{path}", augment=augment)
    raise UsageError(
        f"unknown --data {source!r}: use digits, cifar10:DIR, imagefolder:DIR, wds:PATTERN, npy:DIR or synthetic"
    )


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8) in [0, 1]
    return images, torch.tensor(digits.target, dtype=torch.int64)


def _cifar10(path: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    from torchvision.datasets import CIFAR10

    try:
        train = CIFAR10(path, train=True, download=False)
        val = CIFAR10(path, train=False, download=False)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(
            f"--data cifar10:{path}: not the CIFAR-10 python batches "
            f"(cifar-10-batches-py/data_batch_1..5, test_batch): {exc}"
        ) from None

    def tensors(ds: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor(ds.data).permute(0, 3, 1, 2).float() / 255.0
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    return tensors(train), tensors(val)


def _finish(train_x, train_y, val_x, val_y, input_shape, seed, name, augment) -> Data:
    if val_x is None or len(val_x) == 0:  # split 80/20 with a fixed seed
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
        cut = int(0.8 * len(order))
        train_x, train_y, val_x, val_y = (
            train_x[order[:cut]],
            train_y[order[:cut]],
            train_x[order[cut:]],
            train_y[order[cut:]],
        )
    mean, std = train_x.mean(), train_x.std().clamp_min(1e-6)
    fit = lambda x: (_fit(x, input_shape, name) - mean) / std  # noqa: E731
    classes = int(max(train_y.max(), val_y.max())) + 1
    return Data(fit(train_x), train_y, fit(val_x), val_y, classes, name, augment)


def _fit(images: torch.Tensor, input_shape: tuple[int, ...], name: str) -> torch.Tensor:
    """Resize to the spec's H×W and replicate (or average) channels to its C; flatten for a vector input.
    Data of the input's shape (synthetic) is kept as it is; images for a sequence or volume are refused."""
    if images.shape[1:] == input_shape:
        return images.contiguous()
    if len(input_shape) == 1:
        flat = images.reshape(len(images), -1)
        if flat.shape[1] != input_shape[0]:
            raise DataError(
                f"the data has {flat.shape[1]} values per example, the spec's input is a vector of "
                f"{input_shape[0]}: use --input {flat.shape[1]}"
            )
        return flat
    if len(input_shape) != 3:
        from .arrays import describe

        raise DataError(
            f"--data {name} holds {'x'.join(map(str, images.shape[2:]))} images; the spec's input is "
            f"{describe(input_shape)}: train it on --data npy:DIR (or synthetic)"
        )
    c, h, w = input_shape
    if images.shape[2:] != (h, w):
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False)
    if images.shape[1] != c:
        images = images.mean(1, keepdim=True).expand(-1, c, -1, -1) if c != 1 else images.mean(1, keepdim=True)
    return images.contiguous()


def augment_batch(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The paper's CIFAR augmentation: pad 4, random 32×32 crop, random horizontal flip."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=g)
    dy = torch.randint(0, 9, (n,), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)  # (n, w)
    cols = torch.where(flip.to(x.device)[:, None], cols.flip(1), cols)
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
