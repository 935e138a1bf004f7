"""Image resizing shared by the detectors."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# A photo is detected at a whole-number reduction (1/2, 1/3 ...) when one lands within this share
# under max_side: a k x k box average is OpenCV's fast path, 2 ms for a 12 MP photo against 45 ms
# for any other factor (2 cores), and a 4000 px photo detected at 2000 px rather than 2048 found the
# same pasted faces (bench/detection.py with PHOTOMATCH_DETECT_MAX_SIDE=2000, 20 12 MP photos).
WHOLE_REDUCTION_SLACK = 0.05


def fit_scale(height: int, width: int, max_side: int) -> float:
    """The factor (<= 1) that brings the longest side to at most max_side: 1/k for the smallest
    whole k that does, when that leaves the side within WHOLE_REDUCTION_SLACK of max_side."""
    side = max(height, width)
    if side <= max_side:
        return 1.0
    k = math.ceil(side / max_side)
    return 1.0 / k if side / k >= (1 - WHOLE_REDUCTION_SLACK) * max_side else max_side / side


def whole_reduction(scale: float) -> int | None:
    """k where `scale` is 1/k for a whole k >= 2 (shrink averages k x k blocks), else None."""
    k = round(1 / scale) if scale > 0 else 0
    return k if k >= 2 and abs(k * scale - 1) < 1e-9 else None


def original_per_pixel(scale: float, original: int, shrunk: int) -> float:
    """Original pixels per shrunk pixel along an axis `original` long, `shrunk` long after shrink():
    exactly k where shrink averaged k x k blocks (it does unless the photo is under k pixels across)."""
    k = whole_reduction(scale)
    return float(k) if k is not None and original // k == shrunk else original / shrunk


def shrink(img: np.ndarray | torch.Tensor, scale: float, device: torch.device) -> torch.Tensor:
    """H x W x 3 uint8 -> the same shrunk by `scale`, antialiased (no aliasing of small faces), on `device`.

    Arrays are shrunk by OpenCV's area resampling on uint8 (each output pixel the mean of the input it
    covers): a 12 MP photo to 2048 px in 45 ms on 2 cores, against 150 ms for Pillow's bilinear filter
    (bench/detection.py). A whole-number reduction (`whole_reduction`) averages k x k blocks, the
    last k - 1 rows and columns at most left out, so that each shrunk pixel is exactly k original
    ones (original_per_pixel). Tensors, which may already live on the GPU, with torch.
    """
    h, w = int(img.shape[0]), int(img.shape[1])
    if scale >= 1.0:
        if isinstance(img, np.ndarray) and not img.flags.writeable:  # torch refuses read-only memory
            img = img.copy()
        return torch.as_tensor(img).to(device)
    k = whole_reduction(scale)
    if k is not None and h >= k and w >= k:
        size = (h // k, w // k)
        img = img[: size[0] * k, : size[1] * k]
    else:
        k, size = None, (max(1, round(h * scale)), max(1, round(w * scale)))
    if isinstance(img, np.ndarray):
        from photomatch.faces.opencv_net import opencv_following_torch

        cv2 = opencv_following_torch()
        # OpenCV reads rows at any stride (a cropped view needs no copy), but not negative strides.
        img = img if img.strides[1] > 0 else np.ascontiguousarray(img)
        return torch.from_numpy(cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)).to(device)
    x = img.to(device).permute(2, 0, 1)[None].float()
    if k is not None:
        x = F.avg_pool2d(x, k)
    else:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()


def resize_batch(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N x 3 x H x W uint8 images resized to `size` (h, w): enlarged bilinearly, shrunk antialiased.

    On a CPU by OpenCV on uint8 (INTER_LINEAR, or INTER_AREA to shrink): a WIDER image enlarged 2x
    for YuNet's small-face look in 6 ms, against 22 ms for torch's bilinear filter on float (60
    dev-wider images, 2 cores). Elsewhere torch's interpolate, rounded back to uint8.
    """
    if x.device.type != "cpu":
        y = F.interpolate(x.float(), size=size, mode="bilinear", antialias=size[0] < x.shape[2], align_corners=False)
        return y.round_().clamp_(0, 255).to(torch.uint8)
    from photomatch.faces.opencv_net import opencv_following_torch

    cv2 = opencv_following_torch()
    mode = cv2.INTER_AREA if size[0] < x.shape[2] else cv2.INTER_LINEAR
    hwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    return torch.from_numpy(np.stack([cv2.resize(im, (size[1], size[0]), interpolation=mode) for im in hwc])).permute(
        0, 3, 1, 2
    )


def square_crops(img: torch.Tensor, boxes: np.ndarray, size: int) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
    """The square around each box (x1, y1, x2, y2; its longer side, same centre) of a 3 x H x W image
    (uint8 or float), zero-padded where it leaves the frame and area-resampled to size x size, as
    MTCNN's last stage (ONet) sees a face. Returns the float crops (n x 3 x size x size) and each
    square's (x0, y0, side). Only the squares are made float: the whole of a 12 MP photo's
    detection scale took 8 ms of its 83 (bench/detection.py)."""
    hs, ws = int(img.shape[1]), int(img.shape[2])
    crops, frames = [], []
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        side = max(x2 - x1, y2 - y1)
        x0, y0 = int(np.floor((x1 + x2 - side) / 2)), int(np.floor((y1 + y2 - side) / 2))
        n = max(2, int(round(side)))
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, ws), min(y0 + n, hs)
        if sx1 <= sx0 or sy1 <= sy0:
            crops.append(torch.zeros((3, size, size), device=img.device))
        else:
            region = F.pad(img[:, sy0:sy1, sx0:sx1].float(), (sx0 - x0, x0 + n - sx1, sy0 - y0, y0 + n - sy1))
            # "area" resampling, as facenet-pytorch prepares ONet's input.
            crops.append(F.interpolate(region[None], size=(size, size), mode="area")[0])
        frames.append((x0, y0, n))
    empty = torch.zeros((0, 3, size, size), device=img.device)
    return (torch.stack(crops) if crops else empty), frames
