"""Folders of NumPy arrays streamed from disk, for networks of any input rank.

    npy:DIR   DIR/<class>/*.npy, or DIR/train/<class>/*.npy and DIR/val/<class>/*.npy
              (the layout of imagefolder:DIR, found the same way by stream.folder_samples)

Each file holds one sample of the spec's input shape: C (a vector), C×L (a sequence), C×H×W (an
image) or C×D×H×W (a volume, a clip), or the same without the channel axis when C is 1. Any real or
integer dtype (bool included) becomes float32; Fortran order and either byte order are read as NumPy
reads them.

A file is read when its sample is drawn: its header first (shape and dtype checked before a byte of
data is touched), then its data through `np.memmap`, copied once into a float32 tensor. Memory is
O(batch × workers), as for image folders. Arrays are used as they are stored (no crop, no flip: what
would be meaningful differs between signals, volumes and clips), then standardised on the training
device by one mean and one standard deviation, measured at start-up on a few training files chosen by
the seed (the in-memory sources standardise by the training data's mean and std the same way).

A file that cannot be used (not an array, truncated, the wrong shape or dtype, NaN or infinite
values) never raises in a worker: it comes back as a BadImage of kind "array", which the main process
reports with its path or skips, as `--on-bad-image` says. The first file of each class is checked at
start-up, so that a folder of the wrong shape stops the run before the model is built.
"""

from __future__ import annotations

import math
import os
import stat
from typing import IO

import numpy as np
import torch
from torch.utils.data import Dataset

from .decode import file_type, reason
from .stream import BadImage, Collated, Item, collate

EXTENSIONS = (".npy",)
# Files standardisation is measured on: enough for a mean and a std to a few per cent, few enough to
# read in a second or two at start-up even for volumes (32 × 3×64×64×64 float32 is 100 MB).
STATS_FILES = 32
NUMERIC = "biuf"  # bool, signed and unsigned integers, floats: what becomes float32 without loss of meaning
KINDS = {
    "c": "complex numbers",
    "O": "Python objects",
    "U": "text",
    "S": "bytes",
    "V": "records",
    "M": "dates",
    "m": "time spans",
}


class ArrayError(ValueError):
    """Why a file is not a sample of the input shape; its message is the whole reason."""


def show(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"


def describe(input_shape: tuple[int, ...]) -> str:
    """`12x1000 (C x L, a sequence)`: the input shape and what a sample of it is."""
    what = {1: "a vector", 2: "C x L, a sequence", 3: "C x H x W, an image", 4: "C x D x H x W, a volume or clip"}
    return f"{show(input_shape)} ({what.get(len(input_shape), f'{len(input_shape) - 1} spatial axes')})"


def accepted(input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shapes a file may have: the input's, or without its channel axis when C is 1 (not for a vector)."""
    if len(input_shape) > 1 and input_shape[0] == 1:
        return [input_shape, input_shape[1:]]
    return [input_shape]


def check_header(shape: tuple[int, ...], dtype: np.dtype, input_shape: tuple[int, ...]) -> None:
    if dtype.kind not in NUMERIC:
        what = KINDS.get(dtype.kind, f"dtype {dtype}")
        raise ArrayError(f"the array holds {what} (dtype {dtype}): save real or integer numbers")
    if shape not in accepted(input_shape):
        if len(shape) > 1 and any(sorted(shape) == sorted(ok) for ok in accepted(input_shape)):
            hint = ": the same sizes in another order; the channel axis comes first"
        elif shape == input_shape[1:]:
            hint = ": without its channel axis, which only a 1-channel input may leave out"
        elif len(accepted(input_shape)) > 1:
            hint = f" (or {show(input_shape[1:])}, without the channel axis)"
        else:
            hint = ""
        raise ArrayError(f"the array is {show(shape)}, the spec's input is {describe(input_shape)}{hint}")


def _header(f: IO[bytes], size: int) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, Fortran order, dtype, data offset) of an open .npy file of `size` bytes, its data unread."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise ArrayError(
            f"not a NumPy .npy file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    offset = f.tell()
    if dtype.kind in NUMERIC:  # others are refused by check_header, their size is meaningless
        needed = offset + math.prod(shape) * dtype.itemsize
        if size < needed:
            raise ArrayError(f"the file is truncated: {size:,} bytes, of the {needed:,} its header promises")
    return tuple(shape), fortran, dtype, offset


def _open(path: str) -> tuple[IO[bytes], int]:
    """The file opened without blocking (a FIFO would wait for a writer), if it is a regular file; and its size."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    f = open(fd, "rb", closefd=True)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        f.close()
        raise ArrayError(f"not a regular file ({file_type(info.st_mode)})")
    return f, info.st_size


def peek(path: str, input_shape: tuple[int, ...]) -> None:
    """Check one file's header against the input shape, reading no data (start-up)."""
    f, size = _open(path)
    with f:
        shape, _, dtype, _ = _header(f, size)
    check_header(shape, dtype, input_shape)


def read_array(path: str, input_shape: tuple[int, ...]) -> torch.Tensor:
    """One file -> a float32 tensor of `input_shape`, through a read-only memory map of its data."""
    f, size = _open(path)
    with f:
        shape, fortran, dtype, offset = _header(f, size)
        check_header(shape, dtype, input_shape)
        mapped = np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        values = np.array(mapped, dtype=np.float32, order="C")  # the one copy: native float32, C order
        del mapped
    if not np.isfinite(values).all():
        raise ArrayError("the array holds NaN or infinite values")
    return torch.from_numpy(values).reshape(input_shape)  # the channel axis back when the file has none


def why(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ArrayError) else reason(exc)


class ArrayFiles(Dataset):
    """(path, label) pairs; item (epoch, index) is that file's array (the same in every epoch)."""

    def __init__(self, samples: list[tuple[str, int]], input_shape: tuple[int, ...]):
        self.samples, self.input_shape = samples, input_shape

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> Item:
        _, index = key
        path, label = self.samples[index]
        try:
            return Item(read_array(path, self.input_shape), label, index, path, None)
        except Exception as exc:  # noqa: BLE001 - every unusable file is reported the same way, with its path
            return Item(None, label, index, path, BadImage(path, why(exc), "array"))


def collate_arrays(items: list[Item]) -> Collated:
    """stream.collate, with the arrays of every rank stacked: (B, C, *spatial) float32."""
    batch = collate(items)
    if isinstance(batch.pixels, list) and batch.pixels:
        batch = batch._replace(pixels=torch.stack(batch.pixels))
    return batch


def first_of_each_class(samples: list[tuple[str, int]]) -> list[str]:
    """The first file of each class folder, by name (the order in which it is listed)."""
    first: dict[int, str] = {}
    for path, label in samples:
        first[label] = min(first.get(label, path), path)
    return [first[label] for label in sorted(first)]


def statistics(samples: list[tuple[str, int]], input_shape: tuple[int, ...], seed: int) -> tuple[float, float]:
    """(mean, std) over up to STATS_FILES training files drawn by the seed; files that cannot be read are
    left to the epochs to report. (0, 1) when none can be read."""
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
    total, squares, count = 0.0, 0.0, 0
    for i in order[:STATS_FILES]:
        try:
            values = read_array(samples[i][0], input_shape).double()
        except (ValueError, OSError):
            continue
        total, squares, count = total + float(values.sum()), squares + float((values**2).sum()), count + values.numel()
    if count == 0:
        return 0.0, 1.0
    mean = total / count
    std = math.sqrt(max(squares / count - mean**2, 0.0))
    return mean, std if std > 1e-6 else 1.0  # a constant signal: centred only
