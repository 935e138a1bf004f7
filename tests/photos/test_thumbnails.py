"""Previews: the longest side at most 1024 and 256 px, never enlarged, the picture itself."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photomatch.photos.thumbnails import MEDIUM_SIDE, SMALL_SIDE, render_thumbnails


def _decoded(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG"
    return np.asarray(im.convert("RGB")).astype(int)


@pytest.mark.parametrize(("h", "w"), [(3000, 4000), (4000, 3000), (900, 7000)])
def test_a_large_photo_gets_both_sizes_with_its_proportions(h: int, w: int) -> None:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (220, 30, 30)  # red left half, blue right half
    rgb[:, w // 2 :] = (30, 30, 220)
    small, medium = (_decoded(b) for b in render_thumbnails(rgb))
    for img, side in ((small, SMALL_SIDE), (medium, MEDIUM_SIDE)):
        assert max(img.shape[:2]) == side
        assert abs(img.shape[1] / img.shape[0] - w / h) < 0.02 * w / h + 2 / side
        left, right = img[:, : img.shape[1] // 4].mean((0, 1)), img[:, -img.shape[1] // 4 :].mean((0, 1))
        assert left[0] > 180 > left[2] and right[2] > 180 > right[0]


def test_a_small_photo_is_never_enlarged() -> None:
    rgb = np.full((120, 200, 3), 128, np.uint8)
    small, medium = (_decoded(b) for b in render_thumbnails(rgb))
    assert medium.shape[:2] == (120, 200) and small.shape[:2] == (120, 200)
