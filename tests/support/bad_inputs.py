"""A generated corpus of bad and odd image files (well over 200), for the upload and selfie sweeps.

Each item says what a correct system may do with it:
- `valid`: a real image in an odd form (CMYK, 16-bit, palette, EXIF orientation, TIFF, BMP...):
  it must be processed (done), or refused with a clear reason if the format is not supported;
- `invalid`: broken, hostile or not an image: refused at upload or failed with a reason, never done,
  never a crash.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Item:
    name: str
    data: bytes
    valid: bool


def _img(size: tuple[int, int] = (96, 72), seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return rgb.convert(mode) if mode != "RGB" else rgb


def _save(image: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, *, zero_stream: int = 0) -> bytes:
    """A PNG whose header claims width x height; optionally a zlib stream of `zero_stream` zero bytes (a bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * zero_stream, 9) if zero_stream else zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF header is rewritten to claim width x height."""
    data = bytearray(_save(_img((32, 32)), "JPEG"))
    i = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, height, width)
    return bytes(data)


def with_exif_orientation(orientation: int, seed: int) -> bytes:
    image = _img((120, 80), seed)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(image, "JPEG", exif=exif.tobytes())


def huge_exif(kb: int) -> bytes:
    image = _img((64, 48))
    exif = Image.Exif()
    exif[0x010E] = "x" * (kb * 1024)  # ImageDescription
    return _save(image, "JPEG", exif=exif.tobytes())


def corpus() -> Iterator[Item]:
    """The whole sweep, deterministic."""
    good_jpeg = _save(_img((160, 120), 1), "JPEG", quality=90)
    good_png = _save(_img((80, 60), 2), "PNG")
    # --- not images, or broken ones -------------------------------------------------------------
    yield Item("empty.jpg", b"", False)
    for i, cut in enumerate(np.linspace(4, len(good_jpeg) - 40, 40).astype(int)):
        yield Item(f"truncated-{i:02d}.jpg", good_jpeg[:cut], False)
    for i, cut in enumerate(np.linspace(8, len(good_png) - 40, 12).astype(int)):
        yield Item(f"truncated-{i:02d}.png", good_png[:cut], False)
    texts = [b"hello world\n", b"<html><body>not a photo</body></html>", b"%PDF-1.4\n%...",
             b"PK\x03\x04" + b"\0" * 60, b"#!/bin/sh\nrm -rf /\n", b"GIF87a", b"\xff\xd8\xff"]  # fmt: skip
    for i, text in enumerate(texts):
        yield Item(f"text-{i}.jpg", text, False)
    rng = np.random.default_rng(7)
    for i in range(30):
        yield Item(
            f"random-{i:02d}.jpg", rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes(), False
        )
    for i in range(10):  # a JPEG head on random bytes
        yield Item(
            f"jpeg-head-{i}.jpg", b"\xff\xd8\xff\xe0" + rng.integers(0, 256, 2000, dtype=np.uint8).tobytes(), False
        )
    # --- bombs and absurd sizes -------------------------------------------------------------------
    for w, h in [(60000, 60000), (100000, 100000), (1, 100_000_000), (100_000_000, 1), (65535, 65535)]:
        yield Item(f"png-claims-{w}x{h}.png", png_claiming(w, h), False)
        yield Item(f"jpeg-claims-{w % 65536}x{h % 65536}.jpg", jpeg_claiming(min(w, 65535), min(h, 65535)), False)
    yield Item("png-bomb-zeros.png", png_claiming(20000, 20000, zero_stream=20_000_000), False)
    yield Item("png-bomb-wide.png", png_claiming(100_000, 1000, zero_stream=5_000_000), False)
    gif = bytearray(_save(_img((16, 16)), "GIF"))
    struct.pack_into("<HH", gif, 6, 65535, 65535)
    yield Item("gif-claims-65535.gif", bytes(gif), False)
    # --- tiny and extreme aspect ratios (valid images, too small for any face) --------------------
    for w, h in [(1, 1), (2, 2), (5, 5), (12, 12), (19, 19), (1, 400), (400, 1), (3, 2000), (2000, 3), (8, 1000)]:
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
            yield Item(f"tiny-{w}x{h}.{ext}", _save(_img((w, h), w * h), fmt), True)
    # --- odd but valid encodings ----------------------------------------------------------------
    for seed in range(3):
        yield Item(f"cmyk-{seed}.jpg", _save(_img((100, 80), seed, "CMYK"), "JPEG"), True)
        yield Item(f"gray-{seed}.jpg", _save(_img((100, 80), seed, "L"), "JPEG"), True)
        yield Item(f"palette-{seed}.png", _save(_img((100, 80), seed, "P"), "PNG"), True)
        yield Item(f"rgba-{seed}.png", _save(_img((100, 80), seed, "RGBA"), "PNG"), True)
        yield Item(f"la-{seed}.png", _save(_img((100, 80), seed, "LA"), "PNG"), True)
        yield Item(f"bilevel-{seed}.png", _save(_img((100, 80), seed, "1"), "PNG"), True)
        sixteen = Image.fromarray(np.random.default_rng(seed).integers(0, 65535, (80, 100), dtype=np.uint16))
        yield Item(f"16bit-{seed}.png", _save(sixteen, "PNG"), True)
        yield Item(f"progressive-{seed}.jpg", _save(_img((120, 90), seed), "JPEG", progressive=True), True)
        yield Item(f"webp-{seed}.webp", _save(_img((100, 80), seed), "WEBP"), True)
        yield Item(f"tiff-{seed}.tif", _save(_img((100, 80), seed), "TIFF"), True)
        yield Item(f"tiff-cmyk-{seed}.tif", _save(_img((100, 80), seed, "CMYK"), "TIFF"), True)
        yield Item(f"bmp-{seed}.bmp", _save(_img((100, 80), seed), "BMP"), True)
        frames = [_img((64, 48), seed + k) for k in range(4)]
        out = io.BytesIO()
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        yield Item(f"animated-{seed}.gif", out.getvalue(), True)
        yield Item(f"trailing-garbage-{seed}.jpg", good_jpeg + b"GARBAGE" * (100 * (seed + 1)), True)
        yield Item(f"jpeg-named-png-{seed}.png", _save(_img((90, 70), seed), "JPEG"), True)  # extension lies
        yield Item(f"png-named-jpg-{seed}.jpg", _save(_img((90, 70), seed), "PNG"), True)
    for orientation in range(1, 9):
        for seed in range(2):
            yield Item(f"exif-orientation-{orientation}-{seed}.jpg", with_exif_orientation(orientation, seed), True)
    for kb in (8, 32, 60):
        yield Item(f"huge-exif-{kb}k.jpg", huge_exif(kb), True)
    # HEIC: no decoder ships here, so a HEIC is refused with a clear reason (or decoded, if one is added).
    heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + bytes(200)
    yield Item("photo.heic", heic, False)
    yield Item("photo-named-jpg.jpg", heic, False)
    yield Item("icon.ico", _save(_img((32, 32)), "ICO"), True)
    yield Item("pixmap.ppm", _save(_img((40, 30)), "PPM"), True)
