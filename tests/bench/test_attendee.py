"""The simulated attendee asks about what the search is least sure of, and counts the tiers honestly."""

from __future__ import annotations

from bench.lib.attendee import BUDGET, Tally, found_none, least_sure, where_missed, within_budget
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


def test_the_budget_counts_only_rounds_in_which_no_visit_could_give_more_than_five_answers() -> None:
    def row(both: float, matches: float, precision: float | None = 1.0) -> dict:
        return {"both_R": both, "matches_R": matches, "matches_P": precision}

    assert BUDGET == 5
    reports = {
        # Round 0 (no answers) never counts; k = 5 counts its first round only, k = 1 its first five.
        "k=5": [row(0.99, 0.9), row(0.80, 0.70, 0.97), row(0.95, 0.95)],
        "k=1, 5 rounds": [
            row(0.5, 0.4),
            row(0.6, 0.5),
            row(0.7, 0.6),
            row(0.75, 0.72),
            row(0.78, 0.74),
            row(0.79, 0.71),
        ],
        "k=10": [row(0.5, 0.5), row(0.99, 0.99, 0.5)],
        "within_budget": [],  # anything that is not a plan is ignored
    }
    best = within_budget(reports, {"k=5": 5, "k=1, 5 rounds": 1, "k=10": 10})
    assert best["both_R"] == {"value": 0.80, "plan": "k=5", "round": 1}
    assert best["matches_R"] == {"value": 0.74, "plan": "k=1, 5 rounds", "round": 4}
    assert best["lowest_matches_P"] == 0.97 and best["answers_at_most"] == 5


def test_a_missed_photo_is_put_down_to_detection_the_candidates_or_how_deep_it_lay() -> None:
    final = Ranked(matches=[hit("shown", 1, 0.99)], possible=[hit("also shown", 2, 0.4)])
    everything = Ranked(
        matches=[hit("shown", 1, 0.99)],
        possible=[hit("also shown", 2, 0.4)]
        + [hit(f"other {i}", 10 + i, 0.1 - i / 100) for i in range(3)]
        + [hit("third", 20, 0.05), hit("answered", 21, 0.04)]
        + [hit(f"more {i}", 30 + i, 0.03 - i / 1000) for i in range(8)]
        + [hit("deep", 40, 0.001), hit("lost", 41, 0.001)],
    )
    relevant = {"shown", "also shown", "third", "deep", "lost", "absent", "hidden"}
    missed = where_missed(final, everything, relevant, answered={"answered"}, detected=lambda p: p != "lost")
    # "third" lies 4th among the unshown (the answered photo does not count); "deep" 13th; "lost" was
    # never detected; "absent" and "hidden" were detected but no face of theirs was a candidate.
    assert missed == {"unshown_top_5": 1, "deeper": 1, "not_detected": 1, "not_a_candidate": 2}


def test_a_visit_found_none_only_when_no_photo_of_the_person_was_shown_in_either_tier() -> None:
    final = Ranked(matches=[hit("a", 1, 1.0)], possible=[hit("b", 2, 0.3)], questions=[hit("c", 3, 0.05)])
    assert not found_none(final, {"a", "z"})
    assert not found_none(final, {"b"})
    # A question is not shown: it is asked about, not a result.
    assert found_none(final, {"c", "z"})
    assert found_none(Ranked(), {"a"})
