"""Detection settings sweep on a generated album: how shrinking and MTCNN cut-offs trade speed for recall.

For each (detect_max_side, detect_min_prob) it runs detection only over the album photos and
reports photos/s, the share of pasted faces found (a detection centred in the face's tile), and
false detections (detections centred in no tile: the backgrounds are synthetic, so any face found
there is wrong). This is how the defaults in photomatch/config.py were chosen.

    uv run python bench/detect_settings.py [--album-photos 20] [--sides 1280 1600 2048]
        [--probs 0.8 0.9 0.95] [--face-width 20-200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import torch

from bench.lib.albums import ensure_album
from bench.lib.datasets import dev_data
from photomatch.config import get_settings
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image


def score(truth: dict[str, Any], names: list[str], boxes: list[list[tuple[float, ...]]]) -> tuple[float, int]:
    """(share of truth faces with a detection centred in their tile, detections centred in no tile)."""
    hit = total = false = 0
    for name, found in zip(names, boxes, strict=True):
        tiles = [f["box"] for f in truth["photos"][name]]
        centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in found]
        for x1, y1, x2, y2 in tiles:
            total += 1
            hit += any(x1 <= cx <= x2 and y1 <= cy <= y2 for cx, cy in centres)
        false += sum(not any(t[0] <= cx <= t[2] and t[1] <= cy <= t[3] for t in tiles) for cx, cy in centres)
    return hit / max(total, 1), false


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--album-photos", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sides", type=int, nargs="+", default=[1280, 1600, 2048, 2560])
    ap.add_argument("--probs", type=float, nargs="+", default=[0.8, 0.9, 0.95])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    # Smaller faces than bench/faces.py's album: people at the back of a group shot.
    ap.add_argument("--face-width", default="20-200", help="face widths in a 4000 px photo, e.g. 20-200")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = get_settings()
    lo, hi = (int(v) for v in args.face_width.split("-"))
    album = ensure_album(dev_data().faces_dir, args.album_photos, args.seed, (lo, hi))
    truth = json.loads((album / "truth.json").read_text())
    names = sorted(truth["photos"])
    images = [load_image(album / "album" / n).rgb for n in names]
    rows = []
    for side in args.sides:
        # Detect once at the lowest cut-off and filter: probabilities do not depend on the cut-off.
        engine = FaceEngine(settings.model_copy(update={"detect_max_side": side, "detect_min_prob": min(args.probs)}))
        engine.detect(images[:1])
        start = time.perf_counter()
        found = [engine.detect([img])[0] for img in images]
        seconds = time.perf_counter() - start
        for prob in args.probs:
            boxes = [[d.box for d in faces if d.probability >= prob] for faces in found]
            recall, false = score(truth, names, boxes)
            rows.append(
                {
                    "detect_max_side": side,
                    "detect_min_prob": prob,
                    "photos_per_s": round(len(images) / seconds, 3),
                    "truth_faces_found": round(recall, 4),
                    "false_detections": false,
                }
            )
    report = {
        "device": str(engine.device),
        "threads": args.threads,
        "album": {
            "photos": len(names),
            "size": truth["size"],
            "face_width": [lo, hi],
            "faces": sum(len(v) for v in truth["photos"].values()),
        },
        "rows": rows,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
