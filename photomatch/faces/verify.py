"""A second opinion on each face YuNet finds: MTCNN's last stage (ONet, facenet-pytorch's weights).

YuNet ranks its boxes by one network's score, and on WIDER FACE that ranking, not what it finds,
is what holds its AP back: near its cut, hands, prints and half-faces score like real faces. ONet
was trained for exactly this step, to judge a candidate box from a 48 px square of it. Each box's
YuNet score and ONet's probability are combined in log-odds, ONet's with a quarter of the weight
and bounded, so that it reorders faces near the cut without overriding YuNet where YuNet is sure
(a small face ONet sees blurred at 48 px stays found):

    score = sigmoid(logit(yunet) + WEIGHT * clip(logit(onet), -LOGIT_BOUND, LOGIT_BOUND))

The weight and the cut were chosen on half of dev-wider's images and held on the other half
(bench/verify_weight.py; README "The face engine"). ONet's full MTCNN cascade (its image pyramid
and two earlier stages) is what costs MTCNN its time; alone on the few dozen boxes of a photo it is
one batched call of a 0.4M-parameter network on squares cut one box at a time
(imageops.square_crops): 0.02-0.03 s a photo on 2 CPU cores (bench/detection.py).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import torch

from photomatch.faces.imageops import square_crops

WEIGHT = 0.25
LOGIT_BOUND = 4.0
ONET_SIZE = 48  # ONet's input: MTCNN's last stage, which also places MTCNN's landmarks


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def floor_for(cut: float) -> float:
    """The lowest first score that ONet's most confident yes can still lift to `cut`."""
    if cut <= 0:
        return 0.0
    return 1 / (1 + math.exp(-(_logit(min(cut, 1 - 1e-9)) - WEIGHT * LOGIT_BOUND)))


def average_landmarks(first: np.ndarray, onet: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each face's landmarks (n x 10, x and y of five points) averaged with ONet's for the same box,
    where ONet's lie within 0.3 of `sizes` (the box's longer side, as YuNet passes it) of them (else
    ONet saw something else: the first are kept), as MTCNN's configuration averages its own
    (faces.detection.Detector._mirror_refine, whose bound is 0.3 of the shorter side).
    The average sits between the two detectors' conventions, and so does its chip template
    (faces.alignment.TEMPLATES["yunet+onet"])."""
    close = np.abs(onet - first).max(axis=1) <= 0.3 * np.asarray(sizes, dtype=np.float64)
    return np.where(close[:, None], (first + onet) / 2, first)


def combine(scores: np.ndarray, onet: np.ndarray, weight: float = WEIGHT) -> np.ndarray:
    """Each face's score with ONet's opinion of it (module docstring); `weight` for studies only."""
    s = np.clip(np.asarray(scores, dtype=np.float64), 1e-9, 1 - 1e-9)
    p = np.clip(np.asarray(onet, dtype=np.float64), 1e-9, 1 - 1e-9)
    z = np.log(s / (1 - s)) + weight * np.clip(np.log(p / (1 - p)), -LOGIT_BOUND, LOGIT_BOUND)
    return np.asarray(1 / (1 + np.exp(-z)))


class OnetVerifier:
    """ONet on the device, judging boxes of an image: each one's probability and landmarks (`judge`)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._onet: Any = None  # facenet_pytorch's ONet, built lazily
        self._lock = threading.Lock()
        # On a CPU ONet runs channels-last: its max-pools (ceil mode) and 48 px convolutions took 2.2x
        # as long in the default layout (20 squares: 14.5 against 6.5 ms, 2 threads), the same
        # probabilities to 3e-7 (tests/faces/test_verify.py).
        on_cpu = torch.device(device).type == "cpu"
        self.layout = torch.channels_last if on_cpu else torch.contiguous_format

    def load(self) -> None:
        """Build ONet (its weights ship inside the facenet-pytorch wheel); safe to call repeatedly."""
        with self._lock:
            if self._onet is None:
                from facenet_pytorch.models.mtcnn import ONet

                self._onet = ONet(pretrained=True).to(self.device).eval().to(memory_format=self.layout)

    @torch.inference_mode()
    def judge(self, image: torch.Tensor, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ONet's face probability for each box (x1, y1, x2, y2 in the image's pixels) of an RGB
        H x W x 3 uint8 image, and its five landmarks there (n x 10: x, y of each, MTCNN's order)."""
        if len(boxes) == 0:
            return np.zeros(0), np.zeros((0, 10))
        self.load()
        crops, frames = square_crops(image.to(self.device).permute(2, 0, 1), boxes, ONET_SIZE)
        x = ((crops - 127.5) * 0.0078125).contiguous(memory_format=self.layout)
        _, points, probs = self._onet(x)
        rel = points.float().cpu().numpy()  # n x 10: five x then five y, relative to each square
        x0, y0, side = (np.array(v, dtype=np.float64)[:, None] for v in zip(*frames, strict=True))
        landmarks = np.empty((len(boxes), 10))
        landmarks[:, 0::2] = x0 + side * rel[:, :5]
        landmarks[:, 1::2] = y0 + side * rel[:, 5:]
        return np.asarray(probs[:, 1].float().cpu().numpy(), dtype=np.float64), landmarks

    def probabilities(self, image: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
        """ONet's face probability for each box (judge)."""
        return self.judge(image, boxes)[0]
