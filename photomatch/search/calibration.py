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
from dataclasses import dataclass

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
