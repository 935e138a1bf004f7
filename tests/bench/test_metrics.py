"""The accuracy measures that judge the engine must themselves be right."""

import numpy as np
import pytest

from bench.lib.metrics import (
    average_precision,
    balanced_accuracy,
    best_threshold,
    mean_average_precision,
    roc_auc,
    why_missed,
)


def test_roc_auc_perfect_random_and_inverted() -> None:
    same = np.array([1, 1, 0, 0], bool)
    assert roc_auc(same, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(same, np.array([0.8, 0.9, 0.1, 0.2])) == 0.0
    assert roc_auc(same, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    # one same-person pair ranked below one different pair: 3 of 4 orderings right
    assert roc_auc(same, np.array([0.1, 0.7, 0.6, 0.9])) == 0.75


def test_balanced_accuracy_and_best_threshold() -> None:
    same = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    dist = np.array([0.2, 0.3, 0.7, 0.4, 0.8, 0.9, 0.9, 1.0])
    assert balanced_accuracy(same, dist, 0.35) == pytest.approx((2 / 3 + 1) / 2)
    t, acc = best_threshold(same, dist)
    assert acc == pytest.approx((1 + 4 / 5) / 2) and t == 0.7


def test_average_precision() -> None:
    assert average_precision([True, True, False], 2) == 1.0
    assert average_precision([False, True, False, True], 2) == pytest.approx((1 / 2 + 2 / 4) / 2)
    # a relevant item never retrieved counts as precision 0
    assert average_precision([True, False], 2) == 0.5
    assert mean_average_precision([([True], 1), ([False, True], 1)]) == pytest.approx(0.75)


def test_a_photo_no_tier_showed_is_put_down_to_detection_the_candidates_or_the_tiers() -> None:
    why, below = why_missed(
        ["far", "lost", "low", "lower"],
        {"low": 0.12, "lower": 0.01, "lost": 0.4, "shown": 0.9},
        detected=lambda photo: photo != "lost",
    )
    # An undetected face is put down to detection even where another face of the photo was scored.
    assert why == {"not_detected": 1, "not_a_candidate": 1, "below_tiers": 2}
    assert below == [0.12, 0.01]  # in the order the photos came
    assert why_missed([], {"a": 0.5}, detected=lambda photo: True) == ({}, [])
