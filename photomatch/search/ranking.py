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
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from photomatch.errors import UserError
from photomatch.faces.types import Face
from photomatch.search.calibration import (
    COHORT,
    EXPANSION_HITS,
    EXPANSION_PROBABILITY,
    SINGLE,
    Calibration,
    calibration_for,
)
from photomatch.search.cohort import CohortParams, cohort_stats

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
    # (n,) the same faces' distances to the query's second vector, when fused (NaN: none stored)
    second_distance: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.face)


@dataclass
class Neighbours:
    """What one scan of an event returns for a query vector."""

    candidates: Candidates  # the faces within CANDIDATE_RADIUS
    nearest: np.ndarray  # distances of the event's nearest faces, sorted (at least COHORT.rank_hi if it has them)
    nearest_face: np.ndarray  # their face ids
    event_faces: int  # how many faces the event holds (for this model)
    # Distances of those nearest faces to the query's second vector, when fused (NaN: none stored).
    nearest_second: np.ndarray | None = None


class Knn(Protocol):
    """The event's faces near a unit query vector (and, when fused, their distances to its second one).

    With `among` (face ids), only those faces are measured, exactly: expansion re-measures the faces
    the first scan returned instead of scanning the event again.
    """

    def __call__(
        self, query: np.ndarray, second: np.ndarray | None = None, among: np.ndarray | None = None, /
    ) -> Neighbours: ...


class Embeddings(Protocol):
    """The embeddings of some of the event's faces, by id (one row each, in order); the second model's
    when `second`."""

    def __call__(self, face_ids: np.ndarray, second: bool = False, /) -> np.ndarray: ...


@dataclass(frozen=True)
class Query:
    """A selfie's face as search uses it: its vector, and its second model's vector when fused."""

    vector: np.ndarray
    second: np.ndarray | None = None
    second_model: str | None = None

    @classmethod
    def of(cls, face: Face, fuse: bool = True) -> Query:
        """The face's vectors (its second one only if `fuse`: the event stores that model too)."""
        if face.embedding is None:
            raise ValueError("the face has no embedding")
        if fuse and face.second_embedding is not None:
            return cls(np.asarray(face.embedding), np.asarray(face.second_embedding), face.second_model)
        return cls(np.asarray(face.embedding))


@dataclass(frozen=True)
class Tiers:
    """Minimum probabilities of the two tiers (a request may move them within the configured bounds);
    None: the calibration's own."""

    match: float | None = None
    possible: float | None = None

    def resolved(self, cal: Calibration) -> Tiers:
        """Both thresholds, the calibration's where none was asked for."""
        return Tiers(
            self.match if self.match is not None else cal.match,
            self.possible if self.possible is not None else cal.possible,
        )


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
    fused_with: str | None = None  # the second model, when both were fused
    tiers: Tiers = field(default_factory=Tiers)  # the thresholds applied


def closest_per_photo(c: Candidates, score: np.ndarray | None = None) -> np.ndarray:
    """Indices into `c` of each photo's best face (a person appears once per photo): the closest, or
    the highest `score` when given (fused: both models' cohort z-scores together)."""
    key = -c.distance if score is None else np.asarray(score, dtype=np.float64)
    best: dict[Hashable, int] = {}
    for i, photo in enumerate(c.photo):
        j = best.get(photo)
        if j is None or (key[i], c.quality[i]) > (key[j], c.quality[j]):
            best[photo] = i
    return np.array(sorted(best.values()), dtype=np.int64)


def cohort_of(nearest: np.ndarray, params: CohortParams = COHORT) -> tuple[float, float]:
    """Mean and spread of a query's impostor cohort, from its distances to the event's nearest faces."""
    d = np.asarray(nearest, dtype=np.float64)
    mu, sd = cohort_stats(d[np.isfinite(d)][None, :], params)
    return float(mu[0]), float(sd[0])


def expand_query(
    query: np.ndarray, c: Candidates, own: np.ndarray, embeddings: Embeddings, second: np.ndarray | None = None
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """The selfie plus its likely hits (own-evidence probability >= EXPANSION_PROBABILITY, one per photo,
    best first, at most EXPANSION_HITS), re-normalised; the second vector expanded with the same hits.

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
        return query, 0, second

    def plus_hits(q: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        v = q.astype(np.float64) + vectors.astype(np.float64).sum(axis=0)
        return (v / np.linalg.norm(v)).astype(np.float32)

    expanded = plus_hits(query, embeddings(c.face[chosen]))
    expanded2 = None if second is None else plus_hits(second, embeddings(c.face[chosen], True))
    return expanded, len(chosen), expanded2


def _fusable(query: Query, first: Neighbours) -> bool:
    """Fuse only when every candidate, and the cohort, has the second model's distance."""
    c = first.candidates
    return (
        query.second is not None
        and c.second_distance is not None
        and first.nearest_second is not None
        and bool(np.isfinite(c.second_distance).all())
        and int(np.isfinite(first.nearest_second).sum()) >= min(len(first.nearest), COHORT.rank_hi)
    )


def _from_scan(faces: np.ndarray, scan_faces: np.ndarray, scan_d: np.ndarray) -> np.ndarray:
    """Each face's distance in a scan; a face beyond the scan's nearest (or without a distance there)
    is taken to be at least as far as its farthest."""
    known = np.isfinite(scan_d)
    farthest = float(scan_d[known].max()) if known.any() else 2.0
    found = dict(zip(scan_faces.tolist(), np.where(known, scan_d, farthest).tolist(), strict=True))
    return np.array([found.get(int(f), farthest) for f in faces], dtype=np.float64)


def rank_photos(query: np.ndarray | Query, knn: Knn, embeddings: Embeddings, tiers: Tiers | None = None) -> Ranked:
    """Score every candidate photo of the event, then split them into tiers, most likely first.

    A Query with a second vector is searched with both models fused (its model's calibration),
    provided the event's faces carry that model's vectors; otherwise with the first model alone.
    """
    q = query if isinstance(query, Query) else Query(np.asarray(query))
    vector = np.asarray(q.vector, dtype=np.float32)
    second = None if q.second is None else np.asarray(q.second, dtype=np.float32)
    first = knn(vector, second) if second is not None else knn(vector)
    cal = calibration_for(q.second_model) if _fusable(q, first) else SINGLE
    fused = cal.second_cohort is not None
    second = second if fused else None
    tiers = (tiers or Tiers()).resolved(cal)
    c = first.candidates
    log_n = math.log(max(1, first.event_faces))
    mu, sd = cohort_of(first.nearest, cal.cohort)
    cols = {"d": c.distance, "z_q": (mu - c.distance) / sd, "log_n": np.full(len(c), log_n)}
    if fused:
        assert c.second_distance is not None and first.nearest_second is not None and cal.second_cohort
        mu2, sd2 = cohort_of(first.nearest_second, cal.second_cohort)
        cols |= {"d2": c.second_distance, "z_q2": (mu2 - c.second_distance) / sd2}
    own_all = cal.own.probabilities(cols)
    expanded, n_hits, expanded2 = expand_query(vector, c, own_all, embeddings, second)
    if n_hits:
        # The expanded query sits between the selfie and its hits: its nearest faces are among the
        # selfie's nearest, so those are re-measured (by id) rather than the event scanned again.
        # Its cohort is ranks 10-100 of them; at 1M faces this halves the search's database time.
        nxt = knn(expanded, expanded2, first.nearest_face)
        mu_e, sd_e = cohort_of(nxt.nearest, cal.cohort)
        d_exp = _from_scan(c.face, nxt.nearest_face, nxt.nearest)
        cols |= {"d_exp": d_exp, "z_exp": (mu_e - d_exp) / sd_e}
        if fused:
            assert nxt.nearest_second is not None and cal.second_cohort
            mu2e, sd2e = cohort_of(nxt.nearest_second, cal.second_cohort)
            d2_exp = _from_scan(c.face, nxt.nearest_face, nxt.nearest_second)
            cols |= {"d2_exp": d2_exp, "z2_exp": (mu2e - d2_exp) / sd2e}
    else:
        cols |= {"d_exp": cols["d"], "z_exp": cols["z_q"]}
        if fused:
            cols |= {"d2_exp": cols["d2"], "z2_exp": cols["z_q2"]}
    best = closest_per_photo(c, cols["z_q"] + cols["z_q2"] if fused else None)
    columns = {k: v[best] for k, v in cols.items()}
    own = own_all[best]
    full = cal.full.probabilities(columns)
    hits = [
        PhotoHit(c.photo[i], int(c.face[i]), float(c.distance[i]), float(c.quality[i]), float(p), float(o))
        for i, p, o in zip(best, full, own, strict=True)
    ]
    hits.sort(key=lambda h: (-h.confidence, -h.quality, h.distance, str(h.photo)))
    assert tiers.match is not None and tiers.possible is not None
    matches = [h for h in hits if h.own_evidence >= tiers.match]
    possible = [h for h in hits if h.own_evidence < tiers.match and h.confidence >= tiers.possible]
    return Ranked(
        matches=matches,
        possible=possible,
        expanded_with=n_hits,
        event_faces=first.event_faces,
        fused_with=q.second_model if fused else None,
        tiers=tiers,
    )
