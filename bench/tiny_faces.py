"""At what size does a face's embedding stop identifying it? Verification on dev-lfw's pairs with the
second face of each pair shrunk to S pixels, and what embedding such faces costs.

Each pair's first photo is used as it is (a selfie, faces ~100 px). The second is shrunk so that its
face is S px wide, then aligned and embedded from those pixels, as a face S px wide in an album
photo would be: its landmarks come from detection on the full photo, scaled down, so that what is
measured is the embedding, not whether MTCNN finds a face that small (it stops at
`detect_min_face`). Reported per S: ROC-AUC, the true-accept rate at 1% false accepts, and how far
the same person's distance moved from its full-size value.

    uv run python bench/tiny_faces.py [--pairs 600] [--sizes 12,16,20,24,32,40,56]

Prints one JSON object (CPU unless a GPU is present).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
import torch

from bench.lib.datasets import dev_data, lfw_pairs
from bench.lib.face_sets import largest_face, scaled
from bench.lib.metrics import roc_auc, tar_at_far
from photomatch.config import get_settings
from photomatch.faces.engine import FaceEngine
from photomatch.imaging import load_image


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600)
    ap.add_argument("--sizes", default="12,16,20,24,32,40,56")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lfw = dev_data().lfw_dir
    if not (lfw / "pairs.tsv").is_file():
        print(f"dev-lfw not found at {lfw}", file=sys.stderr)
        return 2
    engine = FaceEngine(get_settings())
    sizes = [int(s) for s in args.sizes.split(",")]

    rows: list[tuple[bool, np.ndarray, dict[int | str, np.ndarray]]] = []
    embed_ms: list[float] = []
    for a, b, same in lfw_pairs(lfw, args.pairs):
        img_a, img_b = load_image(a).rgb, load_image(b).rgb
        det_a, det_b = largest_face(engine, img_a), largest_face(engine, img_b)
        if det_a is None or det_b is None:
            continue
        ref = engine.embedder.embed(engine.chips(img_a, [det_a]))[0]
        shrunk: dict[int | str, np.ndarray] = {"full": engine.embedder.embed(engine.chips(img_b, [det_b]))[0]}
        for s in sizes:
            small, det = scaled(img_b, det_b, s / det_b.size)
            t0 = time.perf_counter()
            shrunk[s] = engine.embedder.embed(engine.chips(small, [det]))[0]
            embed_ms.append((time.perf_counter() - t0) * 1000)
        rows.append((same, ref, shrunk))
    is_same = np.array([r[0] for r in rows], dtype=bool)
    out: dict[str, Any] = {
        "device": str(engine.device),
        "pairs": len(rows),
        "same_person": int(is_same.sum()),
        "by_size": {},
    }
    full_d = np.array([np.linalg.norm(r[1] - r[2]["full"]) for r in rows])
    keys: list[int | str] = ["full", *sizes]
    for key in keys:
        d = np.array([np.linalg.norm(r[1] - r[2][key]) for r in rows])
        out["by_size"][str(key)] = {
            "roc_auc": round(roc_auc(is_same, d), 4),
            "tar_at_far_1pct": round(tar_at_far(is_same, d, 0.01), 4),
            "same_person_distance_median": round(float(np.median(d[is_same])), 4),
            "shift_from_full_median": round(float(np.median(np.abs(d - full_d))), 4),
        }
        print(key, out["by_size"][str(key)], file=sys.stderr, flush=True)
    out["align_and_embed_ms_per_face"] = round(float(np.median(embed_ms)), 2)
    # How often the detector returns faces that small, on real group photos (dev-faces/groups).
    sizes_found = [d.size for f in sorted((dev_data().faces_dir / "groups").glob("*.jp*g"))
                   for d in engine.detect([load_image(f).rgb])[0]]  # fmt: skip
    edges = [0, 12, 16, 20, 24, 32, 40, 10_000]
    counts, _ = np.histogram(sizes_found, bins=edges)
    out["group_photo_faces_by_size"] = {
        f"{lo}-{hi}": int(c) for lo, hi, c in zip(edges, edges[1:], counts, strict=False)
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
