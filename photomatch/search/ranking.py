"""Ranking a selfie's matches among an event's faces: pure numpy, no SQL, no engine.

The search service feeds it rows from Postgres; bench/search_accuracy.py feeds it cached faces of
rendered albums, so the benchmark measures exactly the logic the product runs. Every photo gets a
calibrated probability that it shows the person (photomatch.search.calibration), from its closest
face's distance judged against the event's own look-alikes and the event's size, so the tiers mean
the same in a party of 30 and a conference of 3,000:

- matches: the selfie's own evidence says so (OWN_EVIDENCE >= the match threshold);
- possible matches: the rest that the model with query expansion finds likely enough.

Expansion (re-measuring from the selfie plus its confident hits) never decides a match: a wrong
confident hit would pull that stranger's look-alikes in with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from photomatch.errors import UserError
from photomatch.faces.types import Face
from photomatch.search.calibration import (
    COHORT,
    EXPANSION_HITS,
    EXPANSION_PROBABILITY,
    MATCH_PROBABILITY,
    OWN_EVIDENCE,
    POSSIBLE_PROBABILITY,
    WITH_EXPANSION,
)
from photomatch.search.cohort import cohort_stats

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
    quality: np.ndarray  # (n,) face_quality of each face

    def __len__(self) -> int:
        return len(self.face)


@dataclass
class Neighbours:
    """What one scan of an event returns for a query vector."""

    candidates: Candidates  # the faces within CANDIDATE_RADIUS
    nearest: np.ndarray  # distances of the event's nearest faces, sorted (at least COHORT.rank_hi if it has them)
    nearest_face: np.ndarray  # their face ids
    event_faces: int  # how many faces the event holds (for this model)


# The event's faces near a unit query vector.
Knn = Callable[[np.ndarray], Neighbours]
# The embeddings of some of the event's faces, by id (one row each, in order).
Embeddings = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tiers:
    """Minimum probabilities of the two tiers (a request may move them within the configured bounds)."""

    match: float = MATCH_PROBABILITY
    possible: float = POSSIBLE_PROBABILITY


@dataclass(frozen=True)
class PhotoHit:
    """One photo in the results, through its closest face."""

    photo: Hashable
    face: int
    distance: float
    quality: float
    confidence: float  # calibrated P(the photo shows the person), with expansion
    own_evidence: float  # the same from the selfie alone; decides the matches tier


@dataclass
class Ranked:
    """The ranked photos of one search, split into tiers."""

    matches: list[PhotoHit] = field(default_factory=list)
    possible: list[PhotoHit] = field(default_factory=list)
    expanded_with: int = 0  # how many confident hits the query was expanded with
    event_faces: int = 0


def closest_per_photo(c: Candidates) -> np.ndarray:
    """Indices into `c` of each photo's closest face (a person appears once per photo)."""
    best: dict[Hashable, int] = {}
    for i, photo in enumerate(c.photo):
        j = best.get(photo)
        if j is None or (c.distance[i], -c.quality[i]) < (c.distance[j], -c.quality[j]):
            best[photo] = i
    return np.array(sorted(best.values()), dtype=np.int64)


def cohort_of(nearest: np.ndarray) -> tuple[float, float]:
    """Mean and spread of a query's impostor cohort, from its sorted distances to the event's faces."""
    mu, sd = cohort_stats(np.asarray(nearest, dtype=np.float64)[None, :], COHORT)
    return float(mu[0]), float(sd[0])


def expand_query(query: np.ndarray, c: Candidates, own: np.ndarray, embeddings: Embeddings) -> tuple[np.ndarray, int]:
    """The selfie plus its likely hits (own-evidence probability >= EXPANSION_PROBABILITY, one per photo,
    best first, at most EXPANSION_HITS), re-normalised.

    Fixed by the calibration, not by the request's thresholds: a looser request must not pull
    strangers into the query itself.
    """
    chosen: list[int] = []
    seen: set[Hashable] = set()
    for i in np.argsort(-own, kind="stable"):
        if own[i] < EXPANSION_PROBABILITY or len(chosen) >= EXPANSION_HITS:
            break
        # A person appears once per photo: a second face of the same photo is someone else.
        if c.photo[i] in seen:
            continue
        seen.add(c.photo[i])
        chosen.append(int(i))
    if not chosen:
        return query, 0
    expanded = query.astype(np.float64) + embeddings(c.face[chosen]).astype(np.float64).sum(axis=0)
    return (expanded / np.linalg.norm(expanded)).astype(np.float32), len(chosen)


def rank_photos(query: np.ndarray, knn: Knn, embeddings: Embeddings, tiers: Tiers | None = None) -> Ranked:
    """Score every candidate photo of the event, then split them into tiers, most likely first."""
    tiers = tiers or Tiers()
    query = np.asarray(query, dtype=np.float32)
    first = knn(query)
    c = first.candidates
    mu, sd = cohort_of(first.nearest)
    z = (mu - c.distance) / sd
    log_n = math.log(max(1, first.event_faces))
    own_all = OWN_EVIDENCE.probabilities({"d": c.distance, "z_q": z, "log_n": np.full(len(c), log_n)})
    expanded, n_hits = expand_query(query, c, own_all, embeddings)
    if n_hits:
        second = knn(expanded)
        mu_e, sd_e = cohort_of(second.nearest)
        # A candidate beyond the expanded query's nearest faces is at least that far from it.
        farthest = float(second.nearest[-1]) if len(second.nearest) else 2.0
        from_expanded = dict(zip(second.nearest_face.tolist(), second.nearest.tolist(), strict=True))
        d_exp = np.array([from_expanded.get(int(f), farthest) for f in c.face], dtype=np.float64)
        z_exp = (mu_e - d_exp) / sd_e
    else:
        d_exp, z_exp = c.distance, z
    best = closest_per_photo(c)
    columns = {
        "d": c.distance[best],
        "z_q": z[best],
        "log_n": np.full(len(best), log_n),
        "d_exp": d_exp[best],
        "z_exp": z_exp[best],
    }
    own = own_all[best]
    full = WITH_EXPANSION.probabilities(columns)
    hits = [
        PhotoHit(c.photo[i], int(c.face[i]), float(c.distance[i]), float(c.quality[i]), float(p), float(o))
        for i, p, o in zip(best, full, own, strict=True)
    ]
    hits.sort(key=lambda h: (-h.confidence, -h.quality, h.distance, str(h.photo)))
    matches = [h for h in hits if h.own_evidence >= tiers.match]
    possible = [h for h in hits if h.own_evidence < tiers.match and h.confidence >= tiers.possible]
    return Ranked(matches=matches, possible=possible, expanded_with=n_hits, event_faces=first.event_faces)
