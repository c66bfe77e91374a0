"""Reading and decoding one image file, whatever a real folder holds.

A file is decoded by what its first bytes say it is, never by its name, into what torchvision's
ImageFolder loader gives (`Image.open(f).convert("RGB")`): torchvision.io for JPEG, PNG and still
WebP, PIL for the rest (GIF and animated WebP at their first frame, BMP, TIFF, ...). Only a regular
file of bounded size is read, and only an image of bounded pixels is decoded; every refusal is a
ValueError or OSError whose `reason` is one line, which stream.py turns into a BadImage.
"""

from __future__ import annotations

import os
import re
import stat

import torch

JPEG_MAGIC = b"\xff\xd8\xff"

# No image file is read whole beyond this: a bound checked with fstat before reading (and on a shard's
# members before decoding). The largest photographs are tens of MB; TIFF scans a few hundred.
MAX_IMAGE_BYTES = 512 * 2**20
# Nor decoded beyond this many pixels: PIL's own bound (DecompressionBombError), applied to the files
# torchvision.io decodes too (their header says the size before any pixel is decoded).
MAX_IMAGE_PIXELS = 2 * 89_478_485


def image_kind(buf: memoryview) -> str:
    """`jpeg`, `png`, `webp`, `gif` or `other`, by the file's first bytes (never by its name)."""
    head = bytes(buf[:16])
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"GIF8"):
        return "gif"
    return "other"


def jpeg_frame(buf: memoryview) -> tuple[int, int, int, int, int] | None:
    """(SOF marker, precision, height, width, components) of a JPEG's frame header, or None if none is found
    before the first scan."""
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 10 > n:
                return None
            return (marker, buf[i + 4], buf[i + 5] << 8 | buf[i + 6], buf[i + 7] << 8 | buf[i + 8], buf[i + 9])
        if marker == 0xDA:
            return None
        i += 2 + (buf[i + 2] << 8 | buf[i + 3])
    return None


def _check_pixels(height: int, width: int) -> None:
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"the image has {width}x{height} pixels, over the bound of {MAX_IMAGE_PIXELS:,} "
            "(PIL's decompression-bomb limit)"
        )


def decode(data: torch.Tensor, channels: int, path: str = "") -> torch.Tensor:
    """The bytes of an image file -> (channels, H, W) uint8, as torchvision's ImageFolder loader gives it
    (PIL's `Image.open(f).convert("RGB")`, or "L" for one channel):

    - JPEG, PNG and still WebP: torchvision.io (libjpeg-turbo, libpng, libwebp), which gives PIL's pixels
      for every colour type (grey, grey+alpha, palette, RGBA, CMYK); 16-bit PNGs keep their high byte;
    - GIF (the first frame of an animation), animated WebP (its first frame), BMP, PPM, TIFF, ...: PIL;
    - EXIF orientation is not applied, on either path (neither does ImageFolder's loader): an image comes
      out as it is stored.
    """
    from torchvision.io import ImageReadMode, decode_image

    buf = data.numpy().data
    kind = image_kind(buf)
    if kind == "jpeg":
        frame = jpeg_frame(buf)
        if frame:
            _check_pixels(frame[2], frame[3])
    elif kind == "png" and len(buf) >= 24:
        _check_pixels(int.from_bytes(buf[20:24], "big"), int.from_bytes(buf[16:20], "big"))
    animated = kind == "webp" and bytes(buf[12:16]) == b"VP8X" and len(buf) > 20 and buf[20] & 0x02
    if kind in ("jpeg", "png") or (kind == "webp" and not animated):
        image = decode_image(data, mode=ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY)
        if image.dtype != torch.uint8:  # 16 bits per sample: the high byte, as PIL and to_dtype(scale=True)
            image = (image.to(torch.int32) >> 8).to(torch.uint8)
        return image
    return _decode_pil(buf, channels)


def _decode_pil(buf: memoryview, channels: int) -> torch.Tensor:
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(buf)) as image:  # an animation opens at its first frame
            if image.mode.startswith("I;16"):  # 16-bit grey: PIL's convert clips at 255, take the high byte
                array = (np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8)
                converted = Image.fromarray(array, "L").convert("RGB" if channels == 3 else "L")
            else:
                converted = image.convert("RGB" if channels == 3 else "L")
    except UnidentifiedImageError:
        raise ValueError("not an image file that torchvision or PIL can read") from None
    array = np.asarray(converted)
    return torch.from_numpy(array.reshape(array.shape[0], array.shape[1], channels).copy()).permute(2, 0, 1)


def reason(exc: Exception) -> str:
    """One line of why: torchvision's C++ errors lose their `decode_jpeg, /path/decode_jpeg.cpp:171, ` prefix."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    text = re.sub(r"^\w+, \S+:\d+, ", "", str(exc).strip().splitlines()[0] if str(exc).strip() else "")
    return f"{type(exc).__name__}: {text or 'unreadable'}"


def file_type(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: str) -> str:
    """Why `path`, which is neither a directory nor a regular file (even through links), is no image."""
    try:
        return f"not a regular file ({file_type(os.stat(path).st_mode)})"
    except OSError as exc:
        if os.path.islink(path):
            return f"a symbolic link that leads nowhere readable ({reason(exc)})"
        return reason(exc)


def read_bytes(path: str) -> torch.Tensor:
    """A file's bytes as a uint8 tensor in ordinary memory (torchvision.io.read_file's storage cannot be
    sent between processes, which `--decode device` does). Only a regular file of at most MAX_IMAGE_BYTES is
    read: it is opened without blocking (a FIFO would wait for a writer) and checked with fstat first."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with open(fd, "rb", closefd=True) as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"not a regular file ({file_type(info.st_mode)})")
        if info.st_size > MAX_IMAGE_BYTES:
            raise ValueError(
                f"the file has {info.st_size:,} bytes, over the bound of {MAX_IMAGE_BYTES:,} for an image file"
            )
        data = f.read(MAX_IMAGE_BYTES + 1)
    if not data:
        raise ValueError("the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ValueError(f"the file has over {MAX_IMAGE_BYTES:,} bytes, the bound for an image file")
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)
