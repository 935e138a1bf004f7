"""Ranking a selfie's matches among an event's faces: pure numpy, no SQL, no engine.

The search service feeds it rows from Postgres and bench/search_accuracy.py feeds it cached
embeddings of generated albums, so the thresholds the benchmark calibrates are those of exactly
the logic the product runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from photomatch.errors import UserError
from photomatch.faces.types import Face

# --- the query face -----------------------------------------------------------------------------


class QueryRejected(UserError, ValueError):
    """The selfie has no face search can use; `reason` is a stable code, str(e) a message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, reason=reason)


# Messages shown to attendees as they are: they say what to do differently.
NO_FACE = "No face found in your selfie. Try again in better light, facing the camera."
TOO_SMALL = "Your face is too small in this photo. Hold the camera closer, so your face fills more of the picture."
TOO_BLURRED = "Your selfie is too blurred. Hold the phone still, make sure the lens is clean, and try again."


def prominence(face: Face) -> float:
    """How much a face stands out in a selfie: box area weighted by detection probability."""
    x1, y1, x2, y2 = face.detection.box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) * face.detection.probability


def pick_query_face(faces: Sequence[Face], *, min_size: float, min_sharpness: float) -> Face:
    """The selfie's most prominent face, or QueryRejected if there is none or it is unusable."""
    if not faces:
        raise QueryRejected("no_face", NO_FACE)
    face = max(faces, key=prominence)
    # A tiny or blurred face still gets an embedding, but a noisy one: it would match strangers
    # with confidence. Asking for a better selfie is kinder than showing wrong photos.
    if face.detection.size < min_size:
        raise QueryRejected("face_too_small", TOO_SMALL)
    if face.sharpness < min_sharpness:
        raise QueryRejected("face_too_blurred", TOO_BLURRED)
    return face


def face_quality(probability: np.ndarray, size: np.ndarray, sharpness: np.ndarray) -> np.ndarray:
    """A 0-1 score of how reliable a face's embedding is: confident, large and sharp faces score high.

    Each signal saturates where it stops mattering: 100 px faces embed as well as bigger ones (the
    embedder sees 150 px chips) and sharpness above ~100 is a sharp chip.
    """
    p = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    s = np.clip(np.asarray(size, dtype=np.float64) / 100.0, 0.0, 1.0)
    sharp = np.clip(np.nan_to_num(np.asarray(sharpness, dtype=np.float64), nan=100.0) / 100.0, 0.0, 1.0)
    return p * np.sqrt(s * sharp)


# --- candidate faces and photo ranking -----------------------------------------------------------


@dataclass
class Candidates:
    """Faces of one event near a query: parallel arrays, any order."""

    face: np.ndarray  # (n,) face ids
    photo: list[Hashable]  # (n,) photo of each face
    distance: np.ndarray  # (n,) L2 distance to the query (unit vectors)
    embedding: np.ndarray  # (n, d) the faces' embeddings (needed for query expansion)
    quality: np.ndarray  # (n,) face_quality of each face

    def __len__(self) -> int:
        return len(self.face)


# Faces of the event within `radius` of a unit query vector.
Knn = Callable[[np.ndarray, float], Candidates]


@dataclass(frozen=True)
class Expansion:
    """Average query expansion: re-search with the query plus the confident hits of other photos.

    A selfie is one pose in one light; the event's photos where the person is found with
    confidence show them as the other photos do. Their mean is a better query for the rest:
    on the benchmark albums recall at precision 0.98 rose from 0.93 to 0.97 (README).
    """

    threshold: float  # hits at most this far from the selfie count as confident
    max_hits: int  # at most this many (one per photo, best first)
    weight: float  # weight of each hit's embedding relative to the selfie's


@dataclass(frozen=True)
class NeighbourAveraging:
    """Database-side augmentation: each candidate face is averaged with its look-alikes in other photos.

    A person's faces across an event's photos agree with each other more than any one of them
    agrees with a selfie taken elsewhere; averaging a face with its close neighbours (in practice:
    the same person's other appearances) moves it towards that person's centre, away from noise of
    pose, light and size, so the right photos rise and look-alikes fall back.
    """

    radius: float  # faces of other photos at most this far from a face are its neighbours
    weight: float  # weight of each neighbour relative to the face itself
    candidate_radius: float  # neighbours are looked for among the faces this close to the selfie


@dataclass(frozen=True)
class RankingParams:
    """Thresholds on the final distance, and the optional re-ranking."""

    match_threshold: float
    possible_threshold: float
    expansion: Expansion | None = None
    neighbours: NeighbourAveraging | None = None


@dataclass(frozen=True)
class PhotoHit:
    """One photo in the results, through its best-matching face."""

    photo: Hashable
    face: int
    distance: float
    quality: float
    confidence: float


@dataclass
class Ranked:
    """The ranked photos of one search, split into tiers."""

    matches: list[PhotoHit] = field(default_factory=list)
    possible: list[PhotoHit] = field(default_factory=list)
    expanded_with: int = 0  # how many confident hits the query was expanded with


# Distances closer than this are equally similar as far as ranking goes: half-precision storage
# and the embedder's own noise make smaller differences meaningless, so face quality decides.
DISTANCE_TIE = 0.01


def best_per_photo(c: Candidates) -> list[PhotoHit]:
    """Each photo once, through its closest face, ranked by distance, then face quality."""
    best: dict[Hashable, int] = {}
    for i, photo in enumerate(c.photo):
        j = best.get(photo)
        if j is None or (c.distance[i], -c.quality[i]) < (c.distance[j], -c.quality[j]):
            best[photo] = i
    hits = [
        PhotoHit(
            photo=photo,
            face=int(c.face[i]),
            distance=float(c.distance[i]),
            quality=float(c.quality[i]),
            confidence=confidence(float(c.distance[i])),
        )
        for photo, i in best.items()
    ]
    hits.sort(key=lambda h: (round(h.distance / DISTANCE_TIE), -h.quality, h.distance, str(h.photo)))
    return hits


def expand_query(query: np.ndarray, c: Candidates, expansion: Expansion) -> tuple[np.ndarray, int]:
    """The selfie's vector moved towards its confident hits (one per photo); returns it and the hit count."""
    chosen: list[int] = []
    seen: set[Hashable] = set()
    for i in np.argsort(c.distance, kind="stable"):
        if c.distance[i] > expansion.threshold or len(chosen) >= expansion.max_hits:
            break
        # A person appears once per photo: a second face of the same photo is someone else.
        if c.photo[i] in seen:
            continue
        seen.add(c.photo[i])
        chosen.append(int(i))
    if not chosen:
        return query, 0
    expanded = query.astype(np.float64) + expansion.weight * c.embedding[chosen].astype(np.float64).sum(axis=0)
    return (expanded / np.linalg.norm(expanded)).astype(np.float32), len(chosen)


def average_with_neighbours(c: Candidates, params: NeighbourAveraging) -> np.ndarray:
    """Unit vectors: each candidate's embedding plus `weight` x those of its neighbours in other photos."""
    e = c.embedding.astype(np.float32)
    # |a - b|^2 = 2 - 2 a.b for unit vectors: one matrix product instead of n^2 subtractions.
    near = e @ e.T >= 1.0 - params.radius**2 / 2
    photo_codes = {p: k for k, p in enumerate(dict.fromkeys(c.photo))}
    photo = np.array([photo_codes[p] for p in c.photo])
    near &= photo[:, None] != photo[None, :]  # another face of the same photo is another person
    augmented = e + params.weight * (near.astype(np.float32) @ e)
    return augmented / np.linalg.norm(augmented, axis=1, keepdims=True)


def _with_distance(c: Candidates, embedding: np.ndarray, query: np.ndarray) -> Candidates:
    distance = np.linalg.norm(embedding - query[None, :], axis=1).astype(np.float64)
    return Candidates(c.face, c.photo, distance, c.embedding, c.quality)


def _within(c: Candidates, radius: float) -> Candidates:
    keep = np.flatnonzero(c.distance <= radius)
    return Candidates(c.face[keep], [c.photo[i] for i in keep], c.distance[keep], c.embedding[keep], c.quality[keep])


def rank_photos(query: np.ndarray, knn: Knn, params: RankingParams) -> Ranked:
    """Search with the selfie's vector, re-rank as configured, and split the photos into tiers."""
    query = np.asarray(query, dtype=np.float32)
    expanded_with = 0
    if params.expansion is not None:
        first = knn(query, params.expansion.threshold)
        query, expanded_with = expand_query(query, first, params.expansion)
    if params.neighbours is not None:
        radius = max(params.neighbours.candidate_radius, params.possible_threshold)
        candidates = knn(query, radius)
        augmented = average_with_neighbours(candidates, params.neighbours)
        candidates = _within(_with_distance(candidates, augmented, query), params.possible_threshold)
    else:
        candidates = knn(query, params.possible_threshold)
    hits = best_per_photo(candidates)
    matches, possible = split_tiers(hits, params.match_threshold, params.possible_threshold)
    return Ranked(matches=matches, possible=possible, expanded_with=expanded_with)


def split_tiers(hits: Sequence[PhotoHit], match: float, possible: float) -> tuple[list[PhotoHit], list[PhotoHit]]:
    """Matches (distance <= match) and possible matches (match < distance <= possible), order kept."""
    return (
        [h for h in hits if h.distance <= match],
        [h for h in hits if match < h.distance <= possible],
    )


# --- confidence ------------------------------------------------------------------------------------

# confidence(d) = 1 / (1 + exp((d - MIDPOINT) / SCALE)): a logistic fit of P(the photo shows the
# person | the distance of its best face, after re-ranking) on the calibration albums, for the
# default embedder and re-ranking (bench/search_accuracy.py prints it as "confidence_fit"). A photo
# at the midpoint is as likely someone else; 0.03 closer is ~86 % sure, 0.05 closer ~95 %.
# It estimates this photo's own odds, so it can be low near the match threshold even though the
# matches tier as a whole is 99 % right.
CONFIDENCE_MIDPOINT = 0.359
CONFIDENCE_SCALE = 0.0164


def confidence(distance: float) -> float:
    """The calibrated probability, 0-1, that a hit at `distance` is the person of the selfie."""
    z = (distance - CONFIDENCE_MIDPOINT) / CONFIDENCE_SCALE
    # Written to avoid overflow in exp for far-away faces.
    return 1.0 / (1.0 + math.exp(z)) if z < 0 else math.exp(-z) / (1.0 + math.exp(-z))
