"""Similarity alignment of faces into fixed-size chips, batched in torch so it runs on the GPU too.

Coordinates follow dlib: pixel (i, j) has its centre at the point (i, j). A chip's geometry is
five target points (MTCNN's landmark order) in the chip's own pixel frame; `DLIB_CHIP_TEMPLATE` is
the frame dlib's face ResNet was trained on (`get_face_chip`, size 150, padding 0.25), expressed
in MTCNN's points. bench/fit_alignment_template.py derives it from dlib itself on dev-faces, and
bench/fit_detector_template.py carries every frame over to another detector's points (`TEMPLATES`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# Fitted by `uv run python bench/fit_alignment_template.py` ("template_symmetric") on 138 dev-faces
# identity faces; the per-point spread was 4-8 chip pixels.
DLIB_CHIP_SIZE = 150
DLIB_CHIP_TEMPLATE = np.array(
    [
        [47.146, 44.789],  # left eye (image left)
        [101.854, 44.789],  # right eye
        [74.5, 78.016],  # nose tip
        [49.964, 104.02],  # left mouth corner
        [99.036, 104.02],  # right mouth corner
    ],
    dtype=np.float64,
)

# The 112 px frame ArcFace-family models (SFace among them) were trained on (insightface's template).
ARCFACE_CHIP_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

# Where YuNet's five points fall in the same two frames: `uv run python bench/fit_detector_template.py`
# ("template_symmetric"), from 230 dev-faces identity faces both detectors found; per-point spread
# 4-9 chip pixels (dlib's frame). YuNet's eyes sit ~3 px lower than MTCNN's there.
YUNET_DLIB_CHIP_TEMPLATE = np.array(
    [[46.828, 47.949], [102.172, 47.949], [74.5, 79.254], [50.642, 104.189], [98.358, 104.189]], dtype=np.float64
)
YUNET_ARCFACE_CHIP_TEMPLATE = np.array(
    [[37.852, 54.034], [74.2, 54.034], [56.026, 74.586], [40.356, 90.995], [71.696, 90.995]], dtype=np.float64
)

# Per landmark convention and chip frame: where those landmarks go (photomatch.faces.embedders). YuNet's
# points averaged with ONet's (DetectorConfig.onet_landmarks) go halfway between the two detectors'
# templates: where each set of points follows its own template under the face's similarity, so does
# their mean.
TEMPLATES: dict[str, dict[str, np.ndarray]] = {
    "mtcnn": {"dlib": DLIB_CHIP_TEMPLATE, "arcface": ARCFACE_CHIP_TEMPLATE},
    "yunet": {"dlib": YUNET_DLIB_CHIP_TEMPLATE, "arcface": YUNET_ARCFACE_CHIP_TEMPLATE},
    "yunet+onet": {
        "dlib": (YUNET_DLIB_CHIP_TEMPLATE + DLIB_CHIP_TEMPLATE) / 2,
        "arcface": (YUNET_ARCFACE_CHIP_TEMPLATE + ARCFACE_CHIP_TEMPLATE) / 2,
    },
}

# Faces larger than this (in source pixels across the chip window) are shrunk with antialiasing
# first; bilinear sampling alone would alias, unlike dlib's own pyramid-down before extraction.
_CANVAS = 224


def similarity_transforms(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, shift; no reflection) mapping src to dst.

    src: N x K x 2 points, dst: K x 2 or N x K x 2. Returns N x 2 x 3 matrices (Umeyama 1991).
    """
    src = src.double()
    dst = dst.double().expand_as(src)
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum((1, 2)) / src.shape[1]
    cov = d_c.transpose(1, 2) @ s_c / src.shape[1]
    u, sig, vt = torch.linalg.svd(cov)
    d = torch.ones_like(sig)
    d[:, -1] = torch.sign(torch.linalg.det(u) * torch.linalg.det(vt))
    d[d == 0] = 1.0
    rot = u @ torch.diag_embed(d) @ vt
    scale = (sig * d).sum(1) / var_s
    shift = mu_d.squeeze(1) - scale[:, None] * (rot @ mu_s.transpose(1, 2)).squeeze(2)
    return torch.cat([scale[:, None, None] * rot, shift[:, :, None]], dim=2)


def invert_affine(m: torch.Tensor) -> torch.Tensor:
    """Inverse of N x 2 x 3 affine matrices."""
    a, t = m[:, :, :2], m[:, :, 2:]
    ai = torch.linalg.inv(a)
    return torch.cat([ai, -ai @ t], dim=2)


def warp_chips(image: torch.Tensor, chip_to_image: torch.Tensor, size: int, fill: str = "zeros") -> torch.Tensor:
    """Sample size x size chips from one H x W x 3 uint8 image; returns N x 3 x size x size float (0-255).

    Each face's window is cropped first (shrunk with antialiasing when large) so the batch never
    holds the full-resolution image in float, which matters for 24 MP photos on CPU.
    """
    n = chip_to_image.shape[0]
    if n == 0:
        return torch.zeros((0, 3, size, size), device=image.device)
    h, w = int(image.shape[0]), int(image.shape[1])
    m = chip_to_image.double().cpu()
    corners = torch.tensor(
        [[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], dtype=torch.float64
    )
    pts = corners @ m.transpose(1, 2)  # N x 4 x 2 image coordinates of the chip corners
    lo = torch.floor(pts.min(1).values).long() - 1
    hi = torch.ceil(pts.max(1).values).long() + 2
    canvas = torch.zeros((n, 3, _CANVAS, _CANVAS), device=image.device)
    maps = []
    for i in range(n):
        x0, y0 = int(lo[i, 0]), int(lo[i, 1])
        x1, y1 = int(hi[i, 0]), int(hi[i, 1])
        cw, ch = x1 - x0, y1 - y0
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if sx1 > sx0 and sy1 > sy0:
            inside = image[sy0:sy1, sx0:sx1].permute(2, 0, 1).float()
            pads = (sx0 - x0, x1 - sx1, sy0 - y0, y1 - sy1)
            if fill == "replicate" and any(pads):
                crop = F.pad(inside[None], pads, mode="replicate")[0]
            else:
                crop = F.pad(inside, pads)
        else:
            crop = torch.zeros((3, ch, cw), device=image.device)
        factor = min(1.0, _CANVAS / max(cw, ch))
        if factor < 1.0:
            nh, nw = max(1, int(ch * factor)), max(1, int(cw * factor))
            crop = F.interpolate(crop[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
            fy, fx = nh / ch, nw / cw
        else:
            fy = fx = 1.0
        canvas[i, :, : crop.shape[1], : crop.shape[2]] = crop
        # chip -> crop pixels: shift to the crop origin, then the resize's pixel-centre mapping.
        shift = torch.tensor([[1.0, 0, -x0], [0, 1.0, -y0]], dtype=torch.float64)
        to_crop = shift @ torch.cat([m[i], torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)])
        resize = torch.tensor([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5]], dtype=torch.float64)
        maps.append(resize @ torch.cat([to_crop, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)]))
    crop_maps = torch.stack(maps)  # N x 2 x 3: chip pixel -> canvas pixel
    # affine_grid works in normalised coordinates (align_corners=True: -1 and 1 are the edge pixel centres).
    to_norm_chip = torch.tensor(
        [[(size - 1) / 2, 0, (size - 1) / 2], [0, (size - 1) / 2, (size - 1) / 2], [0, 0, 1]], dtype=torch.float64
    )
    from_canvas = torch.tensor([[2 / (_CANVAS - 1), 0, -1], [0, 2 / (_CANVAS - 1), -1]], dtype=torch.float64)
    theta = (
        from_canvas
        @ torch.cat([crop_maps, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(n, 1, 3)], dim=1)
        @ to_norm_chip
    )
    grid = F.affine_grid(theta.float().to(image.device), [n, 3, size, size], align_corners=True)
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def align_faces(
    image: torch.Tensor, landmarks: torch.Tensor, template: np.ndarray, size: int, fill: str = "zeros"
) -> torch.Tensor:
    """Chips for every face of one image: landmarks N x 5 x 2 (image pixels) onto the template."""
    if landmarks.shape[0] == 0:
        return torch.zeros((0, 3, size, size), device=image.device)
    img_to_chip = similarity_transforms(landmarks.cpu(), torch.as_tensor(template))
    return warp_chips(image, invert_affine(img_to_chip), size, fill)


def sharpness(chips: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian of each chip's grey image: low values mean blur or missing focus."""
    grey = (
        chips * torch.tensor([0.299, 0.587, 0.114], device=chips.device, dtype=chips.dtype)[None, :, None, None]
    ).sum(1, keepdim=True)
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], device=chips.device, dtype=chips.dtype)[None, None]
    lap = F.conv2d(grey, k)
    return lap.flatten(1).var(1)
