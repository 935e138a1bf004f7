"""Whether a selfie's head pose earns a refusal: search accuracy per bucket of yaw and roll. JSON out.

On the rendered unseen albums of bench/search_accuracy.py (cached there; analysed on first use),
every selfie is searched as the API does, and its chosen face's pose is read from its five MTCNN
landmarks: yaw as the nose's offset from the eyes' midpoint along the eye line, over the distance
between the eyes (0 frontal, about 0.5 in profile), roll as the eye line's angle. Printed per family
and bucket: selfies, mAP, both-tier recall, and the matches tier's precision and recall. A bound is
earned only where a bucket measurably gives wrong answers.

    uv run python bench/selfie_pose.py [--families dev-lfw dev-fiw dev-faces]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from bench.lib.datasets import dev_data
from bench.lib.metrics import average_precision
from bench.lib.rendered import OUT, album_embeddings, album_scan, load, query_face
from photomatch.config import get_settings
from photomatch.faces.types import Detection
from photomatch.search.calibration import site_calibrations
from photomatch.search.ranking import Query, QueryRejected, Tiers, rank_photos

YAW_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 9.0)
ROLL_BUCKETS = (0.0, 10.0, 20.0, 90.0)


def pose(det: Detection) -> tuple[float, float]:
    """(|yaw|, |roll| in degrees) from the five landmarks."""
    left, right, nose = (np.array(p) for p in det.landmarks[:3])
    eyes = right - left
    iod = float(np.linalg.norm(eyes))
    yaw = float(np.dot(nose - (left + right) / 2, eyes / iod) / iod)
    return abs(yaw), abs(float(np.degrees(np.arctan2(eyes[1], eyes[0]))))


def searched(family: str) -> list[dict[str, Any]]:
    """Per answered selfie of the family's album: its pose and how its search went."""
    from photomatch.faces.engine import get_engine
    from photomatch.imaging import load_image

    settings = get_settings()
    album = load(family, dev_data().families()[family], "crowd", 0, lambda m: print(m, file=sys.stderr))
    cals = site_calibrations(settings)
    knn = album_scan(album.photos, settings.search_max_candidates, cals.search.candidate_radius)
    embeddings = album_embeddings(album.photos)
    tiers = Tiers().resolved(cals.for_models(settings.embedder, settings.second_embedder))
    engine = get_engine(settings=settings)
    rows = []
    for identity, rel in sorted(album.truth["selfies"].items()):
        relevant = set(album.truth["identities"].get(identity, []))
        if not relevant:
            continue
        try:
            face = query_face(album, rel, settings)
        except QueryRejected:
            continue
        # The cache keeps boxes, not landmarks: detect again and take the same face.
        found = engine.analyze([load_image(OUT / f"{family}-crowd-seed0" / rel).rgb], embed=False)[0]
        det = min(found, key=lambda f: float(np.abs(np.subtract(f.detection.box, face.detection.box)).sum())).detection
        ranked = rank_photos(Query.of(face, fuse=True), knn, embeddings, tiers)
        both = [str(h.photo) for h in ranked.matches + ranked.possible]
        matches = {str(h.photo) for h in ranked.matches}
        yaw, roll = pose(det)
        rows.append(
            {
                "yaw": yaw,
                "roll": roll,
                "ap": average_precision([b in relevant for b in both], len(relevant)),
                "found": len(relevant & set(both)),
                "relevant": len(relevant),
                "match_tp": len(relevant & matches),
                "matches": len(matches),
            }
        )
    return rows


def buckets(rows: list[dict[str, Any]], key: str, edges: tuple[float, ...]) -> dict[str, Any]:
    out = {}
    for lo, hi in zip(edges, edges[1:], strict=False):
        sel = [r for r in rows if lo <= r[key] < hi]
        if not sel:
            continue
        total = sum(r["relevant"] for r in sel)
        out[f"{lo:g}-{hi:g}"] = {
            "selfies": len(sel),
            "mAP": round(float(np.mean([r["ap"] for r in sel])), 3),
            "both_R": round(sum(r["found"] for r in sel) / total, 3),
            "matches_P": round(sum(r["match_tp"] for r in sel) / max(1, sum(r["matches"] for r in sel)), 3),
            "matches_R": round(sum(r["match_tp"] for r in sel) / total, 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=["dev-lfw", "dev-fiw", "dev-faces"])
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"device": "cpu", "families": {}}
    for family in args.families:
        rows = searched(family)
        out["families"][family] = {
            "selfies": len(rows),
            "yaw_p50_p95": [round(float(v), 3) for v in np.percentile([r["yaw"] for r in rows], [50, 95])],
            "by_yaw": buckets(rows, "yaw", YAW_BUCKETS),
            "by_roll": buckets(rows, "roll", ROLL_BUCKETS),
        }
        print(f"{family}: {json.dumps(out['families'][family])}", file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
