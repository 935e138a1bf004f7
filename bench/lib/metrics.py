"""Accuracy measures shared by the benchmarks and the accuracy tests (numpy only)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np


def roc_auc(same: np.ndarray, dist: np.ndarray) -> float:
    """Probability that a random same-person pair is closer than a random different-person pair."""
    same = np.asarray(same, dtype=bool)
    d = np.asarray(dist, dtype=np.float64)
    pos, neg = d[same], d[~same]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("ROC-AUC needs both same-person and different-person pairs")
    # Mann-Whitney U with ties counted half, via ranks of the negated distance.
    order = np.argsort(-d, kind="mergesort")
    ranks = np.empty(len(d), dtype=np.float64)
    ranks[order] = np.arange(1, len(d) + 1)
    for value in np.unique(d):  # average ranks of ties
        tie = d == value
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    u = ranks[same].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def balanced_accuracy(same: np.ndarray, dist: np.ndarray, threshold: float) -> float:
    """Mean of the true-accept rate and the true-reject rate at `threshold` (accept when dist <= it)."""
    same = np.asarray(same, dtype=bool)
    accept = np.asarray(dist) <= threshold
    return float(((accept & same).sum() / same.sum() + (~accept & ~same).sum() / (~same).sum()) / 2)


def best_threshold(same: np.ndarray, dist: np.ndarray) -> tuple[float, float]:
    """The threshold with the highest balanced accuracy, and that accuracy."""
    candidates = np.unique(np.asarray(dist))
    scores = [balanced_accuracy(same, dist, t) for t in candidates]
    i = int(np.argmax(scores))
    return float(candidates[i]), float(scores[i])


def average_precision(ranked_relevant: Sequence[bool], total_relevant: int) -> float:
    """AP of one ranked list: mean precision at each relevant item, over all relevant items."""
    if total_relevant == 0:
        raise ValueError("average precision needs at least one relevant item")
    hits, total = 0, 0.0
    for k, rel in enumerate(ranked_relevant, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / total_relevant


def mean_average_precision(runs: Iterable[tuple[Sequence[bool], int]]) -> float:
    """mAP over queries, each given as (relevance of its ranked results, number of relevant items)."""
    aps = [average_precision(r, n) for r, n in runs]
    return float(np.mean(aps)) if aps else 0.0


def tar_at_far(same: np.ndarray, dist: np.ndarray, far: float) -> float:
    """Share of same-person pairs accepted at the threshold that accepts `far` of different-person pairs."""
    threshold = float(np.quantile(dist[~same], far))
    return float(np.mean(dist[same] <= threshold))


def why_missed(
    missed: Iterable[Hashable], scored: Mapping[Hashable, float], detected: Callable[[Hashable], bool]
) -> tuple[Counter[str], list[float]]:
    """Why each of the person's photos that no tier showed (`missed`) was missed: "not_detected" (no
    detection on the person's face), "not_a_candidate" (not among the candidate photos, `scored`),
    or "below_tiers" (a candidate, scored under the tiers); and the scores of the last, in order."""
    why: Counter[str] = Counter()
    below: list[float] = []
    for photo in missed:
        if not detected(photo):
            why["not_detected"] += 1
        elif photo not in scored:
            why["not_a_candidate"] += 1
        else:
            why["below_tiers"] += 1
            below.append(scored[photo])
    return why, below
