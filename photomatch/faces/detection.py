"""Face detectors: facenet-pytorch's MTCNN and YuNet (photomatch.faces.yunet), and the configurations
that name them (Settings.detector, bench/detection.py).

A configuration is what the search calibration was fitted for (photomatch.search.calibration): its
name is recorded in the calibration file and on every face it finds.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from photomatch.config import Settings
from photomatch.faces.imageops import fit_scale, shrink, square_crops
from photomatch.faces.types import Detection
from photomatch.faces.verify import ONET_SIZE, OnetVerifier
from photomatch.faces.yunet import Pass, YuNet


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
        mirror_landmarks: bool = True,
        batched_crops: bool | None = None,
    ) -> None:
        self.device = device
        self.max_side = max_side
        self.min_face = min_face
        self.thresholds = thresholds
        self.min_prob = min_prob
        self.mirror_landmarks = mirror_landmarks
        # photomatch.faces.mtcnn (one roi_align per stage) rather than facenet-pytorch's per-box
        # loop: by default on CUDA only, since on CPU it measured no faster (bench/detect_speed.py).
        self.batched_crops = device.type == "cuda" if batched_crops is None else batched_crops
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
        """The factor (<= 1) that brings the longest side down to max_side (imageops.fit_scale)."""
        return fit_scale(height, width, self.max_side)

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
            if min(h, w) * scale < self.min_face:
                # No face of min_face px fits (tiny images, 1x10000 strips): MTCNN would build an
                # empty image pyramid and fail the whole batch. Such an image simply has no face.
                continue
            small = torch.stack([shrink(images[i], scale, self.device) for i in idx])
            boxes, probs, points = self._stages(small)
            for j, i in enumerate(idx):
                out[i] = self._collect(boxes[j], probs[j], points[j], scale, w, h)
                if self.mirror_landmarks and out[i]:
                    out[i] = self._mirror_refine(small[j], out[i], scale)
        return out

    def _stages(self, small: torch.Tensor) -> tuple[Any, Any, Any]:
        """MTCNN's boxes, probabilities and landmarks per image of a uint8 N x H x W x 3 batch."""
        m = self._mtcnn
        if not self.batched_crops:
            return m.detect(small, landmarks=True)  # type: ignore[no-any-return]
        from photomatch.faces.mtcnn import detect_faces  # imports facenet-pytorch, like load()

        boxes, points = detect_faces(small, self.min_face, m.pnet, m.rnet, m.onet, list(self.thresholds), m.factor)
        return [b[:, :4] for b in boxes], [b[:, 4] for b in boxes], points

    def _mirror_refine(self, small: torch.Tensor, faces: list[Detection], scale: float) -> list[Detection]:
        """Average each face's landmarks with two more estimates from MTCNN's last stage (ONet).

        MTCNN's points wobble by several percent of the face and alignment inherits that noise.
        ONet is run again on a square crop around the final box (better centred than the box ONet
        first saw) and on the mirror image of that crop; the three estimates are averaged. This
        is one ONet call on 48 px crops, about a millisecond per face; measured on dev-faces pairs
        it lifts balanced accuracy by about a point (README).
        """
        boxes = np.array([f.box for f in faces], dtype=np.float64) * scale
        x, frames = square_crops(small.permute(2, 0, 1), boxes, ONET_SIZE)
        x = torch.cat([x, torch.flip(x, dims=[3])])
        _, points, _ = self._mtcnn.onet((x - 127.5) * 0.0078125)
        points = points.float().cpu().numpy()  # 2n x 10: five x then five y, relative to the crop
        count = len(faces)
        refined = []
        for i, f in enumerate(faces):
            x0, y0, n = frames[i]
            plain, mirrored = points[i], points[count + i]
            again = np.stack([x0 + n * plain[:5], y0 + n * plain[5:]], axis=1)
            # Crop column c of the mirror shows column n-1-c; the subject's left eye is the mirror's right.
            back = np.stack([x0 + (n - 1) - n * mirrored[:5], y0 + n * mirrored[5:]], axis=1)[[1, 0, 2, 4, 3]]
            first = np.asarray(f.landmarks, dtype=np.float64) * scale
            estimates = [first] + [e for e in (again, back) if np.abs(e - first).max() <= 0.3 * f.size * scale]
            avg = np.mean(estimates, axis=0) / scale
            refined.append(
                Detection(box=f.box, landmarks=tuple((float(x), float(y)) for x, y in avg), probability=f.probability)  # type: ignore[arg-type]
            )
        return refined

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


# --- configurations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetectorConfig:
    """A detector and how it is run: what Settings.detector and the calibration file name."""

    name: str
    kind: Literal["mtcnn", "yunet"]
    cut: float  # faces below this score are dropped (the product's operating point)
    rank_down_to: float  # measurement only: the lowest score kept, to rank detections for AP
    passes: tuple[Pass, ...] = (Pass(),)  # YuNet: the looks at each photo (scales, mirror)
    vote: bool = True  # YuNet: merge overlapping boxes by score-weighted voting rather than plain NMS
    average: bool = False  # YuNet: a face's score is the mean of every pass's, not the best (yunet.merge)
    verify: bool = False  # YuNet: each face's score is combined with ONet's opinion of it (faces.verify)
    # YuNet with verify: each face's landmarks averaged with those ONet places in the same call
    # (verify.average_landmarks), aligned by the template between the two detectors' (`landmarks`).
    onet_landmarks: bool = False
    # Each embedder also embeds every chip's mirror image and averages the two (Embedder.flip). On
    # dev-lfw and dev-fiw pairs it moved ROC-AUC by under 0.001 for twice the embedding cost per face
    # (bench/mirror_passes.py), so configurations fitted since run without it; MTCNN's calibration
    # was fitted with it, and its vectors keep it.
    embed_mirror: bool = False

    @property
    def landmarks(self) -> str:
        """Whose landmarks its faces carry: the key of their chip templates (faces.alignment.TEMPLATES)."""
        return "yunet+onet" if self.onet_landmarks else self.kind

    def describe(self) -> dict[str, Any]:
        """The configuration as JSON-ready data."""
        return {
            "name": self.name,
            "kind": self.kind,
            "cut": self.cut,
            "passes": [vars(p) for p in self.passes] if self.kind == "yunet" else None,
            "vote": self.vote if self.kind == "yunet" else None,
            "average": self.average if self.kind == "yunet" else None,
            "verify": self.verify if self.kind == "yunet" else None,
            "landmarks": self.landmarks,
            "embed_mirror": self.embed_mirror,
        }


def _yunet(
    name: str,
    *passes: Pass,
    vote: bool = True,
    average: bool = False,
    verify: bool = False,
    onet_landmarks: bool = False,
) -> DetectorConfig:
    # YuNet's own cut is OpenCV Zoo's default; with ONet's opinion 0.5 kept precision 0.85 by WIDER's
    # labels, chosen on half of dev-wider's images and held on the other (README "The face engine").
    cut = 0.5 if verify else 0.6
    return DetectorConfig(
        name,
        "yunet",
        cut=cut,
        rank_down_to=0.02,
        passes=passes,
        vote=vote,
        average=average,
        verify=verify,
        onet_landmarks=onet_landmarks,
    )


# The looks besides the photo's own scale. An enlarged pass answers only for faces under 32 px in the
# photo (larger ones are seen better at the photo's scale); a halved one only for faces of 64 px and
# more, which a network trained on 640 px images can outgrow (WIDER's easy set).
_HALVED = Pass(scale=0.5, min_face=64.0)
_ENLARGED = Pass(scale=2.0, max_face=32.0)
_MULTISCALE = (_HALVED, Pass(), Pass(flip=True), _ENLARGED)

# The product's detectors and the variants bench/detection.py compares them with.
DETECTOR_CONFIGS: dict[str, DetectorConfig] = {
    c.name: c
    for c in (
        # MTCNN's cut is the site's (Settings.detect_min_prob); its default is what the product runs.
        DetectorConfig(
            "mtcnn", "mtcnn", cut=Settings.model_fields["detect_min_prob"].default, rank_down_to=0.0, embed_mirror=True
        ),
        # YuNet alone: one look at the photo's own scale (as OpenCV's FaceDetectorYN runs it). On
        # dev-wider it finds 87% of the faces >= 32 px (MTCNN 73%) at 1/5 of MTCNN's time; the looks
        # below find up to 2 points more at 2-8 times the cost on a small photo (bench/detection.py,
        # README "The face engine").
        _yunet("yunet", Pass(), vote=False),
        # Every look at once: half, full and double scale with a mirror.
        _yunet("yunet-multiscale", *_MULTISCALE),
        _yunet("yunet-1x-flip", Pass(), Pass(flip=True)),
        # The same looks with their scores averaged rather than the best kept (yunet.merge).
        _yunet("yunet-1x-flip-avg", Pass(), Pass(flip=True), average=True),
        _yunet("yunet-multiscale-avg", *_MULTISCALE, average=True),
        _yunet("yunet-1x-2x", Pass(), _ENLARGED),
        _yunet("yunet-half-1x-2x", _HALVED, Pass(), _ENLARGED),
        # The same looks with ONet's second opinion on every face (photomatch.faces.verify): better
        # ranked than YuNet alone (dev-wider AP +0.008 in every setting, and more of the 12 MP
        # album's faces found) for 0.005-0.03 s more a photo on a CPU. The product's default is the
        # one look and the enlarged one with it: AP hard 0.84 against 0.78 with one look, 4.1x
        # face_recognition's faces on crowds at 1.8-2.25x its speed; a 12 MP photo gets one look.
        _yunet("yunet-onet", Pass(), vote=False, verify=True),
        _yunet("yunet-1x-2x-onet", Pass(), _ENLARGED, verify=True),
        # The same faces, each with its landmarks averaged with ONet's from the same call: no extra
        # cost, and with its own calibration every family ranks better through the search (mAP 0.788
        # -> 0.804 among relatives, LFW's both tiers 0.962 -> 0.972; docs/face-engine.md).
        _yunet("yunet-1x-2x-onet-landmarks", Pass(), _ENLARGED, verify=True, onet_landmarks=True),
        _yunet("yunet-multiscale-onet", *_MULTISCALE, verify=True),
        # And the halved look for large faces (WIDER's easy set): AP easy +0.008, but precision at
        # the cut under 0.85 and a 12 MP photo 16% slower (docs/face-engine.md).
        _yunet("yunet-half-1x-2x-onet", _HALVED, Pass(), _ENLARGED, verify=True),
    )
}


def detector_for(
    config: DetectorConfig | str, device: torch.device, settings: Any = None, *, min_score: float | None = None
) -> Detector | YuNet:
    """The detector a configuration names, cutting at `min_score` (default: the configuration's cut).

    MTCNN takes its image-pyramid settings from `settings` (Settings.detect_*), its cut from them too.
    """
    c = DETECTOR_CONFIGS[config] if isinstance(config, str) else config
    if c.kind == "mtcnn":
        kw: dict[str, Any] = {}
        if settings is not None:
            kw = {"max_side": settings.detect_max_side, "min_face": settings.detect_min_face,
                  "thresholds": settings.detect_thresholds, "min_prob": settings.detect_min_prob}  # fmt: skip
        if min_score is not None:
            kw["min_prob"] = min_score
        return Detector(device, **kw)
    max_side = settings.detect_max_side if settings is not None else 2048
    cut = c.cut if min_score is None else min_score
    verifier = OnetVerifier(device) if c.verify else None
    return YuNet(
        device,
        passes=c.passes,
        max_side=max_side,
        min_score=cut,
        vote=c.vote,
        average=c.average,
        verifier=verifier,
        onet_landmarks=c.onet_landmarks,
    )
