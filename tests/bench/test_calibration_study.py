"""The calibration study writes a file the product loads and ranks with: the refit path, on synthetic faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.lib import answer_models, study
from photomatch.search.calibration import CalibrationSet, SearchParams
from photomatch.search.cohort import CohortParams
from photomatch.search.ranking import Candidates, Neighbours, Query, rank_photos


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_faces(family: str, fuse: str | None = None) -> study.Faces:
    """240 people of 5 images each, in families of 3. Each model sees a face as a shared direction plus
    the person's offset plus noise: same-person distances 0.50 +- 0.03, strangers 0.65 +- 0.04, so
    the two overlap as real embeddings do."""
    rng = np.random.default_rng(0)
    n, per = 240, 5
    ident = np.repeat([f"F{i // 3}_p{i}" for i in range(n)], per)
    who = np.repeat(np.arange(n), per)
    mean1, mean2 = unit(rng.standard_normal(128)), unit(rng.standard_normal(128))
    c1, c2 = 0.03 * rng.standard_normal((n, 128)), 0.03 * rng.standard_normal((n, 128))

    def views(mean: np.ndarray, c: np.ndarray, noise: float) -> np.ndarray:
        return unit(mean + c[who] + noise * rng.standard_normal((len(who), 128)))

    quality = np.tile([0.99, 120.0, 50.0, 0.98, 80.0, 40.0], (len(who), 1))
    fam = np.array([i.split("_")[0] for i in ident])
    faces = study.Faces(ident, fam, views(mean1, c1, 0.035), views(mean1, c1, 0.035), quality)
    if fuse:
        faces.selfie2, faces.album2 = views(mean2, c2, 0.035), views(mean2, c2, 0.035)
    return faces


def test_a_fitted_study_becomes_a_calibration_file_that_search_ranks_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study.Faces, "load", staticmethod(synthetic_faces))
    argv = ["--families", "dev-lfw", "--albums", "1", "--party-albums", "2", "--targets", "40", "--photos", "60"]
    single = study.calibration_of(study.study(study.parser().parse_args(argv)), ("model-a",), None)
    second = CohortParams(prior_mean=1.21, prior_sd=0.02)
    fused_out = study.study(study.parser().parse_args([*argv, "--fuse", "model-b"]))
    fused = study.calibration_of(fused_out, ("model-a", "model-b"), second)
    assert single.own.features == ("d", "z_q", "log_n") and fused.full.features[-1] == "z2_exp"
    assert 0 < single.possible <= single.match < 1 and set(fused.unseen) == {"dev-lfw crowd", "dev-lfw party"}

    path = tmp_path / "calibration.json"
    CalibrationSet("some-detector", (single, fused), SearchParams(), {"date": "today"}).write(path)
    cals = CalibrationSet.load(path)
    cals.check("some-detector", "model-a", "model-b")
    assert cals.for_models("model-a", "model-b") == fused

    # On the same scale as the faces it was fitted on: the person at 0.45 among 300 strangers at
    # 0.65 +- 0.04 is a match under the fitted models; no stranger is.
    rng = np.random.default_rng(1)
    d = np.concatenate([[0.45], rng.normal(0.65, 0.04, 300).clip(0.52, None)])

    def knn(q: np.ndarray, s: np.ndarray | None = None, among: np.ndarray | None = None) -> Neighbours:
        ids = np.arange(len(d)) if among is None else np.asarray(among)
        near = ids[d[ids] <= cals.search.candidate_radius]
        c = Candidates(near, [f"p{i}" for i in near], d[near], np.ones(len(near)))
        return Neighbours(c, np.sort(d[ids]), ids[np.argsort(d[ids])], len(d))

    q = unit(rng.standard_normal(128))
    ranked = rank_photos(
        Query(q, model="model-a"), knn, lambda ids, second=False: np.tile(q, (len(ids), 1)), None, cals
    )
    assert [h.photo for h in ranked.matches] == ["p0"]

    # The answer models, fitted last into the same file (bench/calibrate.py's step 4): a confirmed
    # face's yes raises a photo, a rejected face's yes lowers it, and the file still loads.
    answers = ["--calibration", str(path), "--embedders", "model-a", "model-b", "--selfies", "15"]
    out = answer_models.refit(answer_models.parser().parse_args([*answers, "--albums", "1", "--party-albums", "2"]))
    models = CalibrationSet.load(path).for_models("model-a", "model-b").answers
    assert models is not None and models.to_json()["own"] == out["answers"]["own"]
    weights = dict(zip(models.full.features, models.full.weights, strict=True))
    assert weights["full"] == 1.0 and weights["gain"] > 0 and weights["rival"] < 0
    assert {"dev-lfw crowd k=1", "dev-lfw party k=5"} <= set(out["unseen"])


def test_the_possible_tier_after_answers_holds_its_precision_in_every_round_and_family_not_only_pooled() -> None:
    from types import SimpleNamespace

    from photomatch.search.scoring import AnswerFeatures

    # One block is honest; in the other (fewer rows) the same scores are over-confident, as in a late
    # round among relatives once the attendee has answered about their own photos, or in relatives'
    # albums pooled with strangers'.
    rng = np.random.default_rng(0)
    blocks, truth = [], []
    for n, shift in ((3000, 0.0), (800, 1.0)):
        z = rng.uniform(-5, 4, n)
        zeros = np.zeros(n)
        blocks.append(AnswerFeatures(own=z, full=z, gain=zeros, rival=zeros))
        truth.append(rng.random(n) < 1 / (1 + np.exp(-(z - shift))))
    cal = SimpleNamespace(match=0.9)
    pooled = answer_models.fit(blocks, truth, cal)  # type: ignore[arg-type]
    per_round = answer_models.fit(blocks, truth, cal, ["dev-lfw crowd round 1", "dev-fiw party round 1"])  # type: ignore[arg-type]
    assert per_round.possible > pooled.possible and per_round.match == pooled.match

    def precision(block: AnswerFeatures, rel: np.ndarray, models: answer_models.AnswerModels) -> float:
        p = 1 / (1 + np.exp(-block.full))  # the answers say nothing here: the models keep the logit
        tier = (p >= models.possible) & (p < models.match)
        return float(rel[tier].mean())

    assert precision(blocks[1], truth[1], pooled) < answer_models.POSSIBLE_PRECISION
    for block, rel in zip(blocks, truth, strict=True):
        assert precision(block, rel, per_round) >= answer_models.POSSIBLE_PRECISION
