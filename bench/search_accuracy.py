"""Search accuracy per album family, through the real engine and the product's ranking. JSON out.

For each family (dev-faces; dev-lfw and dev-fiw as crowds of 250 people in 400 photos), an album is
rendered from people of the half of the identities that calibration never saw (bench/make_album.py
`generate_crowd`, half 1), the face engine runs on its photos and selfies once (cached under
bench/out/search-crowds/), and every selfie is searched with photomatch.search.ranking exactly as
the API does: the same query face choice and refusals, the same scan, cohort, models and tiers.

Printed per family: the tiers' precision and recall, recall at precision 0.99 and 0.95 of the
confidence ranking, mAP, a precision/recall curve, the calibration of `confidence` (expected
calibration error and a reliability table), the share of selfies refused, and why each of the
person's photos that neither tier showed was missed (their face not detected, not a candidate, or
scored under the tiers, with those confidences).

    uv run python bench/search_accuracy.py [--families dev-lfw ...] [--preset crowd|small] [--seed 0]

About 6 minutes per crowded family on 2 CPU cores the first time (rendering and the engine); then
seconds. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from bench.lib.rendered import Album, Searches, family_albums, log, parser, search_album
from photomatch.config import get_settings

TARGETS = {"matches_P": 0.98, "both_R": 0.95, "possible_P": 0.5}


def _recall_at(conf: np.ndarray, rel: np.ndarray, total: int, precision: float) -> float:
    order = np.argsort(-conf, kind="stable")
    tp = np.cumsum(rel[order])
    ok = np.flatnonzero(tp / np.arange(1, len(order) + 1) >= precision)
    return float(tp[ok[-1]] / total) if len(ok) else 0.0


def reliability(conf: np.ndarray, rel: np.ndarray, bins: int = 10) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error and the table behind it: per confidence bin, count, mean, accuracy."""
    idx = np.clip((conf * bins).astype(int), 0, bins - 1)
    rows, ece = [], 0.0
    for k in range(bins):
        m = idx == k
        if m.any():
            ece += m.mean() * abs(conf[m].mean() - rel[m].mean())
            rows.append(
                {
                    "bin": f"{k / bins:.1f}-{(k + 1) / bins:.1f}",
                    "n": int(m.sum()),
                    "confidence": round(float(conf[m].mean()), 3),
                    "accuracy": round(float(rel[m].mean()), 3),
                }
            )
    return round(float(ece), 4), rows


def report(s: Searches, album: Album) -> dict[str, Any]:
    """The measures of one family's searches."""
    conf, rel, tier = np.array(s.confidence), np.array(s.relevant, dtype=bool), np.array(s.tier)
    total = max(1, s.total_relevant)
    m, p = tier == "match", tier == "possible"
    shown = m | p
    ece, table = reliability(conf[shown], rel[shown])
    curve = []
    for t in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99):
        sel = conf >= t
        curve.append(
            {
                "confidence_at_least": t,
                "precision": round(float(rel[sel].mean()) if sel.any() else 1.0, 4),
                "recall": round(float((sel & rel).sum() / total), 4),
            }
        )
    return {
        "photos": len(album.truth["photos"]),
        "faces": int(len(album.photos.image)),
        "selfies": s.selfies,
        "selfies_refused": round(sum(s.refused.values()) / max(1, s.selfies), 4),
        "refused_by_reason": s.refused,
        "matches_P": round(float(rel[m].mean()) if m.any() else 1.0, 4),
        "matches_R": round(float((m & rel).sum() / total), 4),
        "possible_P": round(float(rel[p].mean()) if p.any() else 1.0, 4),
        "both_R": round(float((shown & rel).sum() / total), 4),
        "R@P0.99": round(_recall_at(conf, rel, total, 0.99), 4),
        "R@P0.95": round(_recall_at(conf, rel, total, 0.95), 4),
        "mAP": round(float(np.mean(s.aps)) if s.aps else 0.0, 4),
        "true_photos_within_radius": round(s.within_radius / total, 4),
        # The person's photos neither tier showed, by why (bench.lib.rendered.Searches.missed), and
        # the confidences of those scored under the tiers (min, median, max).
        "missed": dict(sorted(s.missed.items())),
        "missed_confidence": [round(float(q), 3) for q in np.quantile(s.missed_confidence, (0, 0.5, 1))]
        if s.missed_confidence
        else [],
        "calibration_error": ece,
        "reliability": table,
        "pr_curve": curve,
        "engine_seconds": album.engine_seconds,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    settings = get_settings()
    out: dict[str, Any] = {"preset": args.preset, "seed": args.seed, "targets": TARGETS, "families": {}}
    for family, album in family_albums(args):
        out["families"][family] = report(search_album(album, settings), album)
        log(f"{family}: " + json.dumps({k: v for k, v in out["families"][family].items() if not isinstance(v, list)}))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
