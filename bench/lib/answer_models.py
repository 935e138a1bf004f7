"""The answer models' fit: simulated attendees visit albums of the fitting half (bench/lib/study.py's
sampling) through the product's ranking, and two logistic models learn how "this is me" and "not me"
change search's probabilities. bench/fit_answers.py runs it alone, bench/calibrate.py last; the
full description is bench/fit_answers.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib import study
from bench.lib.attendee import ANSWERS_PER_ROUND, ROUNDS, Stage, Tally, visit, without_answer_models
from bench.lib.rendered import embeddings_of, scan_of
from photomatch.config import get_settings
from photomatch.search.calibration import AnswerModels, Calibration, CalibrationSet, Model, site_calibrations
from photomatch.search.ranking import Query, Tiers, answer_features_of, face_quality, rank_photos
from photomatch.search.scoring import AnswerFeatures

# Each answer model starts from the search's logit before the answers (weight 1: no answer, no
# change) and learns what a confirmed view's gain and a rejected look-alike's lead are worth.
OWN = ("own", "gain", "rival")
FULL = ("full", "gain", "rival")


def stage_of(al: study.Album, cals: CalibrationSet) -> Stage:
    """A sampled album as the ranking scans it."""
    quality = face_quality(al.quality[:, 0], al.quality[:, 1], al.quality[:, 2])
    photo = al.photo.tolist()
    knn = scan_of(al.emb, al.emb2, photo, quality, study.scan_limit(), cals.search.candidate_radius)
    return Stage(knn, embeddings_of(al.emb, al.emb2), photo)


def query_of(al: study.Album, i: int, cal: Calibration) -> Query:
    """Selfie i of the album as search queries with it: by `cal`'s models, fused where it fuses them."""
    if al.q_emb2 is None or not cal.fused:
        return Query(al.q_emb[i], model=cal.embedders[0])
    return Query(al.q_emb[i], al.q_emb2[i], cal.embedders[1], cal.embedders[0])


def rows_of(
    stage: Stage, query: Query, relevant: set[Any], plain: CalibrationSet, cal: Calibration, visits: list
) -> tuple[list[AnswerFeatures], list[np.ndarray], list[int]]:
    """Answer features and truth of every candidate photo not answered, after each round with answers,
    and the round (1, 2 ...) each block of rows comes from."""
    feats, truth, rounds = [], [], []
    everything = Tiers(match=cal.match, possible=1e-12)
    fused = query.second is not None
    # The selfie's own scan (its cohorts judge the answered faces): the same in every round.
    first = stage.knn(query.vector, query.second) if fused else stage.knn(query.vector)
    for n, (_, fb) in enumerate(visits[1:], start=1):
        ranked = rank_photos(query, stage.knn, stage.embeddings, everything, plain, fb)
        hits = [h for h in ranked.matches + ranked.possible if h.face not in fb.me]
        if not hits:
            continue
        own = np.array([h.own_evidence for h in hits])
        full = np.array([h.confidence for h in hits])
        faces = np.array([h.face for h in hits], dtype=np.int64)
        feats.append(answer_features_of(fb, cal, first, faces, own, full, stage.embeddings, fused))
        truth.append(np.array([h.photo in relevant for h in hits], dtype=bool))
        rounds.append(n)
    return feats, truth, rounds


def _design(feats: list[AnswerFeatures], names: tuple[str, ...]) -> np.ndarray:
    cols = [np.concatenate([f.column(n) for f in feats]) for n in names]
    return np.stack([*cols, np.ones(len(cols[0]))], axis=1)


# The study's rules for the tiers (bench/lib/study.py's defaults): matches at pooled precision 0.99,
# the possible tier at least 0.55 precise, here in every round of answers of every family and kind
# of album (a round with fewer rows under the match threshold than ROUND_MIN_ROWS says too little to
# set it).
MATCH_PRECISION = 0.99
POSSIBLE_PRECISION = 0.55
ROUND_MIN_ROWS = 100


def fit(
    feats: list[AnswerFeatures], truth: list[np.ndarray], cal: Calibration, rounds: list[str] | None = None
) -> AnswerModels:
    """The two answer models, and their tiers by the study's rules on the same rows.

    Each model starts from the search's logit before the answers, with no bias, so that answers
    that say nothing new change nothing; only what a confirmed view's gain and a rejected face's
    lead are worth is fitted. The match threshold stays the calibration's while its matches hold
    MATCH_PRECISION after answers (else it tightens); the possible threshold is the loosest whose
    tier (the non-matches above it) is POSSIBLE_PRECISION precise in every round of every kind of
    album (`rounds`: each block's label, its album family and kind and its round). Pooled, early
    rounds outnumber late ones, where the photos left unanswered are mostly look-alikes: among
    relatives the pooled threshold's tier fell to 0.2-0.4 precision there; and pooled over families,
    strangers' albums outnumber relatives' (dev-fiw parties' tier 0.39-0.47 precise on the unseen
    half with every round held but not every family).
    """
    rel = np.concatenate(truth)
    models = []
    for names in (OWN, FULL):
        x = _design(feats, names)
        w = study.fit_logistic(x[:, 1:-1], rel.astype(np.float64), offset=x[:, 0])
        weights = (1.0, *(round(float(v), 5) for v in w))
        models.append((Model(names, weights, 0.0), study.predict(x, np.array([*weights, 0.0]))))
    (own, p_own), (full, p_full) = models
    match = cal.match
    if rel[p_own >= match].mean() < MATCH_PRECISION:
        match = study.threshold_for_precision(p_own, rel, MATCH_PRECISION)
    below = p_own < match
    possible = study.threshold_for_precision(p_full[below], rel[below], POSSIBLE_PRECISION)
    if rounds is not None:
        rnd = np.concatenate([np.full(len(t), r, dtype=object) for t, r in zip(truth, rounds, strict=True)])
        for r in sorted(set(rounds)):
            mine = below & (rnd == r)
            if mine.sum() >= ROUND_MIN_ROWS:
                t = study.threshold_for_precision(p_full[mine], rel[mine], POSSIBLE_PRECISION)
                print(f"{r}: {int(mine.sum())} rows, possible threshold {t:.4f}", file=sys.stderr)
                possible = max(possible, t)
    return AnswerModels(own, full, round(float(min(match, 0.9999)), 4), round(float(min(possible, match)), 4))


def simulate(
    albums: list[tuple[study.AlbumKey, study.Album]],
    cals: CalibrationSet,
    cal: Calibration,
    args: argparse.Namespace,
    *,
    collect: bool,
    ks: tuple[int, ...] = ANSWERS_PER_ROUND,
    careless: float = 0.0,
) -> tuple[list[AnswerFeatures], list[np.ndarray], list[int], dict[str, Any]]:
    """Visit every album's first args.selfies selfies with k answers a round: the rows (when
    `collect`) and the tiers after each round per (family, kind, k)."""
    plain = without_answer_models(cals)
    feats: list[AnswerFeatures] = []
    truth: list[np.ndarray] = []
    round_of: list[str] = []  # each block of rows' album family and kind, and round
    tallies: dict[str, list[Tally]] = {}
    searches: dict[str, int] = {}
    for (family, kind, _), al in albums:
        stage = stage_of(al, cals)
        rng = np.random.default_rng(args.seed)
        for i in range(min(args.selfies, len(al.q_ident))):
            query = query_of(al, i, cal)
            relevant = set(al.relevant[i])
            for k in ks:
                visits = visit(stage, query, relevant, cals, k, ROUNDS, careless=careless, rng=rng)
                key = f"{family} {kind} k={k}"
                rounds = tallies.setdefault(key, [Tally() for _ in visits])
                searches[key] = searches.get(key, 0) + 1
                for t, (ranked, fb) in zip(rounds, visits, strict=True):
                    t.add(ranked, relevant, len(fb.me) + len(fb.not_me))
                if collect:
                    f, y, r = rows_of(stage, query, relevant, plain, cal, visits)
                    feats += f
                    truth += y
                    round_of += [f"{family} {kind} round {n}" for n in r]
    table = {key: [t.report(searches[key]) for t in rounds] for key, rounds in tallies.items()}
    return feats, truth, round_of, table


def parser() -> argparse.ArgumentParser:
    """The fit's arguments (bench/calibrate.py fits with their defaults)."""
    ap = argparse.ArgumentParser(description="Fit how the attendee's answers change search's probabilities.")
    ap.add_argument("--calibration", type=Path, help="the file to fit and rewrite (default: the site's)")
    ap.add_argument("--selfies", type=int, default=60, help="selfies visited per album")
    ap.add_argument("--albums", type=int, default=3, help="crowd albums per family and half")
    ap.add_argument("--party-albums", type=int, default=12, help="party albums per family and half")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--embedders", nargs=2, metavar=("FIRST", "SECOND"), help="the calibration to fit (default: the configured)"
    )
    return ap


def refit(args: argparse.Namespace) -> dict[str, Any]:
    """Fit the answer models of the configured embedders' calibration in args.calibration (default:
    the site's file) and write them into it; what was written, and the unseen half's rounds."""
    s = get_settings()
    cals = CalibrationSet.load(args.calibration) if args.calibration else site_calibrations(s)
    first, second = args.embedders or (s.embedder, s.second_embedder)
    cal = cals.for_models(first, second or None)
    sargs = study.parser().parse_args(
        ["--seed", str(args.seed), "--albums", str(args.albums), "--party-albums", str(args.party_albums)]
        + (["--fuse", cal.embedders[1]] if cal.fused else [])
    )
    albums = list(study.sampled_albums(sargs))
    fitting = [a for a in albums if a[0][2] == 0]
    unseen = [a for a in albums if a[0][2] == 1]

    def with_models(models: AnswerModels | None) -> CalibrationSet:
        fitted = replace(cal, answers=models)
        return replace(cals, calibrations=tuple(fitted if c is cal else c for c in cals.calibrations))

    models = None
    for n in (1, 2):
        current = with_models(models)
        print(f"pass {n}: simulating the fitting half ...", file=sys.stderr, flush=True)
        feats, truth, rounds, _ = simulate(fitting, current, current.for_models(*cal.embedders), args, collect=True)
        models = fit(feats, truth, cal, rounds)
        print(f"pass {n}: {sum(len(t) for t in truth)} rows; {json.dumps(models.to_json())}", file=sys.stderr)
    assert models is not None
    final = with_models(models)
    print("reporting on the unseen half ...", file=sys.stderr, flush=True)
    _, _, _, table = simulate(unseen, final, final.for_models(*cal.embedders), args, collect=False)
    models = replace(models, unseen={k: v for k, v in table.items() if k.endswith(("k=1", "k=5"))})
    out = args.calibration or Path(cals.source)
    with_models(models).write(out)
    return {"written": str(out), "embedders": list(cal.embedders), "answers": models.to_json(), "unseen": table}
