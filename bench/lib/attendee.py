"""A simulated attendee: searches with a selfie, answers the k results the search is least sure of,
and searches again with the answers, through the product's ranking (photomatch.search.ranking).

bench/fit_answers.py fits the calibration's answer models on such visits to albums of the fitting
half; bench/attendee.py reports the tiers after every round on rendered albums of unseen people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.lib.metrics import why_missed
from photomatch.search.answers import Feedback
from photomatch.search.calibration import CalibrationSet
from photomatch.search.ranking import Embeddings, Knn, PhotoHit, Query, Ranked, Tiers, rank_photos
from photomatch.search.scoring import logit

# How many answers per round the benchmark tries, and how many rounds at most.
ANSWERS_PER_ROUND = (1, 3, 5, 10)
ROUNDS = 3
# The targets count answers: an attendee who gives at most this many in a visit, either all
# at once or one a round, for as many rounds.
BUDGET = 5
CARELESS = 0.1  # the careless attendee's share of wrong answers


@dataclass
class Stage:
    """The faces a visit searches: row i is face id i, of photo[i]."""

    knn: Knn
    embeddings: Embeddings
    photo: list[Hashable]


def least_sure(ranked: Ranked, k: int, answered: Collection[int]) -> list[PhotoHit]:
    """The k results and questions the search is least sure of, not answered yet: whose confidence is
    nearest the possible tier's boundary (in log-odds), where an answer decides whether a photo is
    shown at all."""
    pool = [
        h for h in ranked.matches + ranked.possible + ranked.questions if h.face not in answered and h.confidence < 1.0
    ]
    edge = float(logit(np.array(ranked.tiers.possible or 0.5)))
    return sorted(pool, key=lambda h: (abs(float(logit(np.array(h.confidence))) - edge), str(h.photo)))[:k]


def visit(
    stage: Stage,
    query: Query,
    relevant: set[Any],
    cals: CalibrationSet,
    k: int,
    rounds: int = ROUNDS,
    *,
    careless: float = 0.0,
    rng: np.random.Generator | None = None,
    tiers: Tiers | None = None,
) -> list[tuple[Ranked, Feedback]]:
    """Each round's ranking and the answers it was given (round 0: none). After every search the
    attendee answers the k results it is least sure of as the page asks, about the photo: "this is
    me" when they are in it (`relevant`), "not me" when not; wrongly with chance `careless`."""
    me: dict[int, Hashable] = {}
    not_me: dict[int, Hashable] = {}
    out = []
    for r in range(rounds + 1):
        fb = Feedback(dict(me), dict(not_me))
        ranked = rank_photos(query, stage.knn, stage.embeddings, tiers, cals, fb)
        out.append((ranked, fb))
        if r == rounds:
            break
        for h in least_sure(ranked, k, me.keys() | not_me.keys()):
            truth = h.photo in relevant
            if careless and rng is not None and rng.random() < careless:
                truth = not truth
            (me if truth else not_me)[h.face] = h.photo
    return out


def without_answer_models(cals: CalibrationSet) -> CalibrationSet:
    """The same calibrations with no answer models: answers then only confirm and remove photos."""
    return replace(cals, calibrations=tuple(replace(c, answers=None) for c in cals.calibrations))


@dataclass
class Tally:
    """The tiers of many searches against the truth: what bench/attendee.py prints per round."""

    match_tp: int = 0
    match_n: int = 0
    possible_tp: int = 0
    possible_n: int = 0
    relevant: int = 0
    answers: int = 0

    def add(self, ranked: Ranked, relevant: set[Any], answers: int = 0) -> None:
        """One search's tiers; `relevant`: the photos that show the person."""
        self.match_n += len(ranked.matches)
        self.match_tp += sum(h.photo in relevant for h in ranked.matches)
        self.possible_n += len(ranked.possible)
        self.possible_tp += sum(h.photo in relevant for h in ranked.possible)
        self.relevant += len(relevant)
        self.answers += answers

    def report(self, searches: int) -> dict[str, float | None]:
        """Precision and recall of the tiers (a precision is None where its tier showed nothing), the
        possible tier's photos and the answers given, per search."""
        return {
            "matches_P": round(self.match_tp / self.match_n, 4) if self.match_n else None,
            "matches_R": round(self.match_tp / max(1, self.relevant), 4),
            "possible_P": round(self.possible_tp / self.possible_n, 4) if self.possible_n else None,
            "possible_per_search": round(self.possible_n / max(1, searches), 2),
            "both_R": round((self.match_tp + self.possible_tp) / max(1, self.relevant), 4),
            "answers_per_search": round(self.answers / max(1, searches), 2),
        }


def within_budget(reports: dict[str, list[dict[str, Any]]], per_round: dict[str, int]) -> dict[str, Any]:
    """Over the plans and rounds in which no visit can have given more than BUDGET answers (k answers
    a round for r rounds, k * r <= BUDGET): the best both-tier and matches recall, each with where it
    was reached, and the lowest matches precision among them all."""
    rows = [
        (name, r, row)
        for name, plan in reports.items()
        if name in per_round
        for r, row in enumerate(plan)
        if 0 < per_round[name] * r <= BUDGET
    ]
    out: dict[str, Any] = {"answers_at_most": BUDGET}
    for measure in ("both_R", "matches_R"):
        name, r, row = max(rows, key=lambda x: x[2][measure])
        out[measure] = {"value": row[measure], "plan": name, "round": r}
    precisions = [row["matches_P"] for _, _, row in rows if row["matches_P"] is not None]
    out["lowest_matches_P"] = min(precisions) if precisions else None
    return out


MISS_DEPTHS = (1, 5, 10)


def shown_photos(ranked: Ranked) -> set[Hashable]:
    """The photos a search shows as results: both tiers (questions are asked about, not shown)."""
    return {h.photo for h in ranked.matches + ranked.possible}


def found_none(final: Ranked, relevant: Collection[Hashable]) -> bool:
    """Whether a visit ended (`final`, its last search) with none of the person's photos shown: no
    confirmed view of them to search with, however many answers were left."""
    shown = shown_photos(final)
    return not any(photo in shown for photo in relevant)


def where_missed(
    final: Ranked,
    everything: Ranked,
    relevant: Collection[Hashable],
    answered: Collection[Hashable],
    detected: Callable[[Hashable], bool],
) -> Counter[str]:
    """Why each photo of the person was still not shown when a visit ended (`final`, its last
    search): the person's face was never detected in it ("not_detected"), no face of it was a
    candidate ("not_a_candidate"), or how deep it lay among the candidate photos neither shown nor
    answered ("unshown_top_1", "_5", "_10", else "deeper"), ranked as `everything` (the same search
    with every candidate in a tier) ranks them: where better questions could still have reached it."""
    shown = shown_photos(final)
    unshown = [
        h.photo for h in everything.matches + everything.possible if h.photo not in shown and h.photo not in answered
    ]
    depth = {photo: float(i + 1) for i, photo in enumerate(unshown)}
    why, depths = why_missed([photo for photo in relevant if photo not in shown], depth, detected)
    out = Counter({reason: n for reason, n in why.items() if reason != "below_tiers"})
    for d in depths:
        out[next((f"unshown_top_{m}" for m in MISS_DEPTHS if d <= m), "deeper")] += 1
    return out
