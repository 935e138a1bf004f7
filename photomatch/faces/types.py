"""Plain data the face engine hands out; no torch, so API and DB code can import it cheaply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# MTCNN's landmark order: left eye, right eye, nose, left mouth corner, right mouth corner, where
# "left" is the image's left (the subject's right).
Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One face found by the detector, in original image pixels."""

    box: Box
    landmarks: tuple[Point, Point, Point, Point, Point]
    probability: float

    @property
    def size(self) -> float:
        """Face size in pixels: the shorter side of the box."""
        x1, y1, x2, y2 = self.box
        return float(min(x2 - x1, y2 - y1))


@dataclass
class Face:
    """A detected face with its quality signals and, once embedded, its unit-length vector."""

    detection: Detection
    sharpness: float = 0.0
    embedding: np.ndarray | None = None
    model: str | None = None
    # The same face by the engine's second embedder, when it has one (fused in search).
    second_embedding: np.ndarray | None = None
    second_model: str | None = None
    extra: dict[str, float] = field(default_factory=dict)
    # The detector configuration that found it (photomatch.faces.detection), stored with the face.
    detector: str | None = None

    @property
    def embedded(self) -> bool:
        """Whether it has its vector: the faces a photo stores and search can find. The engine leaves
        faces under Settings.embed_min_face_px without one (found, too small to identify)."""
        return self.embedding is not None

    @property
    def quality(self) -> dict[str, float]:
        """The signals used to rank equally similar faces: probability, size, sharpness."""
        return {
            "probability": round(self.detection.probability, 4),
            "size": round(self.detection.size, 1),
            "sharpness": round(self.sharpness, 2),
        }

    def to_json(self, embeddings: bool = False) -> dict[str, object]:
        """JSON form used by the CLI and the API."""
        d = self.detection
        out: dict[str, object] = {
            "box": [round(v, 1) for v in d.box],
            "landmarks": [[round(x, 1), round(y, 1)] for x, y in d.landmarks],
            "probability": round(d.probability, 4),
            "quality": self.quality,
        }
        if embeddings and self.embedding is None:
            out["embedding"] = None  # too small to identify (Settings.embed_min_face_px)
        if embeddings and self.embedding is not None:
            out["model"] = self.model
            out["embedding"] = [round(float(v), 6) for v in self.embedding]
            if self.second_embedding is not None:
                out["second_model"] = self.second_model
                out["second_embedding"] = [round(float(v), 6) for v in self.second_embedding]
        return out


class DeviceOutOfMemory(RuntimeError):
    """One image alone did not fit in the device's free memory: a worker problem, not the photo's.

    The task retries later (its photos stay pending, never failed): memory held by another process
    on the GPU is often free again by then.
    """


class Analyzer(Protocol):
    """What the rest of photomatch needs of a face engine (photomatch.faces.engine.FaceEngine)."""

    @property
    def model_name(self) -> str: ...

    def analyze(self, images: Sequence[Any], *, embed: bool = True) -> list[list[Face]]: ...

    def embed_faces(self, image: Any, faces: Sequence[Face]) -> list[Face]: ...
