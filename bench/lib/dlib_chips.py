"""dlib's face chips as affine maps: what the alignment template is fitted against."""

from __future__ import annotations

import math

import numpy as np


def dlib_chip_to_image(details: object, size: int = 150) -> np.ndarray:
    """dlib's chip-to-image affine (2 x 3) for a chip_details: rect corners to chip corners, rotated."""
    r = details.rect  # type: ignore[attr-defined]
    cx, cy = (r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2
    s = (r.right() - r.left()) / (size - 1)
    a = details.angle  # type: ignore[attr-defined]
    m = np.array([[s * math.cos(a), -s * math.sin(a), 0.0], [s * math.sin(a), s * math.cos(a), 0.0]])
    m[:, 2] = [cx, cy] - m[:, :2] @ [(size - 1) / 2, (size - 1) / 2]
    return m
