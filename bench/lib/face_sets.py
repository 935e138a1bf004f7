"""Faces of a set of images (geometry, quality, embeddings) as the search benchmarks cache them.

`analyze_images` runs the engine over files as a worker would; a FaceSet saves and loads as .npz;
`engine_fingerprint` keys every cache to the engine code and settings that made it. `largest_face`
and `scaled` serve the studies of one face per image (bench/tiny_faces.py, bench/mirror_passes.py).
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photomatch.faces.types import Detection, Face

# Photos per engine call: the worker's default batch.
BATCH = 16


@dataclass
class FaceSet:
    """Faces of a set of images, flattened: row i belongs to image `image[i]`."""

    names: list[str]  # image names
    image: np.ndarray  # (n,) int index into names
    box: np.ndarray  # (n, 4) x1, y1, x2, y2
    probability: np.ndarray  # (n,)
    size: np.ndarray  # (n,) short side of the box, px
    sharpness: np.ndarray  # (n,)
    embedding: np.ndarray  # (n, d) float32, unit length
    # (n, d2) the same faces by the engine's second embedder, when it has one
    second_embedding: np.ndarray | None = None
    second_model: str | None = None

    def of(self, i: int) -> np.ndarray:
        """Row indices of image i's faces."""
        return np.flatnonzero(self.image == i)

    def save(self, path: Path) -> None:
        """Write to an .npz file."""
        np.savez_compressed(
            path,
            names=np.array(self.names),
            image=self.image,
            box=self.box,
            probability=self.probability,
            size=self.size,
            sharpness=self.sharpness,
            embedding=self.embedding,
            **(
                {}
                if self.second_embedding is None
                else {"second_embedding": self.second_embedding, "second_model": np.array(self.second_model)}
            ),
        )

    @classmethod
    def load(cls, path: Path) -> FaceSet:
        """Read an .npz file written by save()."""
        with np.load(path) as z:
            return cls(
                names=[str(n) for n in z["names"]],
                image=z["image"],
                box=z["box"],
                probability=z["probability"],
                size=z["size"],
                sharpness=z["sharpness"],
                embedding=z["embedding"],
                second_embedding=z.get("second_embedding", None),
                second_model=str(z["second_model"]) if "second_model" in z else None,
            )


def code_of(source: str) -> str:
    """A module's code without its comments, docstrings and layout (its syntax tree): what the
    fingerprint hashes, so that rewording a comment in photomatch/faces/ keeps the caches, which
    take half an hour to rebuild (`make calibrate`)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            first = body[0].value
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.dump(tree)


def engine_fingerprint(model: str) -> str:
    """Model name plus a short hash of the face engine's code and detection settings.

    Cached embeddings are reused only while neither changes: a different detector or alignment
    gives different faces, and calibrating thresholds on stale faces would be wrong.
    """
    from photomatch.config import get_settings

    s = get_settings()
    h = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[2] / "photomatch" / "faces").glob("*.py")):
        h.update(code_of(path.read_text()).encode())
    # The detector configuration by name too: two detectors share the code, not the faces they find.
    engine_settings = {
        k: v for k, v in s.model_dump().items() if k == "detector" or k.startswith(("detect_", "embed_"))
    }
    h.update(repr(sorted(engine_settings.items())).encode())
    return f"{model}-{h.hexdigest()[:10]}"


def analyze_images(engine: Any, paths: list[Path]) -> FaceSet:
    """Run the engine over image files in batches, as a worker would."""
    from photomatch.imaging import load_image

    return analyze_arrays(engine, [p.name for p in paths], lambda i: load_image(paths[i]).rgb)


def analyze_arrays(engine: Any, names: list[str], image: Any) -> FaceSet:
    """Run the engine over images `image(0..n-1)` (RGB arrays, made on demand) in batches."""
    rows: list[tuple[int, Any]] = []
    for start in range(0, len(names), BATCH):
        idx = range(start, min(start + BATCH, len(names)))
        for i, faces in zip(idx, engine.analyze([image(i) for i in idx]), strict=True):
            rows += [(i, f) for f in faces if f.embedded]  # what a photo stores (processing.py)
    dim = int(engine.embedder.dim)
    second = getattr(engine, "second", None)
    return FaceSet(
        names=list(names),
        image=np.array([i for i, _ in rows], dtype=np.int64),
        box=np.array([f.detection.box for _, f in rows], dtype=np.float64).reshape(-1, 4),
        probability=np.array([f.detection.probability for _, f in rows], dtype=np.float64),
        size=np.array([f.detection.size for _, f in rows], dtype=np.float64),
        sharpness=np.array([f.sharpness for _, f in rows], dtype=np.float64),
        embedding=np.array([f.embedding for _, f in rows], dtype=np.float32).reshape(-1, dim),
        second_embedding=None
        if second is None
        else np.array([f.second_embedding for _, f in rows], dtype=np.float32).reshape(-1, second.dim),
        second_model=None if second is None else second.name,
    )


def faces_of(faces: FaceSet, i: int) -> list[Face]:
    """The cached faces of image i as engine Face objects (what pick_query_face takes)."""
    out = []
    for r in faces.of(i):
        det = Detection(
            box=tuple(float(v) for v in faces.box[r]),  # type: ignore[arg-type]
            landmarks=((0.0, 0.0),) * 5,  # type: ignore[arg-type]
            probability=float(faces.probability[r]),
        )
        second = None if faces.second_embedding is None else faces.second_embedding[r]
        out.append(
            Face(
                det,
                sharpness=float(faces.sharpness[r]),
                embedding=faces.embedding[r],
                model=None,  # the configured embedder's (the cache is keyed by it)
                second_embedding=second,
                second_model=faces.second_model if second is not None else None,
            )
        )
    return out


def largest_face(engine: Any, image: np.ndarray) -> Detection | None:
    """The largest face the engine detects in an image (the labelled person of a portrait), or None."""
    return max(engine.detect([image])[0], key=lambda d: d.size, default=None)


def scaled(image: np.ndarray, det: Detection, scale: float) -> tuple[np.ndarray, Detection]:
    """The image resized by `scale` (bilinear), and its detection scaled with it, as if found there."""
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    return small, Detection(
        box=tuple(v * scale for v in det.box),  # type: ignore[arg-type]
        landmarks=tuple((x * scale, y * scale) for x, y in det.landmarks),  # type: ignore[arg-type]
        probability=det.probability,
    )
