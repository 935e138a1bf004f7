"""The pure ranking logic: query face choice, one face per photo, cohort statistics, calibrated tiers."""

from __future__ import annotations

import numpy as np
import pytest

from photomatch.faces.types import Detection, Face
from photomatch.search.calibration import NotCalibrated, load_calibrations
from photomatch.search.cohort import CohortParams, cohort_stats
from photomatch.search.ranking import (
    Candidates,
    Embeddings,
    Knn,
    Neighbours,
    Query,
    QueryRejected,
    Tiers,
    closest_per_photo,
    expand_query,
    face_quality,
    pick_query_face,
    rank_photos,
)
from photomatch.search.scoring import Features
from tests.support.vectors import unit_vectors_at

# The default detector's shipped calibration (photomatch/search/calibrations/): dlib alone, and fused with SFace.
CALS = load_calibrations()
SINGLE = CALS.for_models("dlib-resnet-v1")
CANDIDATE_RADIUS = CALS.search.candidate_radius
EXPANSION_PROBABILITY = CALS.search.expansion_probability
MATCH_PROBABILITY, POSSIBLE_PROBABILITY = SINGLE.match, SINGLE.possible


def face(box: tuple[float, float, float, float], p: float = 0.99, sharp: float = 200.0) -> Face:
    return Face(Detection(box=box, landmarks=((0.0, 0.0),) * 5, probability=p), sharpness=sharp)  # type: ignore[arg-type]


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_the_most_prominent_face_is_the_largest_weighted_by_probability() -> None:
    big_unsure, medium_sure = face((0, 0, 200, 200), p=0.4), face((0, 0, 150, 150), p=0.99)
    assert pick_query_face([big_unsure, medium_sure], min_size=40, min_sharpness=10) is medium_sure
    assert pick_query_face([medium_sure, face((0, 0, 300, 300))], min_size=40, min_sharpness=10).detection.size == 300


@pytest.mark.parametrize(
    ("faces", "reason"),
    [
        ([], "no_face"),
        ([face((0, 0, 30, 30))], "face_too_small"),
        ([face((0, 0, 200, 200), sharp=3.0)], "face_too_blurred"),
    ],
)
def test_unusable_selfies_are_refused_with_distinct_messages(faces: list[Face], reason: str) -> None:
    with pytest.raises(QueryRejected) as info:
        pick_query_face(faces, min_size=40, min_sharpness=10)
    assert info.value.reason == reason
    assert str(info.value) and "Traceback" not in str(info.value)


def candidates(photos: list[str], distances: list[float], quality: list[float] | None = None) -> Candidates:
    n = len(photos)
    return Candidates(
        face=np.arange(n),
        photo=list(photos),
        distance=np.array(distances, dtype=np.float64),
        quality=np.array(quality or [1.0] * n),
    )


def test_each_photo_counts_once_through_its_closest_face() -> None:
    c = candidates(["a", "b", "a", "c"], [0.30, 0.20, 0.25, 0.30], [1, 1, 1, 0.5])
    best = closest_per_photo(c)
    assert sorted(c.photo[i] for i in best) == ["a", "b", "c"]
    assert 2 in best and 0 not in best  # photo a through its closer face
    tie = closest_per_photo(candidates(["x", "x"], [0.3, 0.3], [0.2, 1.0]))
    assert list(tie) == [1]  # equally close: the better face


def test_cohort_statistics_skip_the_nearest_and_lean_on_the_prior_when_few() -> None:
    params = CohortParams(rank_lo=2, rank_hi=6, prior_mean=0.5, prior_sd=0.1, prior_weight=0)
    d = np.array([[0.1, 0.2, 0.4, 0.4, 0.6, 0.6, 0.9, 0.9]])
    mu, sd = cohort_stats(d, params)
    assert mu[0] == pytest.approx(0.5) and sd[0] == pytest.approx(0.1)  # ranks 2-5: 0.4 0.4 0.6 0.6
    shrunk, _ = cohort_stats(d, CohortParams(rank_lo=2, rank_hi=6, prior_mean=0.9, prior_sd=0.1, prior_weight=4))
    assert shrunk[0] == pytest.approx(0.7)  # 4 cohort faces and a prior worth 4
    # A face's own photo is not its cohort (a person appears once per photo).
    same_photo = np.zeros_like(d, dtype=bool)
    same_photo[0, 2:4] = True
    masked, _ = cohort_stats(d, params, same_photo=same_photo)
    assert masked[0] == pytest.approx(np.mean([0.6, 0.6, 0.9, 0.9]))


def event(person: list[float], impostors: np.ndarray, query: np.ndarray) -> tuple[Knn, Embeddings]:
    """A knn over a synthetic event: the person's faces at the given distances, impostors beyond."""
    e = unit_vectors_at(query, list(person) + list(impostors), np.random.default_rng(1))
    photos = [f"p{i}" for i in range(len(e))]

    def knn(q: np.ndarray, _s: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        d = np.linalg.norm(e - q[None, :], axis=1).astype(np.float64)
        order = np.argsort(d)[:100] if among is None else np.asarray(among)[np.argsort(d[np.asarray(among)])]
        near = order[d[order] <= CANDIDATE_RADIUS]
        c = Candidates(near, [photos[i] for i in near], d[near], np.ones(len(near)))
        return Neighbours(c, d[order], order, len(e))

    return knn, lambda ids: e[np.asarray(ids)]


def test_a_distance_that_matches_at_a_party_does_not_match_in_a_crowd_of_look_alikes() -> None:
    q = unit(np.random.default_rng(0).standard_normal(128))
    rng = np.random.default_rng(2)
    party = event([0.2], rng.uniform(0.65, 0.95, 40), q)
    crowd = event([0.2], rng.normal(0.26, 0.02, 3000).clip(0.21, None), q)
    at_party, in_crowd = rank_photos(q, *party), rank_photos(q, *crowd)
    assert [h.photo for h in at_party.matches] == ["p0"]
    assert "p0" not in [h.photo for h in in_crowd.matches]
    confidence = {h.photo: h.confidence for h in in_crowd.matches + in_crowd.possible}
    assert confidence.get("p0", 0.0) < at_party.matches[0].confidence


def test_tiers_follow_the_two_models_and_are_ordered_by_confidence() -> None:
    q = unit(np.random.default_rng(3).standard_normal(128))
    rng = np.random.default_rng(4)
    knn, embeddings = event([0.2, 0.25, 0.33, 0.38, 0.41], rng.normal(0.5, 0.04, 600).clip(0.3, None), q)
    ranked = rank_photos(q, knn, embeddings)
    assert ranked.matches and ranked.event_faces == 605
    assert all(h.own_evidence >= MATCH_PROBABILITY for h in ranked.matches)
    assert all(
        h.own_evidence < MATCH_PROBABILITY <= 1 and h.confidence >= POSSIBLE_PROBABILITY for h in ranked.possible
    )
    for tier in (ranked.matches, ranked.possible):
        assert [h.confidence for h in tier] == sorted((h.confidence for h in tier), reverse=True)
    strict = rank_photos(q, knn, embeddings, Tiers(match=0.999, possible=0.999))
    assert len(strict.matches) <= len(ranked.matches) and len(strict.possible) <= len(ranked.possible)


def test_query_expansion_takes_one_likely_hit_per_photo() -> None:
    q = unit(np.array([1.0, 0, 0, 0]))
    emb = unit(np.array([[1, 0.1, 0, 0], [1, 0, 0.1, 0], [1, 0, 0, 0.1], [0, 1, 0, 0]], dtype=np.float32))
    c = Candidates(np.arange(4), ["a", "a", "b", "c"], np.linalg.norm(emb - q, axis=1), np.ones(4))
    own = np.array([0.99, 0.9, EXPANSION_PROBABILITY, EXPANSION_PROBABILITY - 0.01])
    read: list[list[int]] = []

    def embeddings(ids: np.ndarray) -> np.ndarray:
        read.append(list(ids))
        return emb[ids]

    expanded, used, no_second = expand_query(q, c, own, embeddings)
    assert used == 2 and read == [[0, 2]]  # a (once, its best face) and b; c is not likely enough
    assert np.isclose(np.linalg.norm(expanded), 1.0) and no_second is None
    assert expand_query(q, c, own - 0.6, embeddings)[1] == 0


def test_the_models_give_probabilities_that_fall_with_distance() -> None:
    d = np.array([0.0, 0.3, 0.4, 0.5, 0.8])
    x = Features(d=d, z_q=np.zeros(5), log_n=np.full(5, np.log(1000)), d_exp=d, z_exp=np.zeros(5))
    for model in (SINGLE.own, SINGLE.full):
        values = model.probabilities(x).tolist()
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values == sorted(values, reverse=True)
    assert 0 < POSSIBLE_PROBABILITY < MATCH_PROBABILITY < 1


def test_face_quality_saturates_and_tolerates_missing_sharpness() -> None:
    q = face_quality(np.array([1.0, 1.0, 0.5]), np.array([200, 50, 200]), np.array([np.nan, 400, 400]))
    assert q[0] == pytest.approx(1.0) and q[1] < q[0] and q[2] == pytest.approx(0.5)


def vectors_at(query: np.ndarray, distances: list[float], seed: int) -> np.ndarray:
    """Unit vectors at the given distances from a unit query."""
    return unit_vectors_at(query, distances, np.random.default_rng(seed))


def fused_event(first: list[float], second: list[float], q1: np.ndarray, q2: np.ndarray, with_second: bool = True):  # type: ignore[no-untyped-def]
    """A knn over an event whose faces sit at `first` from q1 and `second` from q2 (one photo each)."""
    e1, e2 = vectors_at(q1, first, 10), vectors_at(q2, second, 11)
    photos = [f"p{i}" for i in range(len(e1))]

    def knn(q: np.ndarray, s: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        d = np.linalg.norm(e1 - q[None, :], axis=1).astype(np.float64)
        order = np.argsort(d)[:2000] if among is None else np.asarray(among)[np.argsort(d[np.asarray(among)])]
        near = order[d[order] <= CANDIDATE_RADIUS]
        d2 = np.linalg.norm(e2 - s[None, :], axis=1).astype(np.float64) if s is not None and with_second else None
        c = Candidates(near, [photos[i] for i in near], d[near], np.ones(len(near)), None if d2 is None else d2[near])
        return Neighbours(c, d[order], order, len(e1), None if d2 is None else d2[order])

    def embeddings(ids: np.ndarray, second: bool = False) -> np.ndarray:
        return (e2 if second else e1)[np.asarray(ids)]

    return knn, embeddings


def test_fusion_tells_a_look_alike_from_the_person_where_one_model_cannot() -> None:
    """p0 is the person (close by both models); p1 a look-alike just as close by the first model
    but a stranger to the second. Fused, only the person matches; the first model alone cannot
    tell them apart."""
    rng = np.random.default_rng(5)
    q1, q2 = unit(rng.standard_normal(128)), unit(rng.standard_normal(128))
    strangers = 300
    first = [0.33, 0.33] + list(rng.normal(0.5, 0.03, strangers).clip(0.36, None))
    second = [0.95, 1.3] + list(rng.normal(1.3, 0.04, strangers).clip(1.1, None))
    knn, embeddings = fused_event(first, second, q1, q2)
    fused = rank_photos(Query(q1, q2, "sface-2021dec-int8bq"), knn, embeddings)
    assert fused.fused_with == "sface-2021dec-int8bq"
    conf = {h.photo: h.confidence for h in fused.matches + fused.possible}
    assert "p0" in [h.photo for h in fused.matches]
    assert "p1" not in [h.photo for h in fused.matches] and conf.get("p1", 0.0) < 0.05
    alone = rank_photos(q1, knn, embeddings)
    assert alone.fused_with is None
    conf_alone = {h.photo: h.confidence for h in alone.matches + alone.possible}
    assert conf_alone.get("p0", 0.0) == pytest.approx(conf_alone.get("p1", 0.0), abs=0.05)


def test_without_the_second_models_distances_search_falls_back_to_the_first_alone() -> None:
    rng = np.random.default_rng(6)
    q1, q2 = unit(rng.standard_normal(128)), unit(rng.standard_normal(128))
    first = [0.2] + list(rng.normal(0.5, 0.03, 200).clip(0.36, None))
    knn, embeddings = fused_event(first, [0.9] + [1.3] * 200, q1, q2, with_second=False)
    ranked = rank_photos(Query(q1, q2, "sface-2021dec-int8bq"), knn, embeddings)
    assert ranked.fused_with is None
    assert [h.photo for h in ranked.matches] == ["p0"]
    assert ranked.tiers == Tiers(MATCH_PROBABILITY, POSSIBLE_PROBABILITY)


def test_a_face_without_a_distance_in_the_expanded_scan_counts_as_its_farthest() -> None:
    from photomatch.search.ranking import _from_scan

    d = _from_scan(np.array([1, 2, 3]), np.array([1, 2, 9]), np.array([0.3, np.nan, 0.8]))
    assert d.tolist() == [0.3, 0.8, 0.8]  # 2: no second vector stored; 3: beyond the scan


def test_a_second_model_without_a_calibration_is_not_fused() -> None:
    rng = np.random.default_rng(7)
    q1, q2 = unit(rng.standard_normal(128)), unit(rng.standard_normal(128))
    first = [0.2] + list(rng.normal(0.5, 0.03, 200).clip(0.36, None))
    knn, embeddings = fused_event(first, [0.9] + [1.3] * 200, q1, q2)
    ranked = rank_photos(Query(q1, q2, "some-uncalibrated-model"), knn, embeddings)
    assert ranked.fused_with is None and [h.photo for h in ranked.matches] == ["p0"]


@pytest.mark.parametrize(
    ("embedder", "second", "fused"),
    [
        ("dlib-resnet-v1", "sface-2021dec-int8bq", True),
        ("dlib-resnet-v1", None, False),  # an event made before the second embedder
        ("dlib-resnet-v1", "some-uncalibrated-model", False),
        # Every calibration was fitted for dlib's net: another first model is never fused with them.
        ("facenet-vggface2", "sface-2021dec-int8bq", False),
    ],
)
def test_an_event_is_searched_fused_only_where_its_pair_of_models_is_calibrated(
    embedder: str, second: str | None, fused: bool
) -> None:
    from types import SimpleNamespace

    from photomatch.search.event_scan import query_for

    rng = np.random.default_rng(3)
    det = Detection((0.0, 0.0, 100.0, 100.0), ((30.0, 40.0),) * 5, 0.99)
    face = Face(det, 50.0, unit(rng.standard_normal(128)), embedder, unit(rng.standard_normal(128)), second)
    event = SimpleNamespace(embedder=embedder, second_embedder=second)
    query = query_for(face, event, CALS)  # type: ignore[arg-type]
    assert (query.second is not None, query.second_model is not None) == (fused, fused)
    assert CALS.fuses(embedder, second) == fused


def test_a_first_model_without_a_calibration_is_refused_rather_than_ranked_with_another_models_numbers() -> None:
    with pytest.raises(NotCalibrated, match="facenet-vggface2"):
        CALS.for_models("facenet-vggface2", "sface-2021dec-int8bq")
    q = unit(np.random.default_rng(8).standard_normal(128))
    knn, embeddings = event([0.2], np.random.default_rng(9).uniform(0.65, 0.95, 40), q)
    with pytest.raises(NotCalibrated):
        rank_photos(Query(q, model="facenet-vggface2"), knn, embeddings)
