"""The detectors' shrink: antialiased (each pixel the mean of what it covers), the same on either path,
and a whole-number reduction where one lands just under max_side."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from photomatch.faces.imageops import (
    fit_scale,
    original_per_pixel,
    resize_batch,
    shrink,
    square_crops,
    whole_reduction,
)

CPU = torch.device("cpu")


def test_a_halved_photo_is_the_mean_of_each_two_by_two_block() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    small = shrink(rgb, 0.5, CPU)
    assert isinstance(small, torch.Tensor) and small.dtype == torch.uint8 and tuple(small.shape) == (30, 40, 3)
    blocks = rgb.reshape(30, 2, 40, 2, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.numpy() - blocks).max() <= 0.5 + 1e-9


def test_fine_stripes_shrink_to_grey_rather_than_aliasing() -> None:
    # One-pixel stripes: point sampling at a non-integer scale would keep black and white bands.
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, ::2] = 255
    small = shrink(rgb, 0.37, CPU).numpy().astype(int)
    assert np.abs(small[2:-2, 2:-2] - 127).max() < 40


def test_arrays_and_tensors_shrink_alike_and_nothing_is_enlarged() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    by_array = shrink(rgb, 0.6, CPU).numpy().astype(int)
    by_tensor = shrink(torch.from_numpy(rgb), 0.6, CPU).numpy().astype(int)
    assert by_array.shape == by_tensor.shape == (54, 72, 3)
    assert np.abs(by_array - by_tensor).mean() < 12  # two antialiasing filters, not one
    assert np.array_equal(shrink(rgb, 1.0, CPU).numpy(), rgb)


@pytest.mark.parametrize(
    ("height", "width", "scale"),
    [
        (3000, 4000, 1 / 2),  # 12 MP: 2000 px, within the slack under 2048
        (4000, 6000, 1 / 3),  # 24 MP: 2000 px
        (3024, 4032, 1 / 2),  # a phone's 12 MP: 2016 px
        (3648, 5472, 2048 / 5472),  # 20 MP: a third would be 1824 px, too far under; exactly 2048
        (1536, 2048, 1.0),  # already small enough
    ],
)
def test_photos_are_reduced_by_a_whole_factor_where_one_lands_just_under_max_side(
    height: int, width: int, scale: float
) -> None:
    assert fit_scale(height, width, 2048) == pytest.approx(scale, abs=1e-12)
    assert max(height, width) * fit_scale(height, width, 2048) <= 2048


def test_a_whole_reduction_averages_blocks_and_leaves_out_the_last_partial_rows_on_either_path() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (62, 95, 3), dtype=np.uint8)
    assert whole_reduction(1 / 3) == 3 and whole_reduction(0.4) is None and whole_reduction(1.0) is None
    blocks = rgb[:60, :93].reshape(20, 3, 31, 3, 3).astype(np.float64).mean(axis=(1, 3))
    by_array = shrink(rgb, 1 / 3, CPU).numpy()
    by_tensor = shrink(torch.from_numpy(rgb), 1 / 3, CPU).numpy()
    assert by_array.shape == by_tensor.shape == (20, 31, 3)
    assert np.abs(by_array - blocks).max() <= 0.5 + 1e-9
    assert np.abs(by_array.astype(int) - by_tensor).max() <= 1  # rounding of halves may differ
    # Each shrunk pixel is exactly three original ones, whatever the remainder.
    assert original_per_pixel(1 / 3, 95, 31) == 3.0 and original_per_pixel(0.4, 95, 38) == 95 / 38
    # A strip thinner than k is resampled to one pixel across instead, and mapped back as that.
    strip = shrink(np.zeros((2, 95, 3), np.uint8), 1 / 3, CPU)
    assert tuple(strip.shape[:2]) == (1, 32) and original_per_pixel(1 / 3, 2, 1) == 2.0


def test_square_crops_take_the_square_around_each_box_and_pad_outside_the_frame() -> None:
    img = torch.arange(3 * 40 * 60, dtype=torch.float32).reshape(3, 40, 60)
    boxes = np.array([[10.0, 5.0, 30.0, 15.0], [-8.0, -8.0, 8.0, 8.0], [100.0, 100.0, 120.0, 120.0]])
    crops, frames = square_crops(img, boxes, 20)
    assert crops.shape == (3, 3, 20, 20)
    # A 20 x 10 box becomes the 20 px square on its centre, here at the crop's own size.
    assert frames[0] == (10, 0, 20) and torch.equal(crops[0], img[:, 0:20, 10:30])
    # Half outside the frame: the missing rows and columns are zeros, the rest is the image.
    assert frames[1] == (-8, -8, 16)
    corner = torch.nn.functional.interpolate(
        torch.nn.functional.pad(img[:, :8, :8], (8, 0, 8, 0))[None], size=(20, 20), mode="area"
    )[0]
    assert torch.allclose(crops[1], corner) and float(crops[1][:, 0, 0].abs().sum()) == 0.0
    assert float(crops[2].abs().sum()) == 0.0  # wholly outside: nothing to see
    assert square_crops(img, np.zeros((0, 4)), 20)[0].shape == (0, 3, 20, 20)


def test_square_crops_of_a_uint8_image_are_the_float_images_crops() -> None:
    """The verifier hands over the photo as decoded (uint8): only the squares become float."""
    img = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (3, 50, 70), dtype=np.uint8))
    boxes = np.array([[12.3, 7.7, 41.0, 30.2], [-5.0, 30.0, 20.0, 60.0]])
    crops, frames = square_crops(img, boxes, 48)
    expected, expected_frames = square_crops(img.float(), boxes, 48)
    assert crops.dtype == torch.float32 and frames == expected_frames
    assert torch.equal(crops, expected)


def test_a_batch_enlarged_on_the_cpu_is_torchs_bilinear_within_a_grey_level_and_shrinks_antialiased() -> None:
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 3, 30, 40), dtype=np.uint8))
    big = resize_batch(x, (60, 80))
    assert big.dtype == torch.uint8 and tuple(big.shape) == (2, 3, 60, 80)
    reference = F.interpolate(x.float(), size=(60, 80), mode="bilinear", align_corners=False).round()
    assert (big.float() - reference).abs().max() <= 1
    assert torch.equal(big[1], resize_batch(x[1:], (60, 80))[0])  # each image of a batch on its own
    stripes = torch.zeros((1, 3, 40, 40), dtype=torch.uint8)
    stripes[:, :, :, ::2] = 255
    small = resize_batch(stripes, (20, 20))  # averaged to grey, not sampled into bands
    assert (small.float() - 127.5).abs().max() <= 1
