"""Face detection with facenet-pytorch's MTCNN, on downscaled copies of large photos."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from photomatch.faces.types import Detection


class Detector:
    """MTCNN keeping every face (not just the largest), with boxes mapped back to original pixels."""

    def __init__(
        self,
        device: torch.device,
        *,
        max_side: int = 2048,
        min_face: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        min_prob: float = 0.9,
    ) -> None:
        self.device = device
        self.max_side = max_side
        self.min_face = min_face
        self.thresholds = thresholds
        self.min_prob = min_prob
        self._mtcnn: Any = None  # facenet_pytorch.MTCNN, imported lazily
        self._lock = threading.Lock()

    def load(self) -> None:
        """Build MTCNN (its weights ship inside the facenet-pytorch wheel); safe to call repeatedly."""
        with self._lock:
            if self._mtcnn is None:
                from facenet_pytorch import MTCNN

                # keep_all=True: the default keeps only the largest face, losing everyone else in a group.
                self._mtcnn = MTCNN(
                    keep_all=True,
                    min_face_size=self.min_face,
                    thresholds=list(self.thresholds),
                    post_process=False,
                    device=self.device,
                ).eval()

    def scale_for(self, height: int, width: int) -> float:
        """The factor (<= 1) that brings the longest side down to max_side."""
        return min(1.0, self.max_side / max(height, width))

    @torch.inference_mode()
    def detect(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[list[Detection]]:
        """Faces per image (H x W x 3 uint8 RGB, numpy or torch), same-sized images detected as one batch."""
        self.load()
        assert self._mtcnn is not None
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, img in enumerate(images):
            groups[(int(img.shape[0]), int(img.shape[1]))].append(i)
        out: list[list[Detection]] = [[] for _ in images]
        for (h, w), idx in groups.items():
            scale = self.scale_for(h, w)
            batch = torch.stack([_as_tensor(images[i], self.device) for i in idx])
            small = _downscale(batch, scale)
            boxes, probs, points = self._mtcnn.detect(small, landmarks=True)
            for j, i in enumerate(idx):
                out[i] = self._collect(boxes[j], probs[j], points[j], scale, w, h)
        return out

    def _collect(self, boxes, probs, points, scale: float, w: int, h: int) -> list[Detection]:  # type: ignore[no-untyped-def]
        if boxes is None:
            return []
        found = []
        for box, prob, pts in zip(boxes, probs, points, strict=True):
            if prob is None or float(prob) < self.min_prob:
                continue
            b = np.asarray(box, dtype=np.float64) / scale
            p = np.asarray(pts, dtype=np.float64) / scale
            # MTCNN boxes may poke past the frame; clip them, but keep landmarks as found.
            b = np.clip(b, 0, [w, h, w, h])
            found.append(
                Detection(
                    box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
                    landmarks=tuple((float(x), float(y)) for x, y in p),  # type: ignore[arg-type]
                    probability=float(prob),
                )
            )
        found.sort(key=lambda d: d.size, reverse=True)
        return found


def _as_tensor(img: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    if isinstance(img, np.ndarray):
        if not img.flags.writeable:  # torch refuses to share read-only memory (e.g. PIL-backed arrays)
            img = img.copy()
        return torch.from_numpy(np.ascontiguousarray(img)).to(device)
    return img.to(device)


def _downscale(batch: torch.Tensor, scale: float) -> torch.Tensor:
    """N x H x W x 3 uint8 -> the same, shrunk by `scale` with antialiasing (no aliasing of small faces)."""
    if scale >= 1.0:
        return batch
    h, w = batch.shape[1:3]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    x = batch.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
