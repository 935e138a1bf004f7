"""The attendee's answers in the ranking: confirmed faces are more views of the person, rejected faces
are look-alikes to tell apart, and answers that say nothing new change nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from photomatch.search.answers import Feedback
from photomatch.search.calibration import AnswerModels, CalibrationSet, Model, load_calibrations
from photomatch.search.ranking import (
    QUESTION_FLOOR,
    QUESTIONS,
    Candidates,
    Neighbours,
    Ranked,
    ReadOnce,
    rank_photos,
)
from photomatch.search.scoring import LOGIT_CLIP, answer_features, logit
from tests.support.vectors import unit_vectors_at

CALS = load_calibrations()
FUSED = next(c for c in CALS.calibrations if c.fused)
# The shipped answer models, on the first model's own calibration (the weights act on logits).
SINGLE = replace(CALS.for_models(FUSED.embedders[0]), answers=FUSED.answers)
ONE = replace(CALS, calibrations=(SINGLE,))


def test_the_shipped_calibration_knows_how_answers_change_the_search() -> None:
    models = FUSED.answers
    assert models is not None, "re-fit with `uv run python bench/fit_answers.py`"
    assert models.own.features[0] == "own" and models.full.features[0] == "full"
    # Each starts from the search's own logit with weight 1 and no bias: no answer, no change.
    assert models.own.weights[0] == models.full.weights[0] == 1.0 and models.own.bias == models.full.bias == 0.0
    gain, rival = (dict(zip(m.features, m.weights, strict=True)) for m in (models.own, models.full))
    assert gain["gain"] > 0 and rival["rival"] < 0 and gain["rival"] < 0 and rival["gain"] > 0
    # The tiers after answers, by the study's rules: matches never looser than without answers.
    assert FUSED.match <= models.match < 1 and 0 < models.possible <= models.match


def test_answer_models_round_trip_through_the_file_form() -> None:
    models = AnswerModels(Model(("own", "gain"), (1.0, 0.5), 0.0), Model(("full", "rival"), (1.0, -0.4), 0.0), 0.8, 0.1)
    assert AnswerModels.from_json(models.to_json()) == models
    data = CALS.to_json()
    assert CalibrationSet.from_json(data).calibrations == CALS.calibrations


def test_only_a_yes_counts_as_evidence() -> None:
    own, full = np.array([0.5, 0.02, 0.99]), np.array([0.5, 0.02, 0.99])
    confirmed = np.array([[4.0, -6.0, 2.0]])  # a confirmed face says yes, no, and less than the selfie
    rejected = np.array([[-1.0, -2.0, 20.0]])
    f = answer_features(own, full, confirmed, rejected)
    assert np.allclose(f.gain, [4.0, 0.0, 0.0])  # beyond an even chance and beyond the selfie only
    # The rejected face outdoes the best view of the person only on the third, and only by what
    # it says beyond it (clipped at LOGIT_CLIP).
    assert np.allclose(f.rival, [0.0, 0.0, LOGIT_CLIP - logit(np.array(0.99))])
    none = answer_features(own, full, np.zeros((0, 3)), np.zeros((0, 3)))
    assert not none.gain.any() and not none.rival.any() and np.allclose(none.own, logit(own))


def wedding():  # type: ignore[no-untyped-def]
    """An event of 600 look-alike strangers, the person's two clear photos, three photos of the person
    from an angle the selfie is far from, and three photos of a sister the selfie is close to."""
    rng = np.random.default_rng(7)
    q = unit_vectors_at(np.eye(128, dtype=np.float32)[0], [1.2], rng)[0]
    angle = unit_vectors_at(q, [0.45], rng)[0]
    sister = unit_vectors_at(q, [0.36], rng)[0]
    faces = np.concatenate(
        [
            unit_vectors_at(q, [0.2, 0.25], rng),  # clear: "me1", "me2"
            unit_vectors_at(angle, [0.12, 0.12, 0.12], rng),  # from an angle: "angle0".."angle2"
            unit_vectors_at(sister, [0.1, 0.1, 0.1], rng),  # the sister: "sister0".."sister2"
            unit_vectors_at(q, list(rng.normal(0.5, 0.04, 600).clip(0.3, None)), rng),
        ]
    )
    photos = ["me1", "me2"] + [f"angle{i}" for i in range(3)] + [f"sister{i}" for i in range(3)]
    photos += [f"stranger{i}" for i in range(600)]

    def knn(v: np.ndarray, _s: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        d = np.linalg.norm(faces - v[None, :], axis=1).astype(np.float64)
        order = np.argsort(d)[:2000] if among is None else np.asarray(among)[np.argsort(d[np.asarray(among)])]
        near = order[d[order] <= CALS.search.candidate_radius]
        return Neighbours(
            Candidates(near, [photos[i] for i in near], d[near], np.ones(len(near))), d[order], order, 608
        )

    def embeddings(ids: np.ndarray, second: bool = False) -> np.ndarray:
        return faces[np.asarray(ids, dtype=np.int64)]

    return q, knn, embeddings


def confidence(r: Ranked) -> dict[str, float]:
    return {str(h.photo): h.confidence for h in r.matches + r.possible + r.questions}


def everything(r: Ranked) -> list[str]:
    return [str(h.photo) for h in r.matches + r.possible]


def test_no_answers_change_nothing() -> None:
    q, knn, emb = wedding()
    before, empty = rank_photos(q, knn, emb, None, ONE), rank_photos(q, knn, emb, None, ONE, Feedback())
    assert before == empty
    assert {"me1", "me2"} <= {str(h.photo) for h in before.matches}


def test_a_confirmed_face_brings_the_persons_other_photos_like_it() -> None:
    q, knn, emb = wedding()
    before = rank_photos(q, knn, emb, None, ONE)
    after = rank_photos(q, knn, emb, None, ONE, Feedback(me={2: "angle0"}))
    assert after.matches[0].photo == "angle0" and after.matches[0].confidence == 1.0
    was, now = confidence(before), confidence(after)
    for photo in ("angle1", "angle2"):
        assert now[photo] > was.get(photo, 0.0)
        assert photo in everything(after)
    assert {"me1", "me2"} <= {str(h.photo) for h in after.matches}  # the selfie's matches stay


def test_a_rejected_look_alike_pushes_down_her_other_photos_and_never_comes_back() -> None:
    q, knn, emb = wedding()
    before = rank_photos(q, knn, emb, None, ONE)
    after = rank_photos(q, knn, emb, None, ONE, Feedback(not_me={5: "sister0"}))
    assert "sister0" not in everything(after) + [str(h.photo) for h in after.questions]
    was, now = confidence(before), confidence(after)
    for photo in ("sister1", "sister2"):
        assert photo in was and now.get(photo, 0.0) < was[photo]
    assert {"me1", "me2"} <= {str(h.photo) for h in after.matches}


def test_with_answers_each_face_is_read_from_the_store_once() -> None:
    q, knn, emb = wedding()
    reads: list[tuple[int, bool]] = []

    def counted(ids: np.ndarray, second: bool = False) -> np.ndarray:
        reads.extend((int(i), second) for i in np.asarray(ids).reshape(-1))
        return emb(ids, second)

    answers = Feedback(me={2: "angle0", 0: "me1"}, not_me={5: "sister0"})
    ranked = rank_photos(q, knn, counted, None, ONE, answers)
    assert ranked.matches[0].confidence == 1.0
    # The confirmed faces are wanted by the expansion, the confirmed hits and the answer features.
    assert {(2, False), (0, False), (5, False)} <= set(reads) and len(reads) == len(set(reads))


def test_read_once_gives_the_stores_rows_in_the_order_asked_whatever_was_read_before() -> None:
    store = np.arange(40, dtype=np.float32).reshape(10, 4)
    calls: list[list[int]] = []

    def fetch(ids: np.ndarray, second: bool = False) -> np.ndarray:
        calls.append([int(i) for i in ids])
        return store[np.asarray(ids, dtype=np.int64)] + (100 if second else 0)

    once = ReadOnce(fetch)
    assert np.array_equal(once(np.array([3, 1])), store[[3, 1]])
    assert np.array_equal(once(np.array([1, 7, 3, 7])), store[[1, 7, 3, 7]])
    assert np.array_equal(once(np.array([3]), True), store[[3]] + 100)  # the second model apart
    assert once(np.array([], dtype=np.int64)).shape == (0, 4)
    assert calls == [[1, 3], [7], [3], []]


def test_without_answer_models_answers_only_confirm_and_remove() -> None:
    q, knn, emb = wedding()
    plain = replace(CALS, calibrations=(replace(SINGLE, answers=None),))
    before = rank_photos(q, knn, emb, None, plain)
    after = rank_photos(q, knn, emb, None, plain, Feedback(me={2: "angle0"}, not_me={5: "sister0"}))
    assert after.matches[0].photo == "angle0" and "sister0" not in everything(after)
    assert {"me1", "me2"} <= {str(h.photo) for h in after.matches}
    # The selfie's own evidence is untouched: only the expansion, and so the confidence, learns.
    own = {h.photo: h.own_evidence for h in before.matches + before.possible}
    assert all(h.own_evidence == own[h.photo] for h in after.matches[1:] + after.possible if h.photo in own)


def test_questions_are_the_likeliest_photos_below_the_possible_tier() -> None:
    q, knn, emb = wedding()
    r = rank_photos(q, knn, emb, None, ONE)
    assert r.questions and len(r.questions) <= QUESTIONS
    assert all(QUESTION_FLOOR <= h.confidence < SINGLE.possible and h.own_evidence < SINGLE.match for h in r.questions)
    assert [h.confidence for h in r.questions] == sorted((h.confidence for h in r.questions), reverse=True)
    assert not {h.photo for h in r.questions} & {h.photo for h in r.matches + r.possible}
