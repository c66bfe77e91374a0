"""The standard ImageNet transforms, seeded per sample, on uint8 tensors (CPU in workers or on the GPU).

Training: RandomResizedCrop (scale 0.08–1, ratio 3/4–4/3) and a horizontal flip with p = 0.5, as
torchvision's reference scripts. Validation: resize so the image covers size / 0.875 (256 for 224),
then a centre crop. Both stay uint8 (a quarter of the bytes of float32 through the workers'
shared memory); `normalize` makes floats on the training device.

Every random number of a sample comes from a generator seeded with (seed, epoch, sample): the
same batch whatever the number of workers, the same epoch after a restart, and the same crop
whether the image is decoded in a worker or on the GPU.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
VAL_CROP_FRACTION = 0.875  # torchvision: Resize(256) then CenterCrop(224)


def sample_generator(seed: int, epoch: int, sample: int) -> torch.Generator:
    """A generator for one sample of one epoch: independent of workers, batches and restarts."""
    mixed = ((seed * 1_000_003 + epoch) * 10_000_019 + sample) % (2**63 - 1)
    return torch.Generator().manual_seed(mixed)


def random_crop_box(height: int, width: int, g: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w): torchvision's RandomResizedCrop.get_params, drawing from `g`."""
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        draws = torch.rand(2, generator=g, dtype=torch.float64).tolist()
        target_area = area * (CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * draws[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[1])
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=g))
            left = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return top, left, h, w
    # fallback: the whole image, its aspect clamped to the ratio range, centred
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif in_ratio > CROP_RATIO[1]:
        h, w = height, int(round(height * CROP_RATIO[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_transform(image: torch.Tensor, size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
    """(C, H, W) uint8 of any size -> (C, size) uint8: random resized crop, then a coin for the flip."""
    top, left, h, w = random_crop_box(image.shape[-2], image.shape[-1], g)
    out = TF.resized_crop(image, top, left, h, w, list(size), antialias=True)
    if float(torch.rand(1, generator=g)) < 0.5:
        out = TF.horizontal_flip(out)
    return out


def val_transform(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(C, H, W) uint8 -> (C, size) uint8: scale to cover size / 0.875, keeping the aspect, and crop the centre."""
    height, width = image.shape[-2:]
    if size[0] == size[1]:  # torchvision's Resize(int): the shorter side exact, the longer in proportion
        short = int(size[0] / VAL_CROP_FRACTION)
        resized = (short, int(short * width / height)) if height <= width else (int(short * height / width), short)
    else:
        scale = max(size[0] / VAL_CROP_FRACTION / height, size[1] / VAL_CROP_FRACTION / width)
        resized = (max(size[0], round(height * scale)), max(size[1], round(width * scale)))
    out = TF.resize(image, list(resized), antialias=True)
    return TF.center_crop(out, list(size))


def normalize(batch: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) uint8 on any device -> float32 with the ImageNet mean and std (the mean of them for 1 channel)."""
    mean = torch.tensor(IMAGENET_MEAN if channels == 3 else (sum(IMAGENET_MEAN) / 3,), device=batch.device) * 255
    std = torch.tensor(IMAGENET_STD if channels == 3 else (sum(IMAGENET_STD) / 3,), device=batch.device) * 255
    return (batch.float() - mean[:, None, None]) / std[:, None, None]
