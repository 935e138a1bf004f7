"""Synthetic embeddings for search tests."""

from __future__ import annotations

import numpy as np


def unit_vectors_at(base: np.ndarray, distances: list[float], rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at these L2 distances from the unit vector `base`, each in a random direction."""
    out = []
    for d in distances:
        o = rng.standard_normal(len(base))
        o -= o.dot(base) * base
        o /= np.linalg.norm(o)
        cos = 1 - d * d / 2
        out.append(cos * base + np.sqrt(max(0.0, 1 - cos * cos)) * o)
    return np.array(out, dtype=np.float32)
