"""Which selfies to refuse: the refusal rate on real selfies, and how accuracy depends on selfie quality.

1. Real selfies as they are: every image of dev-lfw (250x250, faces ~100 px) and of the first dev-fiw
   families (224 px crops) goes through the engine and the product's query-face choice
   (photomatch.search.ranking.pick_query_face with the configured bounds); the share refused, and why.
2. Whether a bound is earned: on the study's unseen crowd albums (bench/search_study.py), matches
   precision, both-tier recall and mAP per bucket of selfie sharpness and of selfie face size, so a
   bound refuses only where quality measurably gives wrong answers.

    uv run python bench/search_quality.py [--images 2000]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.datasets import dev_data
from bench.lib.identity_cache import labelled_images
from photomatch.config import get_settings
from photomatch.search.ranking import QueryRejected, pick_query_face

SHARPNESS_BUCKETS = (0, 5, 10, 20, 40, 80, 1e9)
SIZE_BUCKETS = (0, 30, 40, 60, 90, 1e9)


def refusals(faces_dir: Path, limit: int) -> dict[str, Any]:
    """Run real selfies through the engine and the query-face choice; count refusals by reason."""
    import torch

    from photomatch.faces.engine import FaceEngine
    from photomatch.imaging import load_image

    torch.set_num_threads(2)
    settings = get_settings()
    engine = FaceEngine()
    items = labelled_images(faces_dir)
    rng = np.random.default_rng(0)
    chosen = [items[i] for i in sorted(rng.permutation(len(items))[:limit])]
    reasons: dict[str, int] = {}
    sizes, sharp = [], []
    for start in range(0, len(chosen), 16):
        batch = chosen[start : start + 16]
        found = engine.analyze([load_image(p).rgb for _, p in batch])
        for faces in found:
            try:
                face = pick_query_face(
                    faces, min_size=settings.search_min_face_px, min_sharpness=settings.search_min_sharpness
                )
                sizes.append(face.detection.size)
                sharp.append(face.sharpness)
            except QueryRejected as e:
                reasons[e.reason] = reasons.get(e.reason, 0) + 1
    n = len(chosen)
    return {
        "selfies": n,
        "refused": round(sum(reasons.values()) / max(1, n), 4),
        "by_reason": reasons,
        "accepted_face_px_p5_p50": [round(float(np.percentile(sizes, q)), 1) for q in (5, 50)] if sizes else None,
        "accepted_sharpness_p5_p50": [round(float(np.percentile(sharp, q)), 1) for q in (5, 50)] if sharp else None,
    }


def accuracy_by_quality(albums: int) -> dict[str, Any]:
    """Matches precision, both-tier recall and mAP per selfie-quality bucket, on the study's unseen crowds."""
    from bench.lib import study as st

    # Fused like the product when it has a second embedder (bench/search_study.py --fuse).
    fuse = get_settings().second_embedder or None
    args = argparse.Namespace(
        albums=albums, party_albums=12, targets=250, photos=400, seed=0, families=["dev-lfw", "dev-fiw"], fuse=fuse
    )
    own = st.FUSED_SETS["fused: query cohort"] if fuse else st.FEATURE_SETS[st.OWN_EVIDENCE]
    full = st.FUSED_SETS["fused: query cohort + expansion"] if fuse else st.FEATURE_SETS[st.WITH_EXPANSION]
    # As the study does by default: fit the selfie's own-evidence model, then expand with its hits
    # of P >= 0.5 (photomatch.search.calibration.EXPANSION_PROBABILITY).
    data, _ = st.sample_all(args, st.CohortParams())
    fit = [c for (_, kind, half), cs in data.items() if half == 0 for c in cs]
    x, rel, _ = st._concat(fit, own)
    data, _ = st.sample_all(args, st.CohortParams(), (own, st.fit_logistic(x, rel.astype(np.float64)), 0.5))
    fit = [c for (_, kind, half), cs in data.items() if half == 0 for c in cs]
    models = {}
    for names in (own, full):
        x, rel, _ = st._concat(fit, names)
        w = st.fit_logistic(x, rel.astype(np.float64))
        p = st.predict(x, w)
        t_m = st.threshold_for_precision(p, rel, 0.99)
        models[names] = (w, t_m, st.band_threshold(p, rel, t_m, 0.55))
    out: dict[str, Any] = {}
    for feature, edges in (("selfie_sharpness", SHARPNESS_BUCKETS), ("selfie_size", SIZE_BUCKETS)):
        rows = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            tp_m = n_m = tp_b = total = queries = 0
            for (_, kind, half), cs in data.items():
                if half != 1 or kind != "crowd":
                    continue
                for c in cs:
                    qv = np.nan_to_num(c.column(feature), nan=100.0)
                    sel = (qv >= lo) & (qv < hi)
                    if not sel.any():
                        continue
                    p_own = st.predict(st.design(c, own)[sel], models[own][0])
                    p_full = st.predict(st.design(c, full)[sel], models[full][0])
                    m = p_own >= models[own][1]
                    shown = m | (p_full >= models[full][2])
                    rel = c.relevant[sel]
                    tp_m, n_m, tp_b = tp_m + int((m & rel).sum()), n_m + int(m.sum()), tp_b + int((shown & rel).sum())
                    qs = np.unique(c.query[sel])
                    queries += len(qs)
                    total += int(c.relevant_of[qs].sum())
            rows.append(
                {
                    "from": lo,
                    "to": hi if hi < 1e9 else None,
                    "queries": queries,
                    "matches_P": round(tp_m / n_m, 4) if n_m else None,
                    "both_R": round(tp_b / total, 4) if total else None,
                }
            )
        out[feature] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="real selfies per family")
    ap.add_argument("--albums", type=int, default=3)
    a = ap.parse_args(argv)
    settings = get_settings()
    out = {
        "bounds": {"min_face_px": settings.search_min_face_px, "min_sharpness": settings.search_min_sharpness},
        "real_selfies": {
            name: refusals(d, a.images)
            for name, d in (("dev-lfw", dev_data().lfw_dir), ("dev-fiw", dev_data().fiw_dir))
            if (d / "MANIFEST.md").is_file()
        },
        "accuracy_by_selfie_quality": accuracy_by_quality(a.albums),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
