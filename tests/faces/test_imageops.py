"""The detectors' shrink: antialiased (each pixel the mean of what it covers), the same on either path."""

from __future__ import annotations

import numpy as np
import torch

from photomatch.faces.imageops import shrink

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
