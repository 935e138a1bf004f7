"""The search score's features, defined once: what search runs and what the calibration study fits on.

A candidate is (a selfie, one face of the event). Its features, named as the calibrated models in
photomatch.search.calibration read them:

- d: its distance to the selfie (L2 of unit vectors);
- z_q: (mean - d) / sd of the selfie's impostor cohort in this event (photomatch.search.cohort);
- log_n: log of the number of faces in the event: a crowd has more look-alikes;
- d_exp, z_exp: the same, measured from the selfie expanded with its likely hits;
- d2, z_q2, d2_exp, z2_exp: the same by the second embedder, when both are fused.

Every function here is plain numpy and broadcasts: search passes one selfie's candidates (1-D
arrays, scalar cohorts), the study passes every selfie of an album at once (2-D arrays, per-row
cohorts), and both get the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, fields, replace
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Features:
    """The features of some candidates: typed columns of one shape (None: not computed)."""

    d: np.ndarray
    z_q: np.ndarray
    log_n: np.ndarray
    d2: np.ndarray | None = None
    z_q2: np.ndarray | None = None
    d_exp: np.ndarray | None = None
    z_exp: np.ndarray | None = None
    d2_exp: np.ndarray | None = None
    z2_exp: np.ndarray | None = None

    NAMES: ClassVar[tuple[str, ...]] = ("d", "z_q", "log_n", "d2", "z_q2", "d_exp", "z_exp", "d2_exp", "z2_exp")

    @property
    def fused(self) -> bool:
        """Whether the second model's features are here."""
        return self.d2 is not None

    def column(self, name: str) -> np.ndarray:
        """One feature's column; KeyError for an unknown or uncomputed name."""
        value = getattr(self, name, None) if name in self.NAMES else None
        if value is None:
            raise KeyError(f"feature {name!r} is not computed for these candidates")
        return value

    def take(self, index: np.ndarray | tuple[np.ndarray, ...]) -> Features:
        """The same features of the candidates at `index` (numpy indexing)."""
        return replace(self, **{f.name: v[index] for f in fields(self) if (v := getattr(self, f.name)) is not None})


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distances between the rows of `a` and of `b` (unit vectors), shaped (len(a), len(b)), in
    their own precision."""
    return np.sqrt(np.clip(2.0 - 2.0 * a @ b.T, 0.0, None))


def z_score(distance: np.ndarray, mean: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    """How many cohort spreads a distance lies below the cohort's mean: high is a likely match."""
    return (mean - distance) / sd


def event_size(event_faces: int, like: np.ndarray) -> np.ndarray:
    """log_n: the log of the event's face count, as a column shaped like `like`."""
    return np.full(np.shape(like), math.log(max(1, event_faces)))


def query_features(
    d: np.ndarray,
    cohort: tuple[np.ndarray | float, np.ndarray | float],
    event_faces: int,
    d2: np.ndarray | None = None,
    cohort2: tuple[np.ndarray | float, np.ndarray | float] | None = None,
) -> Features:
    """The selfie's own features (before expansion); the second model's when `d2` and `cohort2` are given."""
    second = {}
    if d2 is not None and cohort2 is not None:
        second = {"d2": d2, "z_q2": z_score(d2, *cohort2)}
    return Features(d=d, z_q=z_score(d, *cohort), log_n=event_size(event_faces, d), **second)


def with_expansion(
    f: Features,
    d_exp: np.ndarray,
    cohort: tuple[np.ndarray | float, np.ndarray | float],
    d2_exp: np.ndarray | None = None,
    cohort2: tuple[np.ndarray | float, np.ndarray | float] | None = None,
) -> Features:
    """`f` plus the features measured from the expanded query (the second model's when fused)."""
    second = {}
    if f.fused and d2_exp is not None and cohort2 is not None:
        second = {"d2_exp": d2_exp, "z2_exp": z_score(d2_exp, *cohort2)}
    return replace(f, d_exp=d_exp, z_exp=z_score(d_exp, *cohort), **second)


def without_expansion(f: Features) -> Features:
    """`f` where nothing expanded the query: the expanded features are the selfie's own."""
    return replace(f, d_exp=f.d, z_exp=f.z_q, d2_exp=f.d2, z2_exp=f.z_q2)


def photo_choice_key(f: Features) -> np.ndarray:
    """Which of a photo's faces stands for it (higher is better): the closest, or, fused, the one both
    models together find most unusual for the event (the sum of their cohort z-scores)."""
    if f.fused:
        assert f.z_q2 is not None
        return f.z_q + f.z_q2
    return -f.d


def best_face_per_photo(photo: Sequence[Hashable], key: np.ndarray, quality: np.ndarray | None = None) -> np.ndarray:
    """Indices of each photo's best face by `key` (a person appears once per photo), ties to the
    higher `quality`; sorted."""
    q = np.zeros(len(photo)) if quality is None else quality
    best: dict[Hashable, int] = {}
    for i, p in enumerate(photo):
        j = best.get(p)
        if j is None or (key[i], q[i]) > (key[j], q[j]):
            best[p] = i
    return np.array(sorted(best.values()), dtype=np.int64)


def expansion_hits(own: np.ndarray, photo: Sequence[Hashable], at_least: float, most: int) -> list[int]:
    """Which candidates expand the query: own-evidence probability >= `at_least`, one per photo, best
    first, at most `most`.

    Fixed by the calibration, not by a request's thresholds: a looser request must not pull
    strangers into the query itself.
    """
    chosen: list[int] = []
    seen: set[Hashable] = set()
    for i in np.argsort(-own, kind="stable"):
        if own[i] < at_least or len(chosen) >= most:
            break
        # A person appears once per photo: a second face of the same photo is someone else.
        if photo[i] in seen:
            continue
        seen.add(photo[i])
        chosen.append(int(i))
    return chosen


def expanded(query: np.ndarray, hits: np.ndarray) -> np.ndarray:
    """The query plus its hits' vectors, back on the unit sphere."""
    v = np.asarray(query, dtype=np.float64) + np.asarray(hits, dtype=np.float64).reshape(-1, len(query)).sum(axis=0)
    return (v / np.linalg.norm(v)).astype(np.float32)


# --- the attendee's answers --------------------------------------------------------------------
#
# After "this is me" and "not me" answers, a candidate photo's face has four more features, named as
# photomatch.search.calibration's answer models read them, each on the log-odds scale (clipped to
# +-LOGIT_CLIP):
#
# - own, full: the search's own logits before the answers (selfie alone; with expansion): the answer
#   models start from them (weight 1), so that no answer at all changes nothing;
# - gain: how far the likeliest confirmed face, judged as if it were the selfie (its distances to the
#   face, against the selfie's cohort), says yes beyond what the selfie says (0 when it does not);
# - rival: how far the likeliest rejected face, judged the same way, says yes beyond the best view
#   of the person (the selfie or a confirmed face; 0 when it does not): the photo looks more like
#   the sister the attendee said no to than like the attendee.

LOGIT_CLIP = 12.0


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), clipped to +-LOGIT_CLIP so that certain answers stay finite."""
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.clip(np.log(q) - np.log1p(-q), -LOGIT_CLIP, LOGIT_CLIP)


@dataclass(frozen=True)
class AnswerFeatures:
    """The answer features of some candidates (1-D columns of one length)."""

    own: np.ndarray
    full: np.ndarray
    gain: np.ndarray
    rival: np.ndarray

    NAMES: ClassVar[tuple[str, ...]] = ("own", "full", "gain", "rival")

    @property
    def d(self) -> np.ndarray:
        """A column of the candidates' shape (what calibration models size their output by)."""
        return self.own

    def column(self, name: str) -> np.ndarray:
        """One feature's column; KeyError for an unknown name."""
        if name not in self.NAMES:
            raise KeyError(f"feature {name!r} is not an answer feature")
        return np.asarray(getattr(self, name))


def answer_features(own: np.ndarray, full: np.ndarray, confirmed: np.ndarray, rejected: np.ndarray) -> AnswerFeatures:
    """The answer features of n candidates from their probabilities before the answers (`own`,
    `full`) and the own-evidence logits of each confirmed and each rejected face judged as the
    selfie, shaped (views, n) (no rows: no such answer)."""
    own_l, full_l = logit(own), logit(full)
    # Only a yes counts: a view that finds a stranger unlikely, or a rejected face that finds the
    # face less likely than an even chance, says nothing the search did not know.
    me = own_l
    gain = np.zeros_like(own_l)
    if len(confirmed):
        view = np.clip(np.max(confirmed, axis=0), -LOGIT_CLIP, LOGIT_CLIP)
        gain = np.maximum(view - np.maximum(own_l, 0.0), 0.0)
        me = np.maximum(own_l, view)
    rival = np.zeros_like(own_l)
    if len(rejected):
        rejected_best = np.clip(np.max(rejected, axis=0), -LOGIT_CLIP, LOGIT_CLIP)
        rival = np.maximum(rejected_best - np.maximum(me, 0.0), 0.0)
    return AnswerFeatures(own_l, full_l, gain, rival)
