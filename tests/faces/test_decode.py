"""JPEGs decoded by torchvision (nvJPEG on a GPU) come out like Pillow's, upright for every EXIF
orientation; everything else falls back to Pillow with its usual errors. On CPU torchvision's
decoder stands in for the GPU's (`on_device=True`); the GPU itself: bench/gpu_check.sh."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from photomatch.config import get_settings
from photomatch.faces.decode import load_image_on
from photomatch.imaging import CorruptImage, ImageTooLarge, host_pixels, load_image

CPU = torch.device("cpu")


def photo(mode: str = "RGB", orientation: int = 1, fmt: str = "JPEG", size: tuple[int, int] = (160, 96)) -> bytes:
    """A landscape picture whose every quarter differs, so a wrong rotation or mirror shows."""
    w, h = size
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, 255 - x], axis=2).astype(np.uint8)
    rgb[: h // 4, : w // 4] = (255, 255, 0)  # a marker in the top-left corner
    im = Image.fromarray(rgb).convert(mode)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    out = io.BytesIO()
    im.save(out, fmt, quality=95, exif=exif.tobytes()) if fmt == "JPEG" else im.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright_like_pillows(orientation: int) -> None:
    data = photo(orientation=orientation)
    pillow = load_image(data)
    ours = load_image_on(data, CPU, on_device=True)
    assert isinstance(ours.rgb, torch.Tensor) and ours.rgb.dtype == torch.uint8
    assert tuple(ours.rgb.shape) == pillow.rgb.shape
    assert (ours.width, ours.height) == (pillow.width, pillow.height)
    diff = np.abs(host_pixels(ours.rgb).astype(int) - pillow.rgb.astype(int))
    assert diff.mean() < 2.0, (orientation, diff.mean())  # two JPEG decoders, not bit-identical


def test_a_greyscale_jpeg_becomes_rgb() -> None:
    ours = load_image_on(photo(mode="L"), CPU, on_device=True)
    assert isinstance(ours.rgb, torch.Tensor) and ours.rgb.shape[2] == 3


@pytest.mark.parametrize(("mode", "fmt"), [("RGB", "PNG"), ("RGB", "WEBP"), ("CMYK", "JPEG")])
def test_what_the_device_decoder_does_not_take_goes_to_pillow(mode: str, fmt: str) -> None:
    ours = load_image_on(photo(mode=mode, fmt=fmt), CPU, on_device=True)
    assert isinstance(ours.rgb, np.ndarray) and ours.rgb.shape == (96, 160, 3)


def test_bad_files_get_pillows_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    data = photo()
    with pytest.raises(CorruptImage):
        load_image_on(data[: len(data) // 2], CPU, on_device=True)
    monkeypatch.setenv("PHOTOMATCH_MAX_IMAGE_PIXELS", "10000")
    get_settings.cache_clear()
    try:
        with pytest.raises(ImageTooLarge):
            load_image_on(data, CPU, on_device=True)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_on_cpu_the_default_is_pillow() -> None:
    assert isinstance(load_image_on(photo(), CPU).rgb, np.ndarray)
