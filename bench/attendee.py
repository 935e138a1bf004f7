"""The attendee teaches the search: tiers after each round of answers, per family. JSON out.

On the rendered albums of unseen people that bench/search_accuracy.py measures (half 1 of every
dev family, analysed by the real engine, cached under bench/out/search-crowds/), every selfie visits
its album as bench/lib/attendee.py's simulated attendee, through the product's ranking with the
site's calibration and its answer models: after each search it answers "this is me" or "not me" on
the k results and questions the search is least sure of, for k = 1, 3, 5, 10, and searches again
with every answer so far, up to 3 rounds, and one answer a round for 5 rounds. It answers
truthfully, and again carelessly (10% of its answers wrong). Printed per family, k and round:
matches precision and recall, possible-tier precision, both tiers' recall and the answers given per
search (fewer than k when the search has fewer unsure photos left to ask about); and, as the issue
counts answers, the best tiers reached by a visit that can give no more than 5 (`within_budget`), and
where the person's photos that such a visit (one answer a round) still left unshown lay
(`missed_after_budget`: never detected, not a candidate, or how deep among the unshown photos), and
how many of them belong to people none of whose photos such a visit showed
(`never_shown_after_budget`: no confirmed view to search with).

    uv run python bench/attendee.py [--families dev-fiw ...] [--preset crowd|small] [--seed 0]

Seconds once bench/search_accuracy.py has analysed the albums (else about 6 minutes per crowded
family on 2 CPU cores first).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Any

import numpy as np

from bench.lib.attendee import (
    ANSWERS_PER_ROUND,
    BUDGET,
    CARELESS,
    ROUNDS,
    Stage,
    Tally,
    found_none,
    visit,
    where_missed,
    within_budget,
)
from bench.lib.rendered import (
    Album,
    album_embeddings,
    album_scan,
    family_albums,
    log,
    parser,
    person_found,
    query_face,
)
from photomatch.config import Settings, get_settings
from photomatch.search.calibration import site_calibrations
from photomatch.search.ranking import Query, QueryRejected, Tiers, rank_photos

TARGETS = {
    "dev-fiw": {"both_R": 0.90, "matches_R": 0.80, "matches_P": 0.98},
    "dev-lfw": {"both_R": 0.99, "matches_P": 0.98},
    "every family": {"matches_P": 0.98, "possible_P": 0.5},
}


def stage_of(album: Album, settings: Settings) -> Stage:
    """The rendered album as the ranking scans it."""
    radius = site_calibrations(settings).search.candidate_radius
    knn = album_scan(album.photos, settings.search_max_candidates, radius)
    names = [album.photos.names[i] for i in album.photos.image]
    return Stage(knn, album_embeddings(album.photos), names)


def family_report(album: Album, settings: Settings, seed: int) -> dict[str, Any]:
    """Tiers after every round, per k, for a truthful and a careless attendee."""
    cals = site_calibrations(settings)
    stage = stage_of(album, settings)
    fuse = album.photos.second_embedding is not None and bool(settings.second_embedder)
    out: dict[str, Any] = {"selfies": 0, "refused": 0, "truthful": {}, "careless": {}}
    visits = []
    missed: Counter[str] = Counter()
    never: Counter[str] = Counter()  # people none of whose photos that visit showed, and their photos
    for identity, rel in sorted(album.truth["selfies"].items()):
        relevant = set(album.truth["identities"].get(identity, []))
        if not relevant:
            continue
        out["selfies"] += 1
        try:
            visits.append((Query.of(query_face(album, rel, settings), fuse=fuse), relevant, identity))
        except QueryRejected:
            out["refused"] += 1
    plans = [(f"k={k}", k, ROUNDS) for k in ANSWERS_PER_ROUND] + [(f"k=1, {BUDGET} rounds", 1, BUDGET)]
    for mode, careless in (("truthful", 0.0), ("careless", CARELESS)):
        for name, k, n_rounds in plans:
            rng = np.random.default_rng(seed)
            tallies = [Tally() for _ in range(n_rounds + 1)]
            for query, relevant, identity in visits:
                rounds = visit(stage, query, relevant, cals, k, n_rounds, careless=careless, rng=rng)
                for t, (ranked, fb) in zip(tallies, rounds, strict=True):
                    t.add(ranked, relevant, len(fb.me) + len(fb.not_me))
                if not careless and (k, n_rounds) == (1, BUDGET):
                    ranked, fb = rounds[-1]
                    everything = rank_photos(query, stage.knn, stage.embeddings, EVERY_CANDIDATE, cals, fb)
                    answered = set(fb.me.values()) | set(fb.not_me.values())
                    missed += where_missed(ranked, everything, relevant, answered, person_found(album, identity))
                    if found_none(ranked, relevant):
                        never["people"] += 1
                        never["photos"] += len(relevant)
            out[mode][name] = [t.report(len(visits)) for t in tallies]
        out[mode]["within_budget"] = within_budget(out[mode], {name: k for name, k, _ in plans})
    # Where the person's photos that one answer a round for five rounds still left unshown lay.
    out["truthful"]["missed_after_budget"] = dict(sorted(missed.items()))
    out["truthful"]["never_shown_after_budget"] = {"people": never["people"], "photos": never["photos"]}
    return out


# Every candidate in a tier: to see how deep the photos a visit left unshown lay.
EVERY_CANDIDATE = Tiers(match=1.0, possible=1e-12)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = get_settings()
    out: dict[str, Any] = {"preset": args.preset, "seed": args.seed, "targets": TARGETS, "families": {}}
    for family, album in family_albums(args):
        out["families"][family] = report = family_report(album, settings, args.seed)
        for mode in ("truthful", "careless"):
            for k, rounds in report[mode].items():
                if isinstance(rounds, list):
                    log(f"{family} {mode} {k}: " + " | ".join(json.dumps(r) for r in rounds))
            log(f"{family} {mode} within {BUDGET} answers: {json.dumps(report[mode]['within_budget'])}")
        unshown = report["truthful"]["missed_after_budget"]
        log(f"{family} photos left unshown after {BUDGET} answers, one a round: {unshown}")
        never = report["truthful"]["never_shown_after_budget"]
        log(f"{family} of them, people none of whose photos were shown: {never}")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
