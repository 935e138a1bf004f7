"""Generated albums and their face embeddings for the search benchmarks, cached under bench/out/.

An album is made once per (seed, photos, size) with bench.make_album; the engine then runs once per
album and model, and the faces (geometry, quality, embeddings) of the photos and of the held-back
selfies are saved as .npz beside it. Later runs only read the cache.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "search-albums"
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
            )


@dataclass
class Album:
    """One generated album: its truth and the engine's faces for photos and selfies."""

    seed: int
    path: Path
    truth: dict[str, Any]
    photos: FaceSet
    selfies: FaceSet
    engine_seconds: float

    @property
    def identities(self) -> list[str]:
        """Selfie identities that appear in at least one photo."""
        return sorted(i for i in self.truth["selfies"] if self.truth["identities"].get(i))


def engine_fingerprint(model: str) -> str:
    """Model name plus a short hash of the face engine's code and detection settings.

    Cached embeddings are reused only while neither changes: a different detector or alignment
    gives different faces, and calibrating thresholds on stale faces would be wrong.
    """
    from photomatch.config import get_settings

    s = get_settings()
    h = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[1] / "photomatch" / "faces").glob("*.py")):
        h.update(path.read_bytes())
    engine_settings = {k: v for k, v in s.model_dump().items() if k.startswith(("detect_", "embed_"))}
    h.update(repr(sorted(engine_settings.items())).encode())
    return f"{model}-{h.hexdigest()[:10]}"


def album_path(seed: int, photos: int, size: tuple[int, int]) -> Path:
    """Where the album of these parameters is cached."""
    return OUT / f"seed{seed}-{photos}x{size[0]}x{size[1]}"


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
            rows += [(i, f) for f in faces]
    dim = int(engine.embedder.dim)
    return FaceSet(
        names=list(names),
        image=np.array([i for i, _ in rows], dtype=np.int64),
        box=np.array([f.detection.box for _, f in rows], dtype=np.float64).reshape(-1, 4),
        probability=np.array([f.detection.probability for _, f in rows], dtype=np.float64),
        size=np.array([f.detection.size for _, f in rows], dtype=np.float64),
        sharpness=np.array([f.sharpness for _, f in rows], dtype=np.float64),
        embedding=np.array([f.embedding for _, f in rows], dtype=np.float32).reshape(-1, dim),
    )


def load_album(
    seed: int,
    *,
    photos: int,
    size: tuple[int, int],
    faces_dir: Path,
    engine_factory: Any,
    model: str,
    log: Any = None,
) -> Album:
    """The album for `seed`, generated and analysed on first use; `engine_factory()` is called only then."""
    from bench.make_album import generate_album

    path = album_path(seed, photos, size)
    if not (path / "truth.json").is_file():
        generate_album(faces_dir, path, photos=photos, seed=seed, size=size)
    truth = json.loads((path / "truth.json").read_text())
    key = engine_fingerprint(model)
    photo_cache, selfie_cache = path / f"faces-{key}.npz", path / f"selfies-{key}.npz"
    meta_path = path / f"engine-{key}.json"
    if not (photo_cache.is_file() and selfie_cache.is_file() and meta_path.is_file()):
        engine = engine_factory()
        if log:
            log(f"analysing album seed {seed} ({photos} photos) with {model} ...")
        t0 = time.perf_counter()
        album_files = [path / "album" / n for n in sorted(truth["photos"])]
        analyze_images(engine, album_files).save(photo_cache)
        seconds = time.perf_counter() - t0
        selfie_files = [path / rel for _, rel in sorted(truth["selfies"].items())]
        analyze_images(engine, selfie_files).save(selfie_cache)
        meta_path.write_text(json.dumps({"engine_seconds": round(seconds, 2), "device": str(engine.device)}))
    meta = json.loads(meta_path.read_text())
    return Album(
        seed=seed,
        path=path,
        truth=truth,
        photos=FaceSet.load(photo_cache),
        selfies=FaceSet.load(selfie_cache),
        engine_seconds=float(meta["engine_seconds"]),
    )
