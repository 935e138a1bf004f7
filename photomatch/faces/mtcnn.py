"""MTCNN's three stages over facenet-pytorch's networks, with every crop taken in one batched call.

facenet-pytorch's `detect_face` cuts each candidate box out of the image and resizes it on its own
(`interpolate(mode="area")`, one call per box: some 2,700 calls for eight 12 MP photos), and reads
the boxes back to the host between stages. On a GPU that is thousands of small kernel launches per
batch. Here the candidates of both refinement stages are cut and resized by one
`torchvision.ops.roi_align` call, which averages bilinear samples over each output cell (like area
resampling), and the image pyramid is built with antialiased bilinear resizing. Everything else
(the proposal, NMS and box regression steps, the networks and their weights) is facenet-pytorch's.

On CPU it bought nothing (bench/detect_speed.py, quiet 2-core machine: 3.67 s against 3.55 s for
eight 12 MP photos, the same 60 faces, landmarks 1% of the face apart; 1.70 against 1.61 s for a
133-face crowd), so photomatch.faces.detection uses it on CUDA only; bench/gpu_check.sh times both
there.

Unlike `detect_face`, a box that falls entirely outside the image is dropped with its scores
instead of shifting every later crop onto the wrong box.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from facenet_pytorch.models.utils.detect_face import (
    batched_nms_numpy,
    bbreg,
    generateBoundingBox,
    pad,
    rerec,
)
from torchvision.ops import roi_align
from torchvision.ops.boxes import batched_nms

# The networks' batch: bounds the memory of one forward pass on a crowd photo.
_BATCH = 512


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _run(net: Any, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    outs = [net(x[i : i + _BATCH]) for i in range(0, len(x), _BATCH)]
    return tuple(torch.cat(v, dim=0) for v in zip(*outs, strict=True))


def _crops(
    imgs: torch.Tensor, boxes: torch.Tensor, image_inds: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each box's region (clipped to the image, as facenet-pytorch's `pad` does) resized to size x size.

    Returns the crops and a mask of the boxes that overlap the image at all (the others have none).
    """
    h, w = imgs.shape[2:4]
    y, ey, x, ex = pad(boxes, w, h)  # 1-based, inclusive pixel rows and columns
    valid = torch.as_tensor((ey > y - 1) & (ex > x - 1), device=imgs.device)
    coords = torch.as_tensor(np.stack([x - 1, y - 1, ex, ey], axis=1), dtype=imgs.dtype, device=imgs.device)
    rois = torch.cat([image_inds[:, None].to(imgs.dtype), coords], dim=1)[valid]
    # aligned=True: pixel i covers [i, i+1), so [x - 1, ex] spans exactly the pixels the loop cut.
    out = roi_align(imgs, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out, valid


def detect_faces(
    imgs: torch.Tensor, minsize: int, pnet: Any, rnet: Any, onet: Any, threshold: list[float], factor: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Boxes (n x 5: x1, y1, x2, y2, probability) and landmarks (n x 5 x 2) per image of a uint8 N x H x W x 3 batch."""
    device = imgs.device
    dtype = next(pnet.parameters()).dtype
    imgs = imgs.permute(0, 3, 1, 2).to(dtype)
    batch_size = len(imgs)
    h, w = imgs.shape[2:4]
    m = 12.0 / minsize
    minl = min(h, w) * m
    scales = []
    scale_i = m
    while minl >= 12:
        scales.append(scale_i)
        scale_i *= factor
        minl *= factor

    # First stage: PNet over the pyramid proposes boxes.
    boxes_l, inds_l, picks = [], [], []
    offset = 0
    for scale in scales:
        size = (int(h * scale + 1), int(w * scale + 1))
        level = F.interpolate(imgs, size=size, mode="bilinear", antialias=True, align_corners=False)
        reg, probs = pnet(_normalise(level))
        boxes_s, inds_s = generateBoundingBox(reg, probs[:, 1], scale, threshold[0])
        boxes_l.append(boxes_s)
        inds_l.append(inds_s)
        picks.append(batched_nms(boxes_s[:, :4], boxes_s[:, 4], inds_s, 0.5) + offset)
        offset += boxes_s.shape[0]
    pick = torch.cat(picks)
    boxes, image_inds = torch.cat(boxes_l)[pick], torch.cat(inds_l)[pick]
    pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
    boxes, image_inds = boxes[pick], image_inds[pick]
    regw = boxes[:, 2] - boxes[:, 0]
    regh = boxes[:, 3] - boxes[:, 1]
    boxes = torch.stack(
        [
            boxes[:, 0] + boxes[:, 5] * regw,
            boxes[:, 1] + boxes[:, 6] * regh,
            boxes[:, 2] + boxes[:, 7] * regw,
            boxes[:, 3] + boxes[:, 8] * regh,
            boxes[:, 4],
        ],
        dim=1,
    )
    boxes = rerec(boxes)

    # Second stage: RNet rejects most proposals and refines the rest.
    if len(boxes):
        crops, valid = _crops(imgs, boxes, image_inds, 24)
        boxes, image_inds = boxes[valid], image_inds[valid]
        reg, probs = _run(rnet, _normalise(crops))
        score = probs[:, 1]
        keep = score > threshold[1]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        image_inds, reg = image_inds[keep], reg[keep]
        pick = batched_nms(boxes[:, :4], boxes[:, 4], image_inds, 0.7)
        boxes, image_inds, reg = boxes[pick], image_inds[pick], reg[pick]
        boxes = rerec(bbreg(boxes, reg))

    # Third stage: ONet scores the faces and places the landmarks.
    points = torch.zeros(0, 5, 2, device=device)
    if len(boxes):
        crops, valid = _crops(imgs, boxes, image_inds, 48)
        boxes, image_inds = boxes[valid], image_inds[valid]
        reg, landmarks, probs = _run(onet, _normalise(crops))
        score = probs[:, 1]
        keep = score > threshold[2]
        landmarks = landmarks[keep]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        image_inds, reg = image_inds[keep], reg[keep]
        w_i = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        h_i = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points = torch.stack(
            [w_i * landmarks[:, :5] + boxes[:, 0:1] - 1, h_i * landmarks[:, 5:] + boxes[:, 1:2] - 1], dim=2
        )
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], image_inds, 0.7, "Min")
        boxes, image_inds, points = boxes[pick], image_inds[pick], points[pick]

    boxes_np, points_np, inds_np = boxes.cpu().numpy(), points.cpu().numpy(), image_inds.cpu().numpy()
    return (
        [boxes_np[inds_np == b].copy() for b in range(batch_size)],
        [points_np[inds_np == b].copy() for b in range(batch_size)],
    )
