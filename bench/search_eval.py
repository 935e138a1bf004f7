"""Scoring searches of generated albums: brute-force k-NN over cached faces, and the measures.

Shared by the search benchmarks (bench/search_accuracy.py, bench/search_quality.py): each searches
with the product's own ranking code and scores the ranked photos against an album's truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.metrics import average_precision
from bench.search_data import FaceSet
from photomatch.faces.types import Detection, Face
from photomatch.search.ranking import Candidates, face_quality


def album_knn(photos: FaceSet) -> Callable[[np.ndarray, float], Candidates]:
    """Brute-force k-NN over an album's faces, as the repository's exact scan returns them."""
    # Stored embeddings are halfvec: rounding them here keeps bench distances those of Postgres.
    emb = photos.embedding.astype(np.float16).astype(np.float32)
    quality = face_quality(photos.probability, photos.size, photos.sharpness)
    names = [photos.names[i] for i in photos.image]

    def knn(query: np.ndarray, radius: float) -> Candidates:
        q = query.astype(np.float16).astype(np.float32)
        d = np.linalg.norm(emb - q[None, :], axis=1).astype(np.float64)
        keep = np.flatnonzero(d <= radius)
        return Candidates(keep.astype(np.int64), [names[i] for i in keep], d[keep], emb[keep], quality[keep])

    return knn


def faces_of(faces: FaceSet, i: int) -> list[Face]:
    """The cached faces of image i as engine Face objects (what pick_query_face takes)."""
    out = []
    for r in faces.of(i):
        det = Detection(
            box=tuple(float(v) for v in faces.box[r]),  # type: ignore[arg-type]
            landmarks=((0.0, 0.0),) * 5,  # type: ignore[arg-type]
            probability=float(faces.probability[r]),
        )
        out.append(Face(det, sharpness=float(faces.sharpness[r]), embedding=faces.embedding[r], model="cached"))
    return out


@dataclass
class QueryRun:
    """One selfie's search: the returned photos (best first) with distances, and the truth."""

    identity: str
    returned: list[tuple[str, float]]
    relevant: set[str]


def pooled(runs: list[QueryRun]) -> tuple[np.ndarray, np.ndarray, int]:
    """Distances and relevance of every returned (query, photo), and the number of relevant photos."""
    d = np.array([dist for r in runs for _, dist in r.returned], dtype=np.float64)
    rel = np.array([name in r.relevant for r in runs for name, _ in r.returned], dtype=bool)
    return d, rel, sum(len(r.relevant) for r in runs)


def pr_at(runs: list[QueryRun], threshold: float) -> tuple[float, float]:
    """Precision and recall, pooled over queries, of the photos returned within `threshold`."""
    d, rel, total = pooled(runs)
    sel = d <= threshold
    tp = int((sel & rel).sum())
    return (tp / int(sel.sum()) if sel.any() else 1.0), tp / max(1, total)


def mean_ap(runs: list[QueryRun]) -> float:
    """mAP of the returned lists; relevant photos never returned count as misses."""
    aps = [average_precision([n in r.relevant for n, _ in r.returned], len(r.relevant)) for r in runs]
    return float(np.mean(aps)) if aps else 0.0
