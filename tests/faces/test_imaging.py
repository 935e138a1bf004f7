"""Every bad input becomes one typed ImageError; every odd-but-valid image becomes upright RGB."""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime

import numpy as np
import pytest
from PIL import Image, ImageOps

from photomatch.imaging import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    UnsupportedImage,
    _whole_jpeg_by_opencv,
    load_image,
)


def _encode(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _gradient(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2), "RGB")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_formats_load_as_rgb(fmt: str) -> None:
    out = load_image(_encode(_gradient(), fmt))
    assert out.rgb.shape == (48, 64, 3) and out.rgb.dtype == np.uint8
    assert out.format == fmt
    # Lossy formats drift a little; a channel swap or a wrong mode would be far off.
    assert np.abs(out.rgb.astype(int) - np.asarray(_gradient()).astype(int)).mean() < 6


@pytest.mark.parametrize(
    "mode",
    ["L", "CMYK", "P", "RGBA", "LA", "1", "I;16"],
)
def test_modes_become_rgb(mode: str) -> None:
    base = _gradient()
    if mode == "I;16":
        arr = (np.asarray(base.convert("L")).astype(np.uint16) * 257).astype(np.uint16)
        im = Image.fromarray(arr.astype("<u2"))
        assert im.mode == "I;16"
        fmt = "PNG"
    else:
        im = base.convert(mode)
        fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    out = load_image(_encode(im, fmt))
    assert out.rgb.shape == (48, 64, 3) and out.rgb.dtype == np.uint8
    if mode == "I;16":
        # 16-bit values are scaled down, not clipped: the brightest column stays near white, not saturated early.
        grey = np.asarray(base.convert("L")).astype(int)
        assert np.abs(out.rgb[:, :, 0].astype(int) - grey).max() <= 1


def test_exif_orientation_is_applied() -> None:
    im = _gradient(80, 40)  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 14:30:05"
    out = load_image(_encode(im, "JPEG", exif=exif.tobytes()))
    assert (out.width, out.height) == (40, 80)
    assert out.captured_at == datetime(2024, 6, 1, 14, 30, 5)


def _noisy(w: int = 97, h: int = 61) -> Image.Image:
    """Odd sizes and noise: every 8x8 block and chroma sample differs, so any decoder difference shows."""
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("kind", ["4:2:0", "4:2:2", "4:4:4", "progressive", "greyscale", "trailing bytes", "CMYK"])
def test_jpegs_decode_to_pillows_exact_pixels_whichever_decoder_takes_them(orientation: int, kind: str) -> None:
    im = _noisy().convert({"greyscale": "L", "CMYK": "CMYK"}.get(kind, "RGB"))
    exif = Image.Exif()
    exif[0x0112] = orientation
    kw: dict[str, object] = {"quality": 90, "exif": exif.tobytes()}
    if kind.startswith("4:"):
        kw["subsampling"] = kind
    if kind == "progressive":
        kw["progressive"] = True
    data = _encode(im, "JPEG", **kw)
    if kind == "trailing bytes":  # a camera's trailer after the end-of-image marker
        data += b"trailer"
    pillow = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    # OpenCV decodes whole RGB and greyscale JPEGs; a trailer or CMYK goes to Pillow.
    by_opencv = _whole_jpeg_by_opencv(data, Image.open(io.BytesIO(data)))
    assert (by_opencv is not None) == (kind not in ("trailing bytes", "CMYK"))
    out = load_image(data)
    assert out.rgb.shape == pillow.shape and out.rgb.flags.c_contiguous and out.rgb.flags.writeable
    assert np.array_equal(out.rgb, pillow), (orientation, kind)


def test_bad_exif_date_is_ignored() -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "not a date"
    assert load_image(_encode(_gradient(), "JPEG", exif=exif.tobytes())).captured_at is None


def test_truncated_jpeg_is_corrupt() -> None:
    data = _encode(_gradient(400, 300), "JPEG")
    with pytest.raises(CorruptImage) as e:
        load_image(data[: len(data) // 2])
    assert e.value.reason == "corrupt_image"


def test_garbage_after_header_is_corrupt() -> None:
    data = bytearray(_encode(_gradient(400, 300), "PNG"))
    data[60:] = bytes(len(data) - 60)
    with pytest.raises(CorruptImage):
        load_image(bytes(data))


@pytest.mark.parametrize("data", [b"hello, not an image", b"%PDF-1.4\n", b"GIF89a" + bytes(40)])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ImageError) as e:
        load_image(data)
    assert isinstance(e.value, UnsupportedImage | CorruptImage)


def test_gif_is_unsupported() -> None:
    with pytest.raises(UnsupportedImage, match="GIF"):
        load_image(_encode(_gradient(), "GIF"))


def test_empty_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(CorruptImage, match="empty"):
        load_image(p)


def test_missing_file_and_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnsupportedImage, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(UnsupportedImage, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 1-bit PNG of 30000 x 30000 compresses to a few kB but would need 2.7 GB as RGB.
    w = h = 30000
    raw = zlib.compress(b"".join(b"\x00" + bytes((w + 7) // 8) for _ in range(h)), 9)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + tag + body + zlib.crc32(tag + body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    assert len(png) < 2_000_000
    with pytest.raises(ImageTooLarge, match="MP"):
        load_image(png)


def test_byte_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "big.jpg"
    p.write_bytes(_encode(_gradient(400, 300), "JPEG"))
    with pytest.raises(ImageTooLarge, match="MiB"):
        load_image(p, max_bytes=1000)
    with pytest.raises(ImageTooLarge):
        load_image(io.BytesIO(p.read_bytes()), max_bytes=1000)


def test_pixel_limit_is_a_setting() -> None:
    with pytest.raises(ImageTooLarge):
        load_image(_encode(_gradient(400, 300), "PNG"), max_pixels=100_000)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels and holds one empty scanline: what a bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_in_our_words() -> None:
    # 400 MP: past Pillow's own guard, which fires while the header is read (before our size check).
    with pytest.raises(ImageTooLarge) as e:
        load_image(_png_header_only(20_000, 20_000))
    message = str(e.value)
    assert message == "image is too large; the limit is 100 MP"
    assert "178956970" not in message and "DOS" not in message


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.8])
def test_corrupt_files_say_what_to_do_without_pillows_internals(cut: float) -> None:
    data = _encode(_gradient(400, 300), "JPEG")
    with pytest.raises(CorruptImage) as e:
        load_image(data[: int(len(data) * cut)])
    message = str(e.value)
    assert "damaged or incomplete" in message
    assert "Error" not in message and "bytes" not in message and "(" not in message.split("?")[1]
