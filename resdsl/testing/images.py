"""Image folders and WebDataset shards made on the spot, for tests and benchmarks (nothing downloaded).

    from resdsl.testing.images import image_folder, shards
    image_folder(tmp_path / "pets", classes=3, per_class=20, sizes=[(375, 500), (500, 375), (64, 300)])
    shards(tmp_path / "pets", tmp_path / "shards", per_shard=16)   # -> the wds: pattern

Images are smooth random fields (a few low-frequency waves per channel plus noise), so JPEG
encodes them at realistic sizes and rates, not as white noise.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch


def random_image(height: int, width: int, g: torch.Generator, channels: int = 3) -> torch.Tensor:
    """(channels, height, width) uint8: low-frequency waves and a little noise."""
    ys = torch.linspace(0, 1, height)[:, None]
    xs = torch.linspace(0, 1, width)[None, :]
    planes = []
    for _ in range(channels):
        fy, fx, phase = (torch.rand(3, generator=g) * torch.tensor([6.0, 6.0, 2 * math.pi])).tolist()
        plane = 0.5 + 0.35 * torch.sin(2 * math.pi * (fy * ys + fx * xs) + phase)
        planes.append(plane + 0.08 * torch.randn(height, width, generator=g))
    return (torch.stack(planes).clamp(0, 1) * 255).to(torch.uint8)


def image_folder(
    root: str | os.PathLike,
    classes: int = 3,
    per_class: int = 8,
    sizes: list[tuple[int, int]] | None = None,
    seed: int = 0,
    quality: int = 90,
    png_every: int = 0,
    gray_every: int = 0,
) -> list[Path]:
    """root/<class>/<i>.jpg (a PNG every `png_every`-th file, a grayscale JPEG every `gray_every`-th),
    sizes cycling through `sizes` (H, W); the files written."""
    from torchvision.io import encode_jpeg, encode_png

    g = torch.Generator().manual_seed(seed)
    sizes = sizes or [(48, 64), (64, 48), (40, 120), (96, 96)]
    written = []
    for c in range(classes):
        folder = Path(root) / f"class_{c:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            height, width = sizes[(c * per_class + i) % len(sizes)]
            gray = gray_every and i % gray_every == gray_every - 1
            image = random_image(height, width, g, 1 if gray else 3)
            if png_every and i % png_every == png_every - 1:
                path, data = folder / f"{i:05d}.png", encode_png(image)
            else:
                path, data = folder / f"{i:05d}.jpg", encode_jpeg(image, quality=quality)
            path.write_bytes(data.numpy().tobytes())
            written.append(path)
    return written


def shards(folder: str | os.PathLike, out: str | os.PathLike, per_shard: int = 64, prefix: str = "train") -> str:
    """Write the images of an image folder (root/<class>/<file>) as WebDataset shards; return the pattern."""
    import webdataset as wds

    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files = sorted(p for c in classes for p in (folder / c).iterdir() if p.is_file())
    count = math.ceil(len(files) / per_shard)
    for s in range(count):
        with wds.TarWriter(str(out / f"{prefix}-{s:04d}.tar")) as writer:
            for path in files[s * per_shard : (s + 1) * per_shard]:
                ext = path.suffix.lower().lstrip(".")
                writer.write(
                    {
                        "__key__": f"{path.parent.name}_{path.stem}",
                        ext: path.read_bytes(),
                        "cls": str(classes.index(path.parent.name)),
                    }
                )
    return str(out / f"{prefix}-{{0000..{count - 1:04d}}}.tar")
