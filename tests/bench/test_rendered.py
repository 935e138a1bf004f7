"""The rendered-album search puts each missed photo down to detection, the candidates or the tiers."""

from __future__ import annotations

from bench.lib.rendered import why_missed


def test_a_photo_no_tier_showed_is_put_down_to_detection_the_candidates_or_the_tiers() -> None:
    why, below = why_missed(
        {"lost", "far", "low", "lower"},
        {"low": 0.12, "lower": 0.01, "lost": 0.4, "shown": 0.9},
        detected=lambda photo: photo != "lost",
    )
    # An undetected face is put down to detection even where another face of the photo was scored.
    assert why == {"not_detected": 1, "not_a_candidate": 1, "below_tiers": 2}
    assert below == [0.12, 0.01]  # in the photos' order: "low", "lower"
    assert why_missed(set(), {"a": 0.5}, detected=lambda photo: True) == ({}, [])
