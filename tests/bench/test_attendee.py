"""The simulated attendee asks about what the search is least sure of, and counts the tiers honestly."""

from __future__ import annotations

from bench.lib.attendee import Tally, least_sure
from photomatch.search.ranking import PhotoHit, Ranked, Tiers


def hit(photo: str, face: int, confidence: float) -> PhotoHit:
    return PhotoHit(photo, face, 0.4, 1.0, confidence, confidence)


def test_the_attendee_answers_what_the_search_is_least_sure_of_first() -> None:
    ranked = Ranked(
        matches=[hit("sure", 1, 0.99), hit("confirmed", 2, 1.0), hit("likely", 3, 0.8)],
        possible=[hit("even", 4, 0.52), hit("doubt", 5, 0.3)],
        questions=[hit("asked", 6, 0.06)],
        tiers=Tiers(match=0.8, possible=0.15),
    )
    # Nearest the possible tier's boundary in log-odds (0.15: -1.73) first.
    assert [h.photo for h in least_sure(ranked, 3, answered=())] == ["doubt", "asked", "even"]
    # Confirmed photos are certain, answered faces are not asked again, and the pool can run out.
    assert [h.photo for h in least_sure(ranked, 10, answered={5})] == ["asked", "even", "likely", "sure"]


def test_the_tally_counts_each_tier_against_the_truth() -> None:
    t = Tally()
    t.add(Ranked(matches=[hit("a", 1, 0.9), hit("x", 2, 0.9)], possible=[hit("b", 3, 0.3)]), {"a", "b", "c"}, 2)
    t.add(Ranked(), {"d"})
    assert t.report(2) == {
        "matches_P": 0.5,
        "matches_R": 0.25,
        "possible_P": 1.0,
        "possible_per_search": 0.5,
        "both_R": 0.5,
        "answers_per_search": 1.0,
    }
    assert Tally().report(1)["matches_P"] is None  # nothing shown is not a precision of 0 or 1
