"""The pure ranking logic: query face choice, grouping by photo, tiers, re-ranking, confidence."""

from __future__ import annotations

import numpy as np
import pytest

from photomatch.faces.types import Detection, Face
from photomatch.search.ranking import (
    Candidates,
    Expansion,
    NeighbourAveraging,
    QueryRejected,
    RankingParams,
    average_with_neighbours,
    best_per_photo,
    confidence,
    expand_query,
    face_quality,
    pick_query_face,
    rank_photos,
)


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


def candidates(photos: list[str], dist: list[float], quality: list[float] | None = None) -> Candidates:
    n = len(photos)
    return Candidates(
        face=np.arange(n),
        photo=list(photos),
        distance=np.array(dist),
        embedding=np.zeros((n, 4), dtype=np.float32),
        quality=np.array(quality or [1.0] * n),
    )


def test_hits_are_grouped_by_photo_and_ranked_by_distance_then_quality() -> None:
    c = candidates(["a", "b", "a", "c", "d"], [0.30, 0.20, 0.25, 0.304, 0.50], [1, 1, 1, 0.5, 1])
    hits = best_per_photo(c)
    assert [h.photo for h in hits] == ["b", "a", "c", "d"]
    assert hits[1].face == 2 and hits[1].distance == 0.25  # photo a through its closer face
    # Within the distance tie, the better face ranks first.
    tie = best_per_photo(candidates(["x", "y"], [0.3004, 0.3001], [1.0, 0.2]))
    assert [h.photo for h in tie] == ["x", "y"]


def test_tiers_split_at_the_thresholds() -> None:
    rng = np.random.default_rng(0)
    q = unit(rng.standard_normal(8))
    others = unit(rng.standard_normal((3, 8)))
    emb = unit(np.stack([q + 0.05 * others[0], q + 0.4 * others[1], q + 3 * others[2], -q]))
    d = np.linalg.norm(emb - q, axis=1)

    def knn(query: np.ndarray, radius: float) -> Candidates:
        keep = np.flatnonzero(d <= radius)
        return Candidates(keep, [f"p{i}" for i in keep], d[keep], emb[keep], np.ones(len(keep)))

    match, possible = (d[0] + d[1]) / 2, (d[1] + d[2]) / 2
    ranked = rank_photos(q, knn, RankingParams(match, possible))
    assert [h.photo for h in ranked.matches] == ["p0"]
    assert [h.photo for h in ranked.possible] == ["p1"]


def test_query_expansion_uses_one_confident_hit_per_photo() -> None:
    q = unit(np.array([1.0, 0, 0, 0]))
    emb = unit(np.array([[1, 0.1, 0, 0], [1, 0, 0.1, 0], [1, 0, 0, 0.1], [0, 1, 0, 0]], dtype=np.float32))
    c = Candidates(np.arange(4), ["a", "a", "b", "c"], np.linalg.norm(emb - q, axis=1), emb, np.ones(4))
    expanded, used = expand_query(q, c, Expansion(threshold=0.2, max_hits=10, weight=1.0))
    assert used == 2  # a (once) and b; c is too far
    assert np.isclose(np.linalg.norm(expanded), 1.0)
    assert expand_query(q, c, Expansion(threshold=0.01, max_hits=10, weight=1.0))[1] == 0


def test_neighbour_averaging_pulls_a_persons_faces_together_but_not_within_a_photo() -> None:
    a1, a2, b = unit(np.array([1.0, 0.2, 0])), unit(np.array([1.0, -0.2, 0])), unit(np.array([0, 0, 1.0]))
    emb = np.stack([a1, a2, b])
    c = Candidates(np.arange(3), ["p1", "p2", "p3"], np.zeros(3), emb, np.ones(3))
    out = average_with_neighbours(c, NeighbourAveraging(radius=0.5, weight=1.0, candidate_radius=1.0))
    assert np.allclose(out[0], out[1], atol=1e-6)  # both moved to the person's centre
    assert np.allclose(out[2], b)  # no neighbours: unchanged
    same_photo = Candidates(np.arange(3), ["p1", "p1", "p3"], np.zeros(3), emb, np.ones(3))
    assert np.allclose(average_with_neighbours(same_photo, NeighbourAveraging(0.5, 1.0, 1.0))[0], a1)


def test_confidence_is_a_decreasing_probability() -> None:
    values = [confidence(d) for d in (0.0, 0.3, 0.4, 0.5, 0.8, 2.0)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values == sorted(values, reverse=True)
    assert values[0] > 0.99 and values[-1] < 0.01


def test_face_quality_saturates_and_tolerates_missing_sharpness() -> None:
    q = face_quality(np.array([1.0, 1.0, 0.5]), np.array([200, 50, 200]), np.array([np.nan, 400, 400]))
    assert q[0] == pytest.approx(1.0) and q[1] < q[0] and q[2] == pytest.approx(0.5)
