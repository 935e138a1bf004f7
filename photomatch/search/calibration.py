"""The calibrated models that turn a selfie's distances into probabilities, and the tier thresholds.

Fitted by `uv run python bench/search_study.py` on albums of one half of the identities of every
dev family (dev-faces, dev-lfw, dev-fiw; crowds of 250 targets in 400 photos and parties of 30 in
40), and reported there on albums of the other half; the constants below are its "query cohort"
and "query cohort + expansion" models. They belong to the embedder (dlib-resnet-v1): after any
change to detection, alignment or the embedder, run the study again and replace them.

Each model is a logistic regression: P(the photo shows the person) = 1 / (1 + exp(-(w . x + b))),
x the features of the photo's closest face, named as in the study:
- d: its distance to the selfie;
- z_q: (mean - d) / sd of the selfie's impostor cohort in this event (photomatch.search.cohort);
- log_n: log of the number of faces in the event: a crowd has more look-alikes;
- d_exp, z_exp: the same, measured from the selfie expanded with its likely hits.

`uv run python bench/search_study.py` prints them with its defaults (3 crowd and 12 party albums per
family and half, expansion by own evidence >= 0.5, match precision 0.99, possible band 0.55).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from photomatch.search.cohort import CohortParams


@dataclass(frozen=True)
class Model:
    """A logistic model over named features."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def probabilities(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """P(same person) for candidates given as feature columns (numpy arrays of one length)."""
        z = np.full(len(columns[self.features[0]]), self.bias, dtype=np.float64)
        for name, w in zip(self.features, self.weights, strict=True):
            z += w * np.asarray(columns[name], dtype=np.float64)
        # exp(-|z|) never overflows; the two forms are the same logistic.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# The selfie's own evidence: decides the matches tier, so a wrong expansion can never make a match.
OWN_EVIDENCE = Model(("d", "z_q", "log_n"), (-20.74546, 0.80385, -0.84495), 8.81049)
# With query expansion: ranks everything, gives the confidence, and decides the possible tier.
WITH_EXPANSION = Model(
    ("d", "z_q", "log_n", "d_exp", "z_exp"), (-21.86645, -0.08727, -0.52881, 0.83883, 0.72586), 6.93615
)

# Tier thresholds on those probabilities, fitted on the same albums: matches at pooled precision
# 0.99 (OWN_EVIDENCE >= 0.9167), the possible tier the loosest band below whose precision is still
# 0.55 (WITH_EXPANSION >= 0.1354). Unseen albums: README "Search".
MATCH_PROBABILITY = 0.9167
POSSIBLE_PROBABILITY = 0.1354

# Expansion re-measures from the selfie plus the hits its own evidence finds more likely than not
# (OWN_EVIDENCE >= this; one per photo, best first, at most EXPANSION_HITS). A probability, so it
# means the same at a party and in a crowd (a fixed z did not: bench/search_study.py --expansion z).
EXPANSION_PROBABILITY = 0.5
EXPANSION_HITS = 10
# No photo further than this from the selfie is ever a candidate (P is ~0 well before it).
CANDIDATE_RADIUS = 0.6
COHORT = CohortParams()
# The first model every calibration here was fitted for; the fused ones add a second to it.
CALIBRATED_FIRST = "dlib-resnet-v1"


@dataclass(frozen=True)
class Calibration:
    """Everything that turns one event's distances into tiers, for one pair of models."""

    own: Model
    full: Model
    match: float
    possible: float
    cohort: CohortParams = field(default_factory=CohortParams)
    # The second embedder's impostor cohort, on its own distance scale (None: one model).
    second_cohort: CohortParams | None = None


SINGLE = Calibration(OWN_EVIDENCE, WITH_EXPANSION, MATCH_PROBABILITY, POSSIBLE_PROBABILITY, COHORT)

# dlib-resnet-v1 fused with SFace: the study's "fused: query cohort" and "fused: query cohort +
# expansion" models (`uv run python bench/search_study.py --fuse sface-2021dec-int8bq`), fitted and
# reported like the ones above; the second model's features are d2 and z_q2 (d2_exp, z2_exp after
# expansion), its distances read for the faces the first model's scan returns. SFace's cohorts sit
# at 1.207 +- 0.015 (spread 0.0195) on crowded dev-lfw albums, its prior below.
FUSED: dict[str, Calibration] = {
    "sface-2021dec-int8bq": Calibration(
        own=Model(("d", "z_q", "d2", "z_q2", "log_n"), (-5.5355, 0.45229, -8.33832, 0.33677, -0.7374), 11.6895),
        full=Model(
            ("d", "z_q", "d2", "z_q2", "log_n", "d_exp", "z_exp", "d2_exp", "z2_exp"),
            (-23.95574, -0.17521, -8.76267, -0.15764, -0.66559, 20.83395, 0.57748, -2.75571, 0.31534),
            14.26658,
        ),
        match=0.7756,
        possible=0.1752,
        cohort=COHORT,
        second_cohort=CohortParams(prior_mean=1.21, prior_sd=0.02),
    )
}


def calibration_for(second_model: str | None, first_model: str = CALIBRATED_FIRST) -> Calibration:
    """The calibration of a search by the primary model alone, or fused with `second_model`.

    A pair no study has calibrated is not fused: its event is searched with the first model alone.
    (Every calibration here was fitted for CALIBRATED_FIRST; another first model needs its own study.)
    """
    if first_model != CALIBRATED_FIRST:
        return SINGLE
    return FUSED.get(second_model or "", SINGLE)
