"""The face engine: images in, faces with quality signals and unit-length embeddings out."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch

from photomatch.config import Settings, get_settings
from photomatch.faces.alignment import align_faces, sharpness
from photomatch.faces.detection import Detector
from photomatch.faces.device import choose_device
from photomatch.faces.embedders import Embedder, get_embedder_class
from photomatch.faces.types import Detection, Face
from photomatch.metrics import timed

ImageLike = np.ndarray | torch.Tensor  # H x W x 3 uint8 RGB


class FaceEngine:
    """Detection (MTCNN), alignment and embedding, each batched; models load on first use."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: str | Embedder | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        s = settings or get_settings()
        self.settings = s
        self.device = device if isinstance(device, torch.device) else choose_device(device or s.device)
        self.detector = Detector(
            self.device,
            max_side=s.detect_max_side,
            min_face=s.detect_min_face,
            thresholds=s.detect_thresholds,
            min_prob=s.detect_min_prob,
            mirror_landmarks=s.detect_mirror_landmarks,
        )
        if isinstance(embedder, Embedder):
            self.embedder = embedder
        else:
            self.embedder = get_embedder_class(embedder or s.embedder).from_settings(self.device, s)

    @property
    def model_name(self) -> str:
        """The name recorded with every embedding this engine makes."""
        return self.embedder.name

    def load(self) -> None:
        """Load every model now rather than on the first photo (workers call this at start)."""
        self.detector.load()
        self.embedder.load()

    def detect(self, images: Sequence[ImageLike]) -> list[list[Detection]]:
        """Faces per image, largest first, in original pixels."""
        return self.detector.detect(images)

    @torch.inference_mode()
    def chips(self, image: ImageLike, detections: Sequence[Detection]) -> torch.Tensor:
        """Aligned chips (N x 3 x S x S, 0-255) for one image's detections, in the embedder's frame."""
        img = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
        img = img.to(self.device)
        lm = torch.tensor([d.landmarks for d in detections], dtype=torch.float64).reshape(-1, 5, 2)
        # Replicate the border where a chip runs off the photo: black bands made tightly cropped faces
        # of different people look alike (dev-faces pairs: +0.1 points balanced accuracy).
        return align_faces(img, lm, self.embedder.template, self.embedder.chip_size, fill="replicate")

    @torch.inference_mode()
    def analyze(self, images: Sequence[ImageLike], *, embed: bool = True) -> list[list[Face]]:
        """Detect, align and (by default) embed every face of every image, batching across images."""
        # Stage timings (photomatch_stage_duration_seconds): each ends on a host copy, so on a GPU
        # they measure finished work, not queued kernels.
        with timed("detect"):
            detections = self.detect(images)
        with timed("align"):
            per_image = [self.chips(img, dets) for img, dets in zip(images, detections, strict=True)]
            counts = [c.shape[0] for c in per_image]
            all_chips = torch.cat(per_image) if per_image else torch.zeros((0, 3, 1, 1))
            sharp = sharpness(all_chips).cpu().numpy() if all_chips.shape[0] else np.zeros(0)
        with timed("embed"):
            vectors = self.embedder.embed(all_chips) if embed else None
        out: list[list[Face]] = []
        k = 0
        for dets, n in zip(detections, counts, strict=True):
            faces = []
            for j in range(n):
                faces.append(
                    Face(
                        detection=dets[j],
                        sharpness=float(sharp[k + j]),
                        embedding=None if vectors is None else vectors[k + j],
                        model=self.model_name if embed else None,
                    )
                )
            out.append(faces)
            k += n
        return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two unit vectors (0 identical, 2 opposite)."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


_engines: dict[tuple[str, str], FaceEngine] = {}
_engines_lock = threading.Lock()


def get_engine(embedder: str | None = None, settings: Settings | None = None) -> FaceEngine:
    """A process-wide engine per (model, device), created lazily: never in a forking parent."""
    s = settings or get_settings()
    key = (embedder or s.embedder, s.device)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = FaceEngine(s, embedder=key[0])
        return _engines[key]
