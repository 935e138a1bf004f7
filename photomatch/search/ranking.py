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

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from photomatch.errors import UserError
from photomatch.faces.types import Face
from photomatch.search.answers import Feedback, judged_as_selfie
from photomatch.search.calibration import Calibration, CalibrationSet, SearchParams, load_calibrations
from photomatch.search.cohort import CohortParams, cohort_stats
from photomatch.search.scoring import (
    AnswerFeatures,
    Features,
    answer_features,
    best_face_per_photo,
    expanded,
    expansion_hits,
    photo_choice_key,
    query_features,
    with_expansion,
    without_expansion,
)

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

# "Is this you too?": at most this many photos below the possible tier are put to the attendee, the
# likeliest first, none less likely than QUESTION_FLOOR (a question about a stranger wastes a tap).
# At 0.02 a visit of five answers ran out of questions with photos of the person still just below
# it; at 0.01 both tiers found more of them within five answers on the fitting half of every family
# (bench/fit_answers.py's albums) and on the unseen albums (bench/attendee.py), for a few more
# "not me" taps and, among relatives, a point or two fewer photos confirmed into the matches tier.
QUESTIONS = 10
QUESTION_FLOOR = 0.01


@dataclass
class Candidates:
    """Faces of one event near a query: parallel arrays, any order."""

    face: np.ndarray  # (n,) face ids
    photo: list[Hashable]  # (n,) photo of each face
    distance: np.ndarray  # (n,) L2 distance to the query (unit vectors)
    quality: np.ndarray  # (n,) face_quality of each face
    # (n,) the same faces' distances to the query's second vector, when fused (NaN: none stored)
    second_distance: np.ndarray | None = None
    box: np.ndarray | None = None  # (n, 4) each face's box in its photo, when the scan read them

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
    # The model that made `vector` (None: the calibration file's first embedder).
    model: str | None = None

    @classmethod
    def of(cls, face: Face, fuse: bool = True) -> Query:
        """The face's vectors (its second one only if `fuse`: the event stores that model too)."""
        if face.embedding is None:
            raise ValueError("the face has no embedding")
        if fuse and face.second_embedding is not None:
            return cls(np.asarray(face.embedding), np.asarray(face.second_embedding), face.second_model, face.model)
        return cls(np.asarray(face.embedding), model=face.model)


@dataclass(frozen=True)
class Tiers:
    """Minimum probabilities of the two tiers (a request may move them within the configured bounds);
    None: the calibration's own."""

    match: float | None = None
    possible: float | None = None

    def resolved(self, cal: Calibration) -> Tiers:
        """Both thresholds, the calibration's where none was asked for."""
        return self.resolved_by(cal.match, cal.possible)

    def resolved_by(self, match: float, possible: float) -> Tiers:
        """Both thresholds, these where none was asked for."""
        return Tiers(
            self.match if self.match is not None else match,
            self.possible if self.possible is not None else possible,
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
    box: tuple[float, ...] | None = None  # the face's box in its photo, when the scan read it


@dataclass
class Ranked:
    """The ranked photos of one search, split into tiers."""

    matches: list[PhotoHit] = field(default_factory=list)
    possible: list[PhotoHit] = field(default_factory=list)
    expanded_with: int = 0  # how many confident hits the query was expanded with
    event_faces: int = 0
    fused_with: str | None = None  # the second model, when both were fused
    tiers: Tiers = field(default_factory=Tiers)  # the thresholds applied
    # The likeliest photos just below the possible tier: questions for the attendee ("Is this you
    # too?"), not results, until they confirm one.
    questions: list[PhotoHit] = field(default_factory=list)


def closest_per_photo(c: Candidates, score: np.ndarray | None = None) -> np.ndarray:
    """Indices into `c` of each photo's best face (a person appears once per photo): the closest, or
    the highest `score` when given (fused: both models' cohort z-scores together)."""
    return best_face_per_photo(c.photo, -c.distance if score is None else np.asarray(score, np.float64), c.quality)


def cohort_of(nearest: np.ndarray, params: CohortParams) -> tuple[float, float]:
    """Mean and spread of a query's impostor cohort, from its distances to the event's nearest faces."""
    d = np.asarray(nearest, dtype=np.float64)
    mu, sd = cohort_stats(d[np.isfinite(d)][None, :], params)
    return float(mu[0]), float(sd[0])


def expand_query(
    query: np.ndarray,
    c: Candidates,
    own: np.ndarray,
    embeddings: Embeddings,
    second: np.ndarray | None = None,
    params: SearchParams | None = None,
    feedback: Feedback | None = None,
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """The selfie plus its likely hits (photomatch.search.scoring.expansion_hits), re-normalised; the
    second vector expanded with the same hits. With the attendee's answers, the faces they confirmed
    are certain hits and join first, and no other face of an answered photo joins."""
    p = params or SearchParams()
    sure = np.array(sorted(feedback.me) if feedback else [], dtype=np.int64)
    if feedback:
        answered = feedback.photos
        own = np.where([ph in answered for ph in c.photo], 0.0, own)
    chosen = expansion_hits(own, c.photo, p.expansion_probability, p.expansion_hits)
    if not chosen and not len(sure):
        return query, 0, second
    ids = np.concatenate([sure, c.face[chosen]])
    return (
        expanded(query, embeddings(ids)),
        len(ids),
        None if second is None else expanded(second, embeddings(ids, True)),
    )


def _fusable(query: Query, first: Neighbours, cal: Calibration) -> bool:
    """Fuse only when every candidate, and the cohort, has the second model's distance."""
    c = first.candidates
    return (
        query.second is not None
        and c.second_distance is not None
        and first.nearest_second is not None
        and bool(np.isfinite(c.second_distance).all())
        and int(np.isfinite(first.nearest_second).sum()) >= min(len(first.nearest), cal.cohort.rank_hi)
    )


def _from_scan(faces: np.ndarray, scan_faces: np.ndarray, scan_d: np.ndarray) -> np.ndarray:
    """Each face's distance in a scan; a face beyond the scan's nearest (or without a distance there)
    is taken to be at least as far as its farthest."""
    known = np.isfinite(scan_d)
    farthest = float(scan_d[known].max()) if known.any() else 2.0
    found = dict(zip(scan_faces.tolist(), np.where(known, scan_d, farthest).tolist(), strict=True))
    return np.array([found.get(int(f), farthest) for f in faces], dtype=np.float64)


def _features(first: Neighbours, cal: Calibration) -> Features:
    """The selfie's own features of every candidate of the first scan."""
    c = first.candidates
    if not cal.fused:
        return query_features(c.distance, cohort_of(first.nearest, cal.cohort), first.event_faces)
    assert c.second_distance is not None and first.nearest_second is not None and cal.second_cohort
    return query_features(
        c.distance,
        cohort_of(first.nearest, cal.cohort),
        first.event_faces,
        c.second_distance,
        cohort_of(first.nearest_second, cal.second_cohort),
    )


def _expanded_features(f: Features, c: Candidates, nxt: Neighbours, cal: Calibration) -> Features:
    """`f` plus the candidates' features from the expanded query's re-measure `nxt`."""
    d_exp = _from_scan(c.face, nxt.nearest_face, nxt.nearest)
    if not cal.fused:
        return with_expansion(f, d_exp, cohort_of(nxt.nearest, cal.cohort))
    assert nxt.nearest_second is not None and cal.second_cohort
    d2_exp = _from_scan(c.face, nxt.nearest_face, nxt.nearest_second)
    return with_expansion(
        f, d_exp, cohort_of(nxt.nearest, cal.cohort), d2_exp, cohort_of(nxt.nearest_second, cal.second_cohort)
    )


def rank_photos(
    query: np.ndarray | Query,
    knn: Knn,
    embeddings: Embeddings,
    tiers: Tiers | None = None,
    calibrations: CalibrationSet | None = None,
    feedback: Feedback | None = None,
) -> Ranked:
    """Score every candidate photo of the event, then split them into tiers, most likely first.

    A Query with a second vector is searched with both models fused (that pair's calibration),
    provided the pair is calibrated and the event's faces carry the second model's vectors;
    otherwise with the first model alone. NotCalibrated if the first model has no calibration.

    With `feedback` (the attendee's answers), confirmed photos lead the matches, rejected photos
    are left out, and every other photo's probabilities are re-judged with the answers by the
    calibration's answer models (photomatch.search.answers), whose tier thresholds then apply
    unless the request set its own.
    """
    cals = calibrations or load_calibrations()
    if feedback:
        # The answered faces are read by the expansion, the confirmed hits and the answer features.
        embeddings = ReadOnce(embeddings)
    q = query if isinstance(query, Query) else Query(np.asarray(query))
    model = q.model or cals.calibrations[0].embedders[0]
    vector = np.asarray(q.vector, dtype=np.float32)
    second = None if q.second is None else np.asarray(q.second, dtype=np.float32)
    first = knn(vector, second) if second is not None else knn(vector)
    cal = cals.for_models(model, q.second_model)
    if cal.fused and not _fusable(q, first, cal):
        cal = cals.for_models(model)
    second = second if cal.fused else None
    asked = tiers or Tiers()
    tiers = asked.resolved(cal)
    c = first.candidates
    f = _features(first, cal)
    own_all = cal.own.probabilities(f)
    expanded_q, n_hits, expanded2 = expand_query(vector, c, own_all, embeddings, second, cals.search, feedback)
    if n_hits:
        # The expanded query sits between the selfie and its hits: its nearest faces are among the
        # selfie's nearest, so those are re-measured (by id) rather than the event scanned again.
        # Its cohort is ranks 10-100 of them; at 1M faces this halves the search's database time.
        f = _expanded_features(f, c, knn(expanded_q, expanded2, first.nearest_face), cal)
    else:
        f = without_expansion(f)
    best = closest_per_photo(c, photo_choice_key(f))
    full, own = cal.full.probabilities(f.take(best)), own_all[best]
    confirmed: list[PhotoHit] = []
    if feedback:
        answered = feedback.photos
        keep = np.array([c.photo[i] not in answered for i in best], dtype=bool)
        best, full, own = best[keep], full[keep], own[keep]
        confirmed = _confirmed(feedback, vector, c, embeddings)
        if cal.answers is not None:
            fa = answer_features_of(feedback, cal, first, c.face[best], own, full, embeddings, second is not None)
            own, full = cal.answers.own.probabilities(fa), cal.answers.full.probabilities(fa)
            tiers = asked.resolved_by(cal.answers.match, cal.answers.possible)
    hits = [
        PhotoHit(
            c.photo[i],
            int(c.face[i]),
            float(c.distance[i]),
            float(c.quality[i]),
            float(p),
            float(o),
            None if c.box is None else tuple(round(float(v), 1) for v in c.box[i]),
        )
        for i, p, o in zip(best, full, own, strict=True)
    ]
    hits.sort(key=lambda h: (-h.confidence, -h.quality, h.distance, str(h.photo)))
    assert tiers.match is not None and tiers.possible is not None
    matches = confirmed + [h for h in hits if h.own_evidence >= tiers.match]
    possible = [h for h in hits if h.own_evidence < tiers.match and h.confidence >= tiers.possible]
    below = [h for h in hits if h.own_evidence < tiers.match and QUESTION_FLOOR <= h.confidence < tiers.possible]
    return Ranked(
        matches=matches,
        possible=possible,
        questions=below[:QUESTIONS],
        expanded_with=n_hits,
        event_faces=first.event_faces,
        fused_with=q.second_model if cal.fused else None,
        tiers=tiers,
    )


class ReadOnce:
    """Embeddings that fetch each face's vector (per model) from the store once per search."""

    def __init__(self, fetch: Embeddings) -> None:
        self.fetch = fetch
        self._rows: dict[tuple[int, bool], np.ndarray] = {}

    def __call__(self, face_ids: np.ndarray, second: bool = False, /) -> np.ndarray:
        ids = [int(f) for f in np.asarray(face_ids).reshape(-1)]
        missing = sorted({f for f in ids if (f, second) not in self._rows})
        if missing or not ids:
            fetched = self.fetch(np.array(missing, dtype=np.int64), second)
            if not ids:
                return fetched
            self._rows.update({(f, second): row for f, row in zip(missing, fetched, strict=True)})
        return np.stack([self._rows[(f, second)] for f in ids])


def _confirmed(feedback: Feedback, query: np.ndarray, c: Candidates, embeddings: Embeddings) -> list[PhotoHit]:
    """The confirmed photos, each a certain hit on the face the attendee confirmed (one per photo)."""
    ids = np.array(sorted(feedback.me), dtype=np.int64)
    if not len(ids):
        return []
    vectors = np.asarray(embeddings(ids), dtype=np.float64)
    row = {int(f): i for i, f in enumerate(c.face)}
    hits: dict[Hashable, PhotoHit] = {}
    for face, v in zip(ids.tolist(), vectors, strict=True):
        i = row.get(face)
        box = None if i is None or c.box is None else tuple(round(float(x), 1) for x in c.box[i])
        d = float(np.linalg.norm(np.asarray(query, np.float64) - v))
        quality = 1.0 if i is None else float(c.quality[i])
        hits.setdefault(feedback.me[face], PhotoHit(feedback.me[face], face, d, quality, 1.0, 1.0, box))
    return sorted(hits.values(), key=lambda h: (h.distance, str(h.photo)))


def answer_features_of(
    feedback: Feedback,
    cal: Calibration,
    first: Neighbours,
    faces: np.ndarray,
    own: np.ndarray,
    full: np.ndarray,
    embeddings: Embeddings,
    fused: bool,
) -> AnswerFeatures:
    """The answer features of candidate `faces` (one per photo) whose probabilities before the answers
    are `own` and `full`; `first` is the selfie's scan (its cohorts judge the answered faces)."""
    cohort = cohort_of(first.nearest, cal.cohort)
    cohort2 = None
    if fused:
        assert first.nearest_second is not None and cal.second_cohort is not None
        cohort2 = cohort_of(first.nearest_second, cal.second_cohort)
    vectors = embeddings(faces)
    vectors2 = embeddings(faces, True) if fused else None

    def judged(answered: Mapping[int, Hashable]) -> np.ndarray:
        ids = np.array(sorted(answered), dtype=np.int64)
        if not len(ids) or not len(faces):
            return np.zeros((len(ids), len(faces)))
        views2 = embeddings(ids, True) if fused else None
        return judged_as_selfie(cal.own, embeddings(ids), vectors, cohort, first.event_faces, views2, vectors2, cohort2)

    return answer_features(own, full, judged(feedback.me), judged(feedback.not_me))
