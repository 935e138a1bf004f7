"""WIDER FACE's official protocol as bench/lib/wider.py computes it, on boxes whose answer is known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from bench.lib.wider import Truth, at_cut, average_precision, overlaps, union

A, B, IGNORED = [10, 10, 49, 49], [100, 100, 119, 119], [200, 10, 239, 49]


def one_image() -> dict[str, Truth]:
    boxes = np.array([A, B, IGNORED], dtype=float)
    keep = {s: np.array([True, True, False]) for s in ("easy", "medium", "hard")}
    return {"x.jpg": Truth(boxes, keep)}


def test_boxes_overlap_in_the_official_plus_one_pixel_convention() -> None:
    assert overlaps(np.array([A]), np.array([A]))[0, 0] == pytest.approx(1.0)
    # 40x40 boxes shifted by 20 px: 20*40 shared pixels of 2*1600 - 800.
    assert overlaps(np.array([[0, 0, 39, 39]]), np.array([[20, 0, 59, 39]]))[0, 0] == pytest.approx(800 / 2400)


def test_average_precision_ignores_faces_that_do_not_count_and_punishes_a_false_positive() -> None:
    # A (0.9) hit; a detection on the ignored face (0.8) is neither; a false positive (0.7); B (0.6) hit.
    boxes = np.array([A, IGNORED, [400, 400, 440, 440], B], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    ap = average_precision({"x.jpg": (boxes, scores)}, one_image())
    # Recall 0.5 at precision 1, then recall 1 at precision 2/3: AP = 0.5 + 0.5 * 2/3.
    assert ap == {"easy": pytest.approx(0.8333, abs=1e-4), "medium": pytest.approx(0.8333, abs=1e-4),
                  "hard": pytest.approx(0.8333, abs=1e-4)}  # fmt: skip
    # A second detection of a face already found is a false positive too.
    twice = average_precision({"x.jpg": (np.array([A, A, B], dtype=float), np.array([0.9, 0.8, 0.7]))}, one_image())
    assert twice["hard"] == pytest.approx(0.5 + 0.5 * 2 / 3, abs=1e-4)


def test_at_the_cut_recall_precision_and_heights_count_only_what_scores_above_it() -> None:
    boxes = np.array([A, IGNORED, [400, 400, 440, 440], B], dtype=float)
    out = at_cut({"x.jpg": (boxes, np.array([0.9, 0.8, 0.7, 0.6]))}, one_image(), cut=0.65)
    assert out["recall"] == 0.5 and out["precision"] == 0.5  # A found; the false positive; B below the cut
    assert out["recall_by_height"]["32-64"] == {"recall": 1.0, "faces": 1}  # A is 40 px tall
    assert out["recall_by_height"]["16-24"] == {"recall": 0.0, "faces": 1}  # B is 20 px tall
    assert out["recall_32px_and_taller"] == 1.0 and out["detections"] == 3


def test_at_the_cut_the_faces_32_px_and_taller_are_counted_by_each_of_wider_s_labels() -> None:
    big = [300, 300, 349, 349]  # a second 50 px face, heavily occluded and missed
    boxes = np.array([A, B, IGNORED, big], dtype=float)
    keep = {s: np.array([True, True, False, True]) for s in ("easy", "medium", "hard")}
    labels = {"occlusion": np.array([0, 0, 0, 2]), "pose": np.array([0, 1, 0, 1])}
    truth = {"x.jpg": Truth(boxes, keep, labels)}
    out = at_cut({"x.jpg": (np.array([A, B], dtype=float), np.array([0.9, 0.9]))}, truth, cut=0.5)
    by = out["recall_32px_and_taller_by_label"]
    # B is under 32 px and the ignored face does not count: only A (found) and the occluded face.
    assert by["occlusion"] == {"none": {"recall": 1.0, "faces": 1}, "heavy": {"recall": 0.0, "faces": 1}}
    assert by["pose"] == {"typical": {"recall": 1.0, "faces": 1}, "atypical": {"recall": 0.0, "faces": 1}}
    # Without WIDER's labels there is nothing to break down.
    assert (
        at_cut({"x.jpg": (np.array([A]), np.array([0.9]))}, one_image(), cut=0.5)["recall_32px_and_taller_by_label"]
        == {}
    )


def test_a_second_opinion_adds_only_the_faces_the_first_detector_missed_each_at_its_own_cut() -> None:
    first = {"x.jpg": (np.array([A, [400, 400, 440, 440]], dtype=float), np.array([0.9, 0.3]))}  # A; a weak miss
    # The second finds A again (overlapping: dropped), B (new) and a false face (new), and one under its cut.
    second = {"x.jpg": (np.array([[11, 10, 50, 49], B, [300, 300, 330, 330], IGNORED], dtype=float),
                        np.array([0.95, 0.92, 0.91, 0.5]))}  # fmt: skip
    merged = union(first, second, first_cut=0.6, second_cut=0.9)
    boxes, scores = merged["x.jpg"]
    assert len(boxes) == 3 and scores[0] > 2 > scores[1]  # A (the first's), then B and the false face
    out = at_cut(merged, one_image(), 0.0)
    assert out["recall"] == 1.0 and out["precision"] == pytest.approx(2 / 3, abs=1e-4)
    alone = at_cut(first, one_image(), 0.6)
    assert alone["recall"] == 0.5 and alone["precision"] == 1.0
