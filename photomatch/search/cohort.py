"""Cohort normalisation: a distance judged against the event's own look-alikes, from both sides.

A raw distance means different things in different events: in a crowd of 3,000 a stranger's face
is much more likely to come close to a selfie than in a party of 30, some selfies sit close to
everyone (hubs), and some album faces (small, blurred, a common look) sit close to everyone too.
So a distance d(q, f) is z-scored twice against impostor cohorts taken from the event itself:

- query side: the mean and spread of q's distances to the event's faces ranked `rank_lo` to
  `rank_hi` (the nearest few are skipped: they are likely the person's own appearances);
- face side: the same statistics of f's distances to the other faces of the event, leaving out
  its own photo (a person appears once per photo, so those faces are certainly someone else's,
  but they are not a random sample either).

The symmetric score is the mean of the two z-scores. bench/search_study.py measured both sides:
search uses the query side (z_q), with the distance and the event's size, in a calibrated model
(photomatch.search.calibration); the face side added little and needs per-face statistics kept
up to date as an event grows. Small events have few impostors: the cohort statistics are shrunk
towards the model's own (`prior_mean`, `prior_sd`) by `prior_weight` faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CohortParams:
    """Which neighbours form a face's impostor cohort, and the prior that small events lean on."""

    rank_lo: int = 10
    rank_hi: int = 100
    # Impostor statistics of dlib-resnet-v1 unit vectors at ranks 10-100 of crowded dev-lfw albums
    # (1,936 faces): cohort means 0.449 +- 0.017, spreads 0.015 +- 0.004.
    prior_mean: float = 0.45
    prior_sd: float = 0.015
    prior_weight: float = 20.0


def cohort_stats(
    distances: np.ndarray, params: CohortParams, *, same_photo: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `distances` (rows: faces or queries; columns: the event's faces), the cohort's mean and sd.

    `same_photo` (same shape, boolean) marks columns to leave out of each row's cohort: a face itself
    and the other faces of its photo.
    """
    d = np.asarray(distances, dtype=np.float64)
    if same_photo is not None:
        d = np.where(same_photo, np.inf, d)
    n_rows, n_cols = d.shape
    hi = min(params.rank_hi, n_cols)
    if hi == 0:
        return np.full(n_rows, params.prior_mean), np.full(n_rows, params.prior_sd)
    nearest = np.sort(np.partition(d, hi - 1, axis=1)[:, :hi] if hi < n_cols else d, axis=1)[:, :hi]
    cohort = nearest[:, min(params.rank_lo, hi) :]
    valid = np.isfinite(cohort)
    n = valid.sum(axis=1).astype(np.float64)
    values = np.where(valid, cohort, 0.0)
    mean = np.divide(values.sum(axis=1), n, out=np.zeros(n_rows), where=n > 0)
    var = np.divide(
        (np.where(valid, cohort - mean[:, None], 0.0) ** 2).sum(axis=1), n, out=np.zeros(n_rows), where=n > 0
    )
    # Shrink towards the prior: a 30-face event's cohort of 20 says less than a 3,000-face one's 90.
    w = params.prior_weight
    mu = (n * mean + w * params.prior_mean) / (n + w)
    var = (n * var + w * params.prior_sd**2 + n * w / (n + w) * (mean - params.prior_mean) ** 2) / (n + w)
    return mu, np.sqrt(np.maximum(var, 1e-6))
