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
- d_exp, z_exp: the same, measured from the selfie expanded with its confident hits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from photomatch.search.cohort import CohortParams


@dataclass(frozen=True)
class Model:
    """A logistic model over named features."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def probability(self, x: Mapping[str, float]) -> float:
        """P(same person) for one candidate's features."""
        z = self.bias + sum(w * x[name] for name, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    def probabilities(self, columns: Mapping[str, Sequence[float]]) -> list[float]:
        """P(same person) for candidates given as feature columns."""
        n = len(next(iter(columns.values()))) if columns else 0
        return [self.probability({k: float(columns[k][i]) for k in self.features}) for i in range(n)]


# The selfie's own evidence: decides the matches tier, so a wrong expansion can never make a match.
OWN_EVIDENCE = Model(("d", "z_q", "log_n"), (-20.12814, 0.78404, -0.92991), 9.28056)
# With query expansion: ranks everything, gives the confidence, and decides the possible tier.
WITH_EXPANSION = Model(
    ("d", "z_q", "log_n", "d_exp", "z_exp"), (-25.6131, -0.10008, -0.87116, 5.10351, 0.81372), 9.15826
)

# Tier thresholds on those probabilities, fitted on the same albums: matches at pooled precision
# 0.99 (OWN_EVIDENCE >= 0.9512), the possible tier the loosest band below whose precision is still
# 0.55 (WITH_EXPANSION >= 0.1295). Unseen albums: README "Search".
MATCH_PROBABILITY = 0.9512
POSSIBLE_PROBABILITY = 0.1295

# Expansion takes the selfie's hits at least this many cohort spreads closer than a look-alike.
EXPANSION_Z = 6.0
EXPANSION_HITS = 10
# No photo further than this from the selfie is ever a candidate (P is ~0 well before it).
CANDIDATE_RADIUS = 0.6
COHORT = CohortParams()
