"""What the attendee's answers teach one search: pure numpy, no SQL, no engine.

"This is me" on a photo's face makes that face another view of the person; "not me" makes it a
look-alike to tell apart. Each answered face is judged as if it were the selfie: its distances to
every candidate face, by both models, against the selfie's impostor cohort, through the
calibration's own-evidence model. Those logits become the candidates' answer features
(photomatch.search.scoring.AnswerFeatures), and the calibration's answer models
(photomatch.search.calibration.AnswerModels, fitted with simulated answers on the fitting half of
the dev albums by bench/fit_answers.py) turn them into new probabilities, so the tiers keep their
meaning after answers. The answered photos themselves are decided: confirmed ones are matches,
rejected ones never come back in the visit.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from photomatch.search.calibration import Model
from photomatch.search.scoring import pairwise_distances, query_features


@dataclass(frozen=True)
class Feedback:
    """The attendee's answers as the ranking uses them: each answered face id and its photo."""

    me: Mapping[int, Hashable] = field(default_factory=dict)
    not_me: Mapping[int, Hashable] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.me or self.not_me)

    @property
    def photos(self) -> set[Hashable]:
        """Every photo an answer was about."""
        return set(self.me.values()) | set(self.not_me.values())


Cohort = tuple[float, float]


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """pairwise_distances in float64 (the stored vectors are halfvec)."""
    return pairwise_distances(np.asarray(a, np.float64), np.asarray(b, np.float64))


def judged_as_selfie(
    own: Model,
    views: np.ndarray,
    faces: np.ndarray,
    cohort: Cohort,
    event_faces: int,
    views2: np.ndarray | None = None,
    faces2: np.ndarray | None = None,
    cohort2: Cohort | None = None,
) -> np.ndarray:
    """The own-evidence logit of each view (row) against each face, as if the view were the selfie:
    shape (views, faces). Fused when the second model's vectors and cohort are given."""
    if not len(views) or not len(faces):
        return np.zeros((len(views), len(faces)))
    d = _distances(views, faces)
    fused = views2 is not None and faces2 is not None and cohort2 is not None
    d2 = _distances(views2, faces2) if fused else None  # type: ignore[arg-type]
    return own.logits(query_features(d, cohort, event_faces, d2, cohort2 if fused else None))
