"""Decode uploaded image files into RGB arrays, safely.

Every way a file can be unusable ends in one `ImageError` subclass whose `reason` is a stable code
that callers store as a photo's failure reason; nothing else escapes `load_image`.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from photomatch.config import get_settings
from photomatch.errors import UserError
from photomatch.logs import get_logger

log = get_logger(__name__)

SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "MPO"}  # MPO: multi-picture JPEGs some cameras write

# EXIF tags: DateTimeOriginal lives in the Exif IFD (0x8769); DateTime in IFD0 is the fallback.
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_DATETIME = 0x0132
_ORIENTATION = 0x0112


class ImageError(UserError):
    """A file that cannot become a photo; `reason` is a stable code, str(e) a human message."""

    reason = "image_error"


class UnsupportedImage(ImageError):
    """Not an image at all, or a format photomatch does not read."""

    reason = "unsupported_format"


class CorruptImage(ImageError):
    """A recognised format whose data is truncated or broken."""

    reason = "corrupt_image"


class UnsupportedDimensions(ImageError):
    """A strip, not a photo: no face fits, and decoding a 1x100,000,000 PNG costs gigabytes."""

    reason = "unsupported_dimensions"


# Stitched panoramas reach 10:1, rarely 20:1; anything narrower than 50:1 is a strip or an attack.
MAX_ASPECT_RATIO = 50


class ImageTooLarge(ImageError):
    """Too many pixels or bytes: a decompression bomb or an absurd upload."""

    reason = "image_too_large"


@dataclass
class LoadedImage:
    """An upright RGB image and what was learnt while reading it."""

    rgb: np.ndarray  # H x W x 3, uint8, EXIF orientation applied (a torch tensor when decoded on a GPU)
    format: str
    captured_at: datetime | None

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def load_image(
    source: str | Path | bytes | BinaryIO,
    *,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> LoadedImage:
    """Read a JPEG, PNG or WebP file into an upright 8-bit RGB array, or raise an ImageError."""
    settings = get_settings()
    max_pixels = max_pixels or settings.max_image_pixels
    max_bytes = max_bytes or settings.max_image_bytes
    data = _read_bytes(source, max_bytes)
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between 1x and 2x its own bomb limit; we decide ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im, fmt = _open_checked(data, max_pixels)
            fast = _whole_jpeg_by_opencv(data, im) if fmt == "JPEG" else None
            if fast is not None:
                return LoadedImage(rgb=fast, format=fmt, captured_at=_captured_at(im))
            # Decode before touching EXIF: a PNG's EXIF lookup can trigger the decode, and its
            # error must not be swallowed by the tolerant EXIF parsing below.
            im.load()
            captured_at = _captured_at(im)
            rgb = _to_rgb(ImageOps.exif_transpose(im))
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise UnsupportedImage("not a recognised image file; use JPEG, PNG or WebP") from e
    except Image.DecompressionBombError as e:
        # Pillow's own guard (its limit, not ours, is in its message: the log keeps it, people get ours).
        log.info("image.refused", reason="decompression_bomb", detail=str(e))
        raise ImageTooLarge(f"image is too large; the limit is {max_pixels / 1e6:.0f} MP") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error) as e:
        # Pillow reports truncated and malformed data through all of these, in its own terms.
        log.info("image.refused", reason="corrupt", error=type(e).__name__, detail=str(e)[:200])
        raise CorruptImage("the file is damaged or incomplete (an upload cut short?); export it again") from e
    except MemoryError as e:
        raise ImageTooLarge("image needs more memory to decode than is available") from e
    return LoadedImage(rgb=rgb, format=fmt, captured_at=captured_at)


def _open_checked(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The image's header, read without decoding, once its format and dimensions are acceptable."""
    im = Image.open(io.BytesIO(data))
    fmt = (im.format or "").upper()
    if fmt not in SUPPORTED_FORMATS:
        raise UnsupportedImage(f"unsupported image format {fmt or 'unknown'}; use JPEG, PNG or WebP")
    w, h = im.size
    if w * h > max_pixels:
        raise ImageTooLarge(f"image is {w}x{h} = {w * h / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP")
    if w < 1 or h < 1:
        raise CorruptImage("image has no pixels")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        raise UnsupportedDimensions(
            f"image is {w}x{h}; photos longer than {MAX_ASPECT_RATIO}:1 on one side are not supported"
        )
    return im, fmt


@dataclass
class JpegHeader:
    """What a decoder elsewhere (the GPU's) needs to know of a JPEG that passed every check of load_image."""

    orientation: int  # EXIF orientation, 1 (upright) to 8
    captured_at: datetime | None
    mode: str  # Pillow's mode: RGB, L or CMYK


def jpeg_header(data: bytes, *, max_pixels: int | None = None) -> JpegHeader | None:
    """The header of a JPEG that load_image would accept; None for any other file (let load_image judge it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im, fmt = _open_checked(data, max_pixels or get_settings().max_image_pixels)
            if fmt != "JPEG":
                return None
            return JpegHeader(_orientation(im), _captured_at(im), im.mode)
    except Exception:
        return None


def host_pixels(rgb: Any) -> np.ndarray:
    """Decoded pixels as a numpy array, copied back from the device when they were decoded there."""
    return rgb if isinstance(rgb, np.ndarray) else np.asarray(rgb.cpu())


def _read_bytes(source: str | Path | bytes | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageTooLarge(f"file is {size / 2**20:.0f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
            data = path.read_bytes()
        except IsADirectoryError as e:
            raise UnsupportedImage("is a directory, not an image") from e
        except FileNotFoundError as e:
            raise UnsupportedImage("no such file") from e
    else:
        data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"file is over the limit of {max_bytes / 2**20:.0f} MiB")
    if not data:
        raise CorruptImage("file is empty")
    return data


# EXIF orientation -> how to make the picture upright, as Pillow's exif_transpose does: whether to swap
# rows and columns first, then whether to mirror it top-bottom, then left-right. Here for arrays
# decoded by OpenCV; photomatch.faces.decode applies the same steps to tensors nvJPEG decoded.
UPRIGHT_STEPS: dict[int, tuple[bool, bool, bool]] = {
    1: (False, False, False),
    2: (False, False, True),  # mirrored left-right
    3: (False, True, True),  # rotated 180
    4: (False, True, False),  # mirrored top-bottom
    5: (True, False, False),  # transposed
    6: (True, False, True),  # needs a quarter turn clockwise
    7: (True, True, True),  # transversed
    8: (True, True, False),  # needs a quarter turn anticlockwise
}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation, 1 (upright, also for a value out of range) to 8; raises on a malformed block."""
    orientation = int(im.getexif().get(_ORIENTATION, 1) or 1)
    return orientation if orientation in UPRIGHT_STEPS else 1


def _whole_jpeg_by_opencv(data: bytes, im: Image.Image) -> np.ndarray | None:
    """An RGB or greyscale JPEG that ends where a JPEG ends, decoded by OpenCV and made upright; None
    for anything else, which Pillow decodes or explains.

    Both decode with libjpeg-turbo's defaults (the accurate integer IDCT, smooth chroma upsampling),
    so the pixels are Pillow's exactly (tests/faces/test_imaging.py), in 0.06 against 0.16 s for a
    12 MP photo (CPU, one core): Pillow decodes into its own buffer, then copies it out to numpy.
    OpenCV fills in a truncated file silently, where Pillow refuses it; a file cut short does not
    end with the end-of-image marker, so it goes to Pillow and gets its reason.
    """
    if im.mode not in ("RGB", "L") or not data.endswith(b"\xff\xd9"):
        return None
    import cv2

    try:
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
    except cv2.error:
        return None
    if rgb is None or rgb.shape[:2] != (im.height, im.width):
        return None
    try:
        transpose, flip_rows, flip_cols = UPRIGHT_STEPS[_orientation(im)]
    except Exception:  # noqa: BLE001 - a malformed EXIF block: Pillow's exif_transpose judges it
        return None
    if transpose:
        rgb = rgb.transpose(1, 0, 2)
    if flip_rows:
        rgb = rgb[::-1]
    if flip_cols:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb)


def _to_rgb(im: Image.Image) -> np.ndarray:
    """Every mode Pillow produces (1, L, LA, P, PA, I;16, I, F, CMYK, RGBA, YCbCr...) becomes RGB uint8."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit greyscale PNGs: scale to 8 bits rather than clipping everything above 255 to white.
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        grey = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if im.mode in ("P", "PA", "LA", "RGBA", "La", "RGBa"):
        # Transparent areas become white, which detection treats like a plain background.
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


def _captured_at(im: Image.Image) -> datetime | None:
    """The EXIF capture time, or None; a malformed EXIF block never fails the photo."""
    try:
        exif = im.getexif()
        raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        if not raw:
            return None
        return datetime.strptime(str(raw).strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
    except Exception:  # noqa: BLE001 - EXIF is advisory; a bad date is simply absent
        return None
